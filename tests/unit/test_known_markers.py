"""The markers an aggregator process remembers: per workspace, most recent kept, bounded."""

from __future__ import annotations

from shared.store.usage import KnownMarkers


def test_markers_are_known_per_workspace() -> None:
    known = KnownMarkers(capacity=10)
    known.add("ws1", ["r_a", "r_b"])
    assert known.of("ws1", ["r_a", "r_b", "r_c"]) == {"r_a", "r_b"}
    assert known.of("ws2", ["r_a"]) == set()


def test_the_least_recently_seen_are_forgotten_first() -> None:
    known = KnownMarkers(capacity=3)
    known.add("ws", ["m1", "m2", "m3"])
    assert known.of("ws", ["m1"]) == {"m1"}  # seen again: now the most recent
    known.add("ws", ["m4"])
    assert known.of("ws", ["m1", "m2", "m3", "m4"]) == {"m1", "m3", "m4"}
    known.add("ws", ["m5", "m6", "m7"])
    assert known.of("ws", ["m1", "m3", "m4", "m5", "m6", "m7"]) == {"m5", "m6", "m7"}
