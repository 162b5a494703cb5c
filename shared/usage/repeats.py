"""Repeats within a time window: what a hash marker keeps, and whether a call repeats.

Two kinds of repeat are counted in the rollups, each per (provider, model, feature) and hash:

- a *request repeat* (``REQUEST``): a call whose ``request_hash`` was seen within 24 hours
  (a response cache would have answered it);
- a *prefix repeat* (``PREFIX``): a call whose ``prompt_prefix_hash`` was seen within
  5 minutes (a provider's prompt cache would still be warm).

A marker holds, per *slot* of the window's length (slot ``k`` = ``[k*L, (k+1)*L)``, so the
24-hour slots are the UTC days), the first and last call time seen in it, in microseconds.
A call at ``t`` in slot ``k`` repeats when slot ``k`` has a call (same slot: less than ``L``
apart), or slot ``k - 1``'s last call is less than ``L`` before ``t``, or slot ``k + 1``'s
first call less than ``L`` after it. Three slots answer exactly, so the marker never needs
a list of calls.

What counts. In time order, a call repeats when an earlier one is less than ``L`` before
it; the number of repeats is then the number of calls less the number of *clusters* (runs
of calls each less than ``L`` after the one before). Calls are processed in any order, so
each call is credited ``1 - (the change it makes to the number of clusters)``
(``credit``): 0 for a call that starts a cluster of its own, 1 for one that joins a
cluster, 2 for one that joins two clusters into one (the later cluster's first call has
become a repeat). The sum, the number of repeats, is the same in any order. All calls of a
slot are one cluster, and two neighbouring slots are joined when the later's first call is
less than ``L`` after the earlier's last: the slots' first and last times are all it takes.
The credit goes to the call processed: which call's tokens count as repeated depends on the
order (in time order, the later call of each pair's).

Writes stay bounded (DESIGN §10): a marker is written when a call opens a slot, joins two
slots, or moves its slot's first or last time by more than ``slack_us``, not on every call;
so a stored time may lag by up to ``slack_us``, and another process may miss a repeat whose
gap is within ``slack_us`` of ``L`` (never count one twice: what a credit rests on, a new
slot or a join, is always written, under the version read). Slots more than
``Window.kept_slots`` before the newest are dropped, so a marker stays small: a call
processed after calls of its hash more than that later (62 days of request hashes, a day of
prefix hashes: the reach of a backfill applied by several aggregators at once, in any
order) is judged without them, and counts no repeat.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Literal

Slots = Mapping[int, tuple[int, int]]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_US: Final = timedelta(microseconds=1)
_SECOND_US: Final = 1_000_000


@dataclass(frozen=True, slots=True)
class Window:
    name: str  # the marker ids' prefix
    seconds: int  # L
    slack_us: int  # how far a slot's first or last time may move before it is written
    kept_slots: int  # slots kept before the newest (how far out of order calls may arrive)

    @property
    def length_us(self) -> int:
        return self.seconds * _SECOND_US


# Slots kept: aggregators apply batches of any days at once (a backfill, redeliveries), so a
# call may be processed after calls of its hash days later; it is judged against the slots
# kept. At most a few hundred small pairs a marker.
REQUEST: Final = Window("q", 86_400, 900 * _SECOND_US, kept_slots=62)
PREFIX: Final = Window("p", 300, 10 * _SECOND_US, kept_slots=288)


def micros(ts: datetime) -> int:
    """``ts`` in microseconds since the epoch (a record's timestamp is whole microseconds)."""
    return (ts - _EPOCH) // _US


def _joined(slots: Slots, k: int, length_us: int) -> bool:
    """Whether slots ``k`` and ``k + 1`` both have calls and are one cluster."""
    a, b = slots.get(k), slots.get(k + 1)
    return a is not None and b is not None and b[0] - a[1] < length_us


def credit(slots: Slots, t_us: int, window: Window) -> int:
    """The repeats a call at ``t_us`` adds to what the marker has seen (see the module doc):
    0, 1 or 2."""
    k = t_us // window.length_us
    after = noted(slots, t_us, window)
    length = window.length_us
    new_edges = sum(_joined(after, j, length) and not _joined(slots, j, length) for j in (k - 1, k))
    new_slot = k not in slots
    return 1 - (int(new_slot) - new_edges)


def _edges(slots: Slots, length_us: int) -> set[int]:
    return {k for k in slots if _joined(slots, k, length_us)}


def repeats(slots: Slots, t_us: int, window: Window) -> bool:
    """Whether a call at ``t_us`` repeats one the marker has seen (see the module doc)."""
    k = t_us // window.length_us
    if k in slots:
        return True
    before = slots.get(k - 1)
    if before is not None and t_us - before[1] < window.length_us:
        return True
    after = slots.get(k + 1)
    return after is not None and after[0] - t_us < window.length_us


def noted(slots: Slots, t_us: int, window: Window) -> dict[int, tuple[int, int]]:
    """The marker with a call at ``t_us`` added (and the slots it no longer needs dropped)."""
    k = t_us // window.length_us
    first, last = slots.get(k, (t_us, t_us))
    out = dict(slots)
    out[k] = (min(first, t_us), max(last, t_us))
    oldest = max(out) - window.kept_slots
    return {s: span for s, span in out.items() if s >= oldest}


WriteNeed = Literal["required", "moved"]


def needs_write(stored: Slots | None, new: Slots, window: Window) -> WriteNeed | None:
    """Whether ``new`` says more than the stored marker (``None``: no marker) by enough to
    write it: ``"required"`` for a new marker, a new slot or two slots newly joined (what a
    credit rests on: stored, so it is given once and a later call finds it), ``"moved"`` for
    a first or last time moved by more than the slack (precision only: a writer may put it
    off), else None."""
    if stored is None:
        return "required"
    if _edges(new, window.length_us) - _edges(stored, window.length_us):
        return "required"
    moved = False
    for k, (first, last) in new.items():
        known = stored.get(k)
        if known is None:
            return "required"
        if first < known[0] - window.slack_us or last > known[1] + window.slack_us:
            moved = True
    return "moved" if moved else None


def encode(slots: Slots) -> dict[str, list[int]]:
    """The stored form: ``{str(slot): [first_us, last_us]}``."""
    return {str(k): [first, last] for k, (first, last) in sorted(slots.items())}


def decode(stored: Mapping[str, object]) -> dict[int, tuple[int, int]]:
    """The stored form back; ``ValueError`` for anything else."""
    out: dict[int, tuple[int, int]] = {}
    for key, span in stored.items():
        if (
            not isinstance(span, list)
            or len(span) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in span)
        ):
            raise ValueError(f"a hash marker's slot {key!r} is not [first, last]: {span!r}")
        out[int(key)] = (span[0], span[1])
    return out
