"""Window markers (shared/usage/repeats.py): what a marker keeps, what repeats, when to write."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta

import pytest

from shared.usage.repeats import (
    PREFIX,
    REQUEST,
    credit,
    decode,
    encode,
    micros,
    needs_write,
    noted,
    repeats,
)

T0 = micros(datetime(2026, 11, 2, 23, 50, tzinfo=UTC))
HOUR = 3_600_000_000


def count(times: list[int]) -> int:
    """Repeats credited to calls processed in this order, one marker."""
    slots: dict[int, tuple[int, int]] = {}
    found = 0
    for t in times:
        given = credit(slots, t, REQUEST)
        assert (given > 0) == repeats(slots, t, REQUEST)
        found += given
        slots = noted(slots, t, REQUEST)
    return found


def time_order_repeats(times: list[int]) -> int:
    """Calls with an earlier call less than 24 h before them."""
    ordered = sorted(times)
    return sum(1 for a, b in itertools.pairwise(ordered) if b - a < 24 * HOUR)


def test_24_hours_across_midnight_and_not_beyond() -> None:
    slots = noted({}, T0, REQUEST)
    assert repeats(slots, T0 + HOUR // 3, REQUEST)  # 00:10 the next day
    assert repeats(slots, T0 + 24 * HOUR - 1, REQUEST)
    assert not repeats(slots, T0 + 24 * HOUR, REQUEST)
    assert repeats(slots, T0 - 24 * HOUR + 1, REQUEST)  # processed later, earlier in time
    assert not repeats(slots, T0 - 24 * HOUR, REQUEST)


def test_clusters_count_the_same_in_any_order() -> None:
    rng = random.Random(3)
    for _ in range(200):
        # Calls within 20 h of one another: every order gives n - 1 repeats.
        times = [T0 + rng.randrange(20 * HOUR) for _ in range(rng.randrange(1, 12))]
        order = times[:]
        rng.shuffle(order)
        assert count(times) == count(order) == len(times) - 1


def test_the_count_is_the_time_order_count_in_any_order() -> None:
    rng = random.Random(4)
    for _ in range(500):
        times = [T0 + rng.randrange(72 * HOUR) for _ in range(rng.randrange(1, 15))]
        order = times[:]
        rng.shuffle(order)
        assert count(sorted(times)) == count(order) == time_order_repeats(times)


def test_a_call_that_joins_two_clusters_is_credited_twice() -> None:
    chain = [T0, T0 + 20 * HOUR, T0 + 40 * HOUR]
    assert count(chain) == 2
    # 0 h and 40 h are two clusters until 20 h joins them: it and 40 h are now repeats.
    slots = noted(noted({}, chain[0], REQUEST), chain[2], REQUEST)
    assert credit(slots, chain[1], REQUEST) == 2
    assert count([chain[0], chain[2], chain[1]]) == 2


def test_joining_slots_is_always_written() -> None:
    # The credit of 2 rests on the join: a process that did not write it would let another
    # process credit the same join again.
    base = noted(noted({}, T0, REQUEST), T0 + 40 * HOUR, REQUEST)
    joined = noted(base, T0 + 20 * HOUR, REQUEST)
    assert needs_write(base, joined, REQUEST) == "required"
    # A last time moved within the slack is written when it joins the next slot.
    day = T0 + HOUR  # 00:50, in the next day's slot
    one = noted(noted({}, day, REQUEST), day + 24 * HOUR + 10_000_000, REQUEST)
    moved = noted(one, day + 20_000_000, REQUEST)
    assert needs_write(one, moved, REQUEST) == "required"


def test_writes_only_when_the_marker_moves_enough() -> None:
    first = noted({}, T0, PREFIX)
    assert needs_write(None, first, PREFIX) == "required"
    assert needs_write(first, noted(first, T0 + PREFIX.slack_us, PREFIX), PREFIX) is None
    # Moved beyond the slack: worth writing, but only precision rests on it.
    assert needs_write(first, noted(first, T0 + PREFIX.slack_us + 1, PREFIX), PREFIX) == "moved"
    # A call in the next slot opens it: a later call's credit rests on it.
    assert needs_write(first, noted(first, T0 + PREFIX.length_us, PREFIX), PREFIX) == "required"


def test_old_slots_are_dropped_when_noting() -> None:
    slots: dict[int, tuple[int, int]] = {}
    for day in range(REQUEST.kept_slots + 10):
        slots = noted(slots, T0 + day * 24 * HOUR, REQUEST)
    assert len(slots) == REQUEST.kept_slots + 1
    # A day's calls processed after calls 40 days later still find their own slot.
    assert T0 // (24 * HOUR) + 40 in slots


def test_the_stored_form_round_trips_and_refuses_anything_else() -> None:
    slots = noted(noted({}, T0, REQUEST), T0 + 30 * HOUR, REQUEST)
    assert decode(encode(slots)) == slots
    with pytest.raises(ValueError, match="first, last"):
        decode({"1": [1]})
    with pytest.raises(ValueError, match="first, last"):
        decode({"1": [True, 2]})
    assert micros(datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=7)) == 7
