"""The rate limiter (shared/store/ratelimit.py) on the emulator: the limit is exact across
processes, never exceeded by concurrent calls, and no document is written twice (the write
log of the pinned emulator patch), so the per-document write rate holds at any call rate;
past the limit the writes stop."""

from __future__ import annotations

import itertools
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from google.cloud import firestore

from devstack.emulators import EmulatorHosts
from devstack.firestore_writes import WriteLog
from shared.errors import RateLimited
from shared.store.ratelimit import FirestoreRateLimiter

NOW = datetime(2026, 11, 20, 10, 0, 5, tzinfo=UTC)  # 55 s left in its window


def allowed(limiter: FirestoreRateLimiter, who: str, limit: int) -> bool:
    """Whether the call passed (a refused one says when the window ends)."""
    refused: RateLimited | None = None
    try:
        limiter.hit("workspace_calls", who, limit, NOW)
    except RateLimited as e:
        refused = e
    if refused is None:
        return True
    assert refused.retry_after_s == 55
    return False


def test_the_limit_is_exact_across_processes(project_id: str) -> None:
    clients = [firestore.Client(project=project_id) for _ in range(3)]
    limiters = itertools.cycle([FirestoreRateLimiter(c) for c in clients])
    results = [allowed(next(limiters), "ws-a", 50) for _ in range(80)]
    assert results == [True] * 50 + [False] * 30
    assert allowed(next(limiters), "ws-b", 50)  # another workspace: its own count
    for client in clients:
        client.close()


def test_concurrent_calls_never_pass_the_limit(project_id: str) -> None:
    clients = [firestore.Client(project=project_id) for _ in range(4)]
    limiters = [FirestoreRateLimiter(c) for c in clients]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda n: allowed(limiters[n % 4], "ws", 100), range(300)))
    # A call counts itself before it reads the count: racing calls may refuse one another
    # near the limit (at most one each), never admit one too many.
    assert 100 - 8 <= sum(results) <= 100
    assert not any(results[-50:])
    for client in clients:
        client.close()


def test_no_document_is_written_twice_and_writes_stop_past_the_limit(
    emulators: EmulatorHosts, project_id: str
) -> None:
    clients = [firestore.Client(project=project_id) for _ in range(3)]
    limiters = itertools.cycle([FirestoreRateLimiter(c) for c in clients])
    who = f"ws-{uuid.uuid4().hex[:6]}"
    with WriteLog(emulators.firestore) as client, client.logging(project_id) as log:
        results = [allowed(next(limiters), who, 300) for _ in range(700)]
        stats = log.stats(top=3, prefix="ratelimits/")
    assert sum(results) == 300
    assert stats.hottest[0].writes == 1  # every call its own document: any rate holds
    # Each process counts one call past the limit, then refuses without writing.
    assert 300 < stats.writes <= 300 + 3
    for c in clients:
        c.close()


@pytest.mark.parametrize("limit", [1, 6000])
def test_a_limit_of_any_size_counts_from_one(project_id: str, limit: int) -> None:
    client = firestore.Client(project=project_id)
    limiter = FirestoreRateLimiter(client)
    assert allowed(limiter, "ws", limit)
    assert allowed(limiter, "ws", limit) is (limit > 1)
    client.close()
