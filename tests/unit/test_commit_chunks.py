"""The aggregator's commits: consecutive runs of records, each within Firestore's 500 writes."""

from __future__ import annotations

from datetime import date

from devstack.synthetic import generate
from shared.models.usage import UsageRecord
from shared.store.usage import MAX_WRITES, commit_chunks
from shared.usage.rollups import accumulate


def writes_of(chunk: list[UsageRecord]) -> int:
    """What the commit of ``chunk`` writes when no marker exists yet: the markers, and a
    part in each of the two rollup collections per day."""
    batch = accumulate(chunk)
    return len(batch.record_ids) + len(batch.new_request_hashes) + 2 * len({r.day for r in chunk})


def test_chunks_fill_commits_without_passing_the_limit() -> None:
    records = generate(end=date(2026, 11, 20), days=8).records[:6000]
    chunks = [list(c) for c in commit_chunks(records)]
    assert [r for c in chunks for r in c] == records
    writes = [writes_of(c) for c in chunks]
    assert max(writes) <= MAX_WRITES
    # Full commits: all but the last within a record's worst case (4 writes) of the limit.
    assert min(writes[:-1]) > MAX_WRITES - 4


def test_no_records_no_chunks() -> None:
    assert list(commit_chunks([])) == []
