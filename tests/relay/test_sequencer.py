"""The per-run ordering buffer (shared/sequencer.py): whatever order and however often
events arrive, live or read from the store, each seq is delivered once and in order."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.models.events import RunEvent
from shared.sequencer import RunSequencer

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def run_events(n: int, run_id: str = "r1") -> list[RunEvent]:
    events = [
        RunEvent(run_id=run_id, seq=i, event="agent_thinking", data={"reasoning": str(i)}, ts=T0)
        for i in range(1, n)
    ]
    events.append(
        RunEvent(run_id=run_id, seq=n, event="run_completed", data={"status": "completed"}, ts=T0)
    )
    return events


def seqs(events: list[RunEvent]) -> list[int]:
    return [e.seq for e in events]


def test_in_order_events_pass_straight_through() -> None:
    seq = RunSequencer("r1")
    events = run_events(3)
    assert seqs(seq.offer(events[:1])) == [1]
    assert seqs(seq.offer(events[1:])) == [2, 3]
    assert seq.finished


def test_an_early_event_is_held_until_the_gap_is_filled_from_the_store() -> None:
    events = run_events(5)
    seq = RunSequencer("r1")
    assert seqs(seq.offer([events[0], events[3]])) == [1]
    assert seq.has_gap
    assert not seq.terminal_held
    reads: list[int] = []

    def reader(run_id: str, after: int) -> list[RunEvent]:
        reads.append(after)
        return [e for e in events if e.seq > after]

    assert seqs(seq.fill(reader)) == [2, 3, 4, 5]
    assert reads == [1]
    assert seq.finished
    assert not seq.has_gap


def test_a_held_terminal_event_is_flagged_for_an_immediate_read() -> None:
    events = run_events(4)
    seq = RunSequencer("r1")
    assert seq.offer([events[3]]) == []
    assert seq.terminal_held


def test_resuming_after_n_skips_what_the_client_has() -> None:
    events = run_events(6)
    seq = RunSequencer("r1", after_seq=4)
    assert seqs(seq.offer(events)) == [5, 6]


def test_nothing_is_delivered_after_the_terminal_event() -> None:
    events = run_events(3)
    seq = RunSequencer("r1")
    seq.offer(events)
    assert seq.offer(events) == []
    assert not seq.has_gap


def test_another_runs_event_is_a_bug_not_an_event() -> None:
    with pytest.raises(ValueError, match="offered to run r1"):
        RunSequencer("r1").offer(run_events(1, run_id="r2"))


@given(
    n=st.integers(min_value=1, max_value=40),
    after=st.integers(min_value=0, max_value=10),
    data=st.data(),
)
def test_any_arrival_order_with_duplicates_and_reads_delivers_each_seq_once_in_order(
    n: int, after: int, data: st.DataObject
) -> None:
    """Live events arrive shuffled, some twice, some never; reads of the store happen at
    random moments (the store has them all, as events are committed before published)."""
    events = run_events(n)
    live = data.draw(st.lists(st.sampled_from(events), max_size=3 * n))
    reads_at = data.draw(st.sets(st.integers(min_value=0, max_value=len(live))))
    seq = RunSequencer("r1", after_seq=after)
    got: list[RunEvent] = []

    def reader(run_id: str, after_seq: int) -> list[RunEvent]:
        return [e for e in events if e.seq > after_seq]

    for i, event in enumerate(live):
        if i in reads_at:
            got += seq.fill(reader)
        got += seq.offer([event])
    got += seq.fill(reader)  # the terminal event's catch-up
    assert seqs(got) == list(range(after + 1, n + 1))
    assert seq.finished == (after < n)
