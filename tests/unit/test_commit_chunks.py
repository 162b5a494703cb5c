"""The aggregator's commits: consecutive runs of records, each within Firestore's 500 writes."""

from __future__ import annotations

from datetime import date

from devstack.synthetic import generate
from shared.models.usage import UsageRecord
from shared.store.usage import MAX_WRITES, commit_chunks
from shared.usage.rollups import accumulate


def writes_of(chunk: list[UsageRecord]) -> int:
    """What the commit of ``chunk`` writes when no marker exists yet: the record and window
    markers, and a part in each of the two rollup collections per day."""
    batch = accumulate(chunk)
    return len(batch.record_ids) + len(batch.markers) + 2 * len({r.day for r in chunk})


def test_chunks_fill_commits_without_passing_the_limit() -> None:
    records = generate(end=date(2026, 11, 20), days=8).records[:6000]
    chunks = [list(c) for c in commit_chunks(records)]
    assert [r for c in chunks for r in c] == records
    writes = [writes_of(c) for c in chunks]
    assert max(writes) <= MAX_WRITES
    # Full commits: all but the last within a record's worst case (5 writes: its marker, two
    # window markers, two parts of a new day) of the limit.
    assert min(writes[:-1]) > MAX_WRITES - 5


def test_window_markers_count_against_the_limit() -> None:
    records = [
        r.model_copy(update={"request_hash": f"q{i}", "prompt_prefix_hash": f"p{i}"})
        for i, r in enumerate(generate(end=date(2026, 11, 20), days=8).records[:2000])
    ]
    writes = [writes_of(list(c)) for c in commit_chunks(records)]
    assert max(writes) <= MAX_WRITES
    assert min(writes[:-1]) > MAX_WRITES - 5


def test_no_records_no_chunks() -> None:
    assert list(commit_chunks([])) == []
