"""The per-user rate limits count in fixed one-minute windows (shared/store/ratelimit.py): a
test that counts calls up to a limit must make them all within one window."""

from __future__ import annotations

import time

from shared.store.ratelimit import WINDOW_S


def seconds_left_in_window() -> float:
    return WINDOW_S - time.time() % WINDOW_S


def start_within_one_window(need_s: float) -> None:
    """Wait for the next window if fewer than ``need_s`` seconds are left of this one, so
    that the calls of the next ``need_s`` seconds all count in the same window."""
    left = seconds_left_in_window()
    if left < need_s:
        time.sleep(left + 0.1)
