"""Fleet-scale ingest into one workspace through the usage store (DESIGN §10): batches well
above one a second for several seconds, from several aggregator processes, with duplicate
records, retried exports and redelivered batches. Every record counts exactly once, the
rollups equal the fold of the distinct records, and the hottest document's writes, from
the emulator's write log (devstack/firestore_writes.py), average at most one a second."""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.cloud import firestore

from devstack.emulators import EmulatorHosts
from devstack.firestore_writes import WriteLog
from shared.errors import Unavailable
from shared.models.usage import UsageRecord, usage_record
from shared.store.usage import FirestoreUsageStore
from shared.usage.rollups import DailyRollup, accumulate

RUN_S = 8.0
PROCESSES = 4
BATCH = 40
DAY = datetime(2026, 11, 20, tzinfo=UTC)


def record(n: int, rng: random.Random, live: float | None = None) -> UsageRecord:
    """A span of the fleet: stamped anywhere in the day, or (``live``: seconds into the run)
    as a live fleet stamps them, a second or two apart, every call with its feature's
    system prompt hashed (one hot prefix marker per workload)."""
    if live is None:
        ts, prefix = DAY + timedelta(seconds=rng.randrange(86_000)), None
    else:
        ts = DAY + timedelta(hours=12, seconds=live + rng.uniform(-2, 0))
        prefix = "system-prompt-v3"
    return usage_record(
        record_id=f"span-{n}",
        ts=ts,
        prompt_prefix_hash=prefix,
        provider="openai",
        model=rng.choice(["gpt-4o", "gpt-4o-mini", "gpt-4.1"]),
        feature=f"feature-{rng.randrange(12)}",
        user=f"user-{rng.randrange(30)}",
        status="error" if rng.random() < 0.05 else "ok",
        input_tokens=rng.randrange(100, 4000),
        cached_input_tokens=0,
        output_tokens=rng.randrange(5, 800),
        latency_ms=rng.randrange(80, 9000),
        request_hash=f"h{rng.randrange(200)}" if rng.random() < 0.3 else None,
    )


# Which of a request's repeats came first depends on the order the batches were applied in,
# and so do the tokens and cost counted as repeated (the number of repeats does not).
ORDER_DEPENDENT = {
    "repeat_input_tokens",
    "repeat_cached_input_tokens",
    "repeat_output_tokens",
    "repeat_cost_nanousd",
    "prefix_repeat_input_tokens",
    "prefix_repeat_cached_input_tokens",
    "prefix_repeat_min_input_tokens",
}


def comparable(row: DailyRollup) -> dict[str, Any]:
    return {k: v for k, v in row.model_dump().items() if k not in ORDER_DEPENDENT}


@pytest.mark.parametrize("live", [False, True], ids=["stamped-any-time", "live-hot-prefix"])
def test_fleet_ingest_counts_once_and_no_document_passes_one_write_a_second(
    emulators: EmulatorHosts, project_id: str, live: bool
) -> None:
    workspace = "ws-live" if live else "ws"
    rng = random.Random(13)
    clients = [firestore.Client(project=project_id) for _ in range(PROCESSES)]
    stores = [FirestoreUsageStore(c) for c in clients]
    sent: dict[str, UsageRecord] = {}
    lock = threading.Lock()
    counter = iter(range(10**9))
    delivered = applied = 0

    def next_batch() -> list[UsageRecord]:
        """A fresh export, or (1 in 6) one retried with a few new spans; duplicates inside."""
        with lock:
            now = time.monotonic() - started if live else None
            batch = [record(next(counter), rng, now) for _ in range(BATCH)]
            if sent and rng.random() < 1 / 6:
                batch[: BATCH // 2] = rng.sample(list(sent.values()), BATCH // 2)
            batch.append(batch[0])  # a span twice in one export
            sent.update((r.record_id, r) for r in batch)
            return batch

    def aggregator(n: int) -> tuple[int, int]:
        """Deliveries and records applied by one process; 1 in 5 deliveries twice, and a
        delivery that lost too many races on its markers delivered again, as Pub/Sub does."""
        deliveries = records = 0
        while time.monotonic() < deadline:
            batch = next_batch()
            times = 2 if rng.random() < 0.2 else 1
            while times:
                deliveries += 1
                try:
                    records += stores[n].apply(workspace, batch)
                except Unavailable:
                    continue
                times -= 1
        return deliveries, records

    with WriteLog(emulators.firestore) as client, client.logging(project_id) as log:
        started = time.monotonic()
        deadline = started + RUN_S
        with ThreadPoolExecutor(PROCESSES) as pool:
            for deliveries, records in pool.map(aggregator, range(PROCESSES)):
                delivered += deliveries
                applied += records
        elapsed = time.monotonic() - started
        stats = log.stats(top=5)

    assert delivered / elapsed >= 5, f"{delivered} deliveries in {elapsed:.1f} s"
    assert applied == len(sent)
    hottest = stats.hottest[0]
    assert hottest.writes / elapsed <= 1.0, stats.hottest
    reader = FirestoreUsageStore(clients[0])
    expected = accumulate(sent.values())
    got = {r.doc_id: r for r in reader.daily(workspace, "2026-11-20", "2026-11-20")}
    assert {k: comparable(r) for k, r in got.items()} == {
        k: comparable(r) for k, r in expected.daily.items()
    }
    assert {r.doc_id: r for r in reader.users(workspace, "2026-11-20", "2026-11-20")} == (
        expected.users
    )
    assert reader.catalogue(workspace).records == len(sent)
    if live:
        assert sum(r.prefix_repeat_requests for r in got.values()) > 0
    for c in clients:
        c.close()
