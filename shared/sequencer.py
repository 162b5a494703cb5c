"""Each event of a run once and in order, whatever order and how often it arrives.

A relay gets a run's events from two places: live from Pub/Sub (at least once, in any
order) and from Firestore (``runs/{run}/events``, complete up to what is committed). A
``RunSequencer`` takes both, delivers ``seq`` ``after_seq + 1, + 2, ...`` each exactly once,
holds an event that arrives ahead of a missing one, and says when a gap needs a read of the
store. It does no I/O itself: the caller reads (``fill`` with a reader, or the reader's
result through ``offer``) where its transport allows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from shared.models.events import RunEvent

# (run_id, after_seq) -> the stored events with seq > after_seq, in order.
Reader = Callable[[str, int], Sequence[RunEvent]]


class RunSequencer:
    def __init__(self, run_id: str, after_seq: int = 0) -> None:
        if after_seq < 0:
            raise ValueError("after_seq must be >= 0")
        self.run_id = run_id
        self._delivered = after_seq
        self._held: dict[int, RunEvent] = {}
        self._finished = False

    @property
    def delivered(self) -> int:
        """The last seq delivered (``after_seq`` before any)."""
        return self._delivered

    @property
    def finished(self) -> bool:
        """The terminal event was delivered: nothing more will come."""
        return self._finished

    @property
    def has_gap(self) -> bool:
        """Events are held behind a missing seq: read the store after ``delivered``."""
        return bool(self._held)

    @property
    def terminal_held(self) -> bool:
        """The terminal event arrived but waits behind a gap (read at once: it is the last)."""
        return any(e.terminal for e in self._held.values())

    def offer(self, events: Iterable[RunEvent]) -> list[RunEvent]:
        """Take events (live or read, any order, duplicates welcome); return the ones now
        deliverable, in order. Each seq is returned once over the sequencer's life."""
        for event in events:
            if event.run_id != self.run_id:
                raise ValueError(f"event of run {event.run_id} offered to run {self.run_id}")
            if self._finished or event.seq <= self._delivered:
                continue
            self._held.setdefault(event.seq, event)
        ready: list[RunEvent] = []
        while self._delivered + 1 in self._held:
            event = self._held.pop(self._delivered + 1)
            ready.append(event)
            self._delivered = event.seq
            if event.terminal:
                self._finished = True
                self._held.clear()
                break
        return ready

    def fill(self, reader: Reader) -> list[RunEvent]:
        """Read what follows ``delivered`` from the store; return what is now deliverable."""
        return self.offer(reader(self.run_id, self._delivered))
