"""What the data step hands the optimization step: the period's rollups, within a size cap."""

from __future__ import annotations

from datetime import UTC, date, datetime

from devstack.synthetic import generate
from shared.agents.pipeline import HANDOFF_MAX_BYTES, measured_rollups, rollups_handoff
from shared.models.period import PeriodRange
from shared.store.documents import StepMarker
from shared.usage.report import days_of
from shared.usage.rollups import accumulate

PERIOD = PeriodRange(
    start=datetime(2026, 11, 1, tzinfo=UTC), end=datetime(2026, 11, 15, tzinfo=UTC)
)


def marker(handoff: str | None) -> StepMarker:
    return StepMarker(step="data", first_seq=1, last_seq=2, handoff=handoff)


def test_the_period_s_rollups_are_handed_on_and_read_back_equal() -> None:
    rows = list(accumulate(generate(end=date(2026, 11, 20), days=30).records).daily.values())
    handoff = rollups_handoff(rows, PERIOD)
    assert handoff is not None
    days = set(days_of(PERIOD))
    expected = sorted((r for r in rows if r.day in days), key=lambda r: r.doc_id)
    got = measured_rollups(marker(handoff), PERIOD)
    assert got is not None
    assert sorted(got, key=lambda r: r.doc_id) == expected


def test_a_snapshot_over_the_cap_is_not_handed_on() -> None:
    rows = list(accumulate(generate(end=date(2026, 11, 20), days=30).records).daily.values())
    fits = rollups_handoff(rows, PERIOD)
    assert fits is not None
    # Enough workloads that the period's rollups outgrow the cap.
    copies = HANDOFF_MAX_BYTES // len(fits) + 2
    big = [
        r.model_copy(update={"feature": f"{r.feature}-{i}"}) for i in range(copies) for r in rows
    ]
    assert rollups_handoff(big, PERIOD) is None


def test_another_period_reads_again() -> None:
    rows = list(accumulate(generate(end=date(2026, 11, 20), days=30).records).daily.values())
    later = PeriodRange(
        start=datetime(2026, 11, 2, tzinfo=UTC), end=datetime(2026, 11, 16, tzinfo=UTC)
    )
    assert measured_rollups(marker(rollups_handoff(rows, PERIOD)), later) is None
    assert measured_rollups(marker(None), PERIOD) is None
    assert measured_rollups(None, PERIOD) is None
