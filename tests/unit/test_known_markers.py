"""The markers an aggregator process remembers (record markers, window markers with their
version): per workspace, most recent kept, bounded."""

from __future__ import annotations

from shared.store.usage import KnownMarkers, KnownWindows, WindowState


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


def test_window_markers_are_known_per_workspace_and_bounded() -> None:
    known = KnownWindows(capacity=2)
    state = WindowState(stored={1: (5, 9)}, version=None, local={1: (5, 12)})
    known.put("ws1", {"q_a": state, "q_b": state})
    assert known.of("ws1", ["q_a", "q_c"]) == {"q_a": state}
    assert known.of("ws2", ["q_a"]) == {}
    # q_a was just read: q_b is the least recent and goes first.
    known.put("ws1", {"q_c": state})
    assert set(known.of("ws1", ["q_a", "q_b", "q_c"])) == {"q_a", "q_c"}
