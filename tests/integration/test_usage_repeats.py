"""Repeats over a rolling window through the store (DESIGN §8): a request hash seen within
24 hours, a prompt prefix hash within 5 minutes, across batches, processes and redeliveries,
against the Firestore emulator."""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from google.cloud import firestore

from shared.errors import Unavailable
from shared.models.usage import UsageRecord, usage_record
from shared.store.usage import WINDOW_MARKER_TTL, FirestoreUsageStore
from shared.usage import repeats
from shared.usage.layout import HASH_WINDOWS_COLLECTION
from shared.usage.rollups import accumulate

EVENING = datetime(2026, 11, 2, 23, 50, tzinfo=UTC)
SPAN = ("2026-11-01", "2026-11-06")


def call(n: int, ts: datetime, **fields: Any) -> UsageRecord:
    base: dict[str, Any] = {
        "ts": ts,
        "provider": "openai",
        "model": "gpt-4o",
        "feature": "faq",
        "user": f"u{n}",
        "input_tokens": 500 + n,
        "output_tokens": 40,
        "request_hash": "what-are-your-hours",
    }
    base.update(fields)
    return usage_record(record_id=f"call-{n}", **base)


def repeat_counts(store: FirestoreUsageStore, workspace: str) -> dict[str, int]:
    return {r.day: r.repeat_requests for r in store.daily(workspace, *SPAN)}


def test_23_50_then_00_10_is_a_repeat_across_batches_and_processes(
    firestore_client: firestore.Client,
) -> None:
    FirestoreUsageStore(firestore_client).apply("rp1", [call(1, EVENING)])
    # Another aggregator, knowing nothing: it reads the marker its create ran into.
    other = FirestoreUsageStore(firestore_client)
    assert other.apply("rp1", [call(2, EVENING + timedelta(minutes=20))]) == 1
    assert repeat_counts(other, "rp1") == {"2026-11-02": 0, "2026-11-03": 1}
    # The marker keeps when the hash was seen.
    (marker,) = firestore_client.collection(f"workspaces/rp1/{HASH_WINDOWS_COLLECTION}").stream()
    stored = marker.to_dict() or {}
    slots = repeats.decode(stored["slots"])
    assert sorted(slots.values()) == [
        (repeats.micros(EVENING), repeats.micros(EVENING)),
        (repeats.micros(EVENING) + 20 * 60 * 10**6,) * 2,
    ]
    # Firestore's TTL deletes it some days after it was last written (its calls are older).
    written = stored["expires_at"] - WINDOW_MARKER_TTL
    assert timedelta(0) <= datetime.now(UTC) - written < timedelta(minutes=5)
    # More than 24 h after the last: not a repeat, whichever process applies it.
    late = call(3, EVENING + timedelta(days=1, minutes=21))
    assert FirestoreUsageStore(firestore_client).apply("rp1", [late]) == 1
    assert repeat_counts(other, "rp1")["2026-11-04"] == 0


def test_a_redelivered_batch_counts_its_repeats_once(firestore_client: firestore.Client) -> None:
    batch = [call(n, EVENING + timedelta(minutes=n)) for n in range(5)]
    store = FirestoreUsageStore(firestore_client)
    assert store.apply("rp2", batch) == 5
    assert FirestoreUsageStore(firestore_client).apply("rp2", batch) == 0
    assert store.apply("rp2", batch[2:]) == 0
    assert sum(repeat_counts(store, "rp2").values()) == 4


def test_concurrent_aggregators_neither_miss_nor_double_count(
    firestore_client: firestore.Client,
) -> None:
    # The same question on three days, in batches applied at once by four aggregators, in
    # shuffled order: the repeats are those of the calls in time order.
    rng = random.Random(5)
    calls = [
        call(n, EVENING + timedelta(minutes=rng.randrange(0, 3 * 24 * 60)), request_hash=h)
        for n, h in enumerate(rng.choice(["a", "b", "c"]) for _ in range(240))
    ]
    rng.shuffle(calls)
    batches = [calls[i : i + 20] for i in range(0, len(calls), 20)]
    stores = [FirestoreUsageStore(firestore_client) for _ in range(4)]
    lock = threading.Lock()
    queue = [*batches, batches[2], batches[5]]  # two redelivered

    def work(store: FirestoreUsageStore) -> int:
        applied = 0
        while True:
            with lock:
                if not queue:
                    return applied
                batch = queue.pop()
            try:
                applied += store.apply("rp3", batch)
            except Unavailable:
                with lock:
                    queue.append(batch)  # as Pub/Sub delivers it again

    with ThreadPoolExecutor(len(stores)) as pool:
        assert sum(pool.map(work, stores)) == len(calls)
    in_time_order = accumulate(sorted(calls, key=lambda r: r.ts))
    got = FirestoreUsageStore(firestore_client).daily("rp3", *SPAN)
    assert sum(r.repeat_requests for r in got) == sum(
        r.repeat_requests for r in in_time_order.daily.values()
    )
    assert sum(r.hashed_requests for r in got) == len(calls)


def test_batches_of_days_far_apart_applied_newest_first_lose_no_repeat(
    firestore_client: firestore.Client,
) -> None:
    """A backfill: a month of one popular question in day batches, applied at once by four
    aggregators, the newest first. The calls of each day follow calls days later already on
    the marker; none of their repeats may be lost (with three slots kept, most were)."""
    start = datetime(2026, 10, 1, 9, tzinfo=UTC)
    calls = [
        call(day * 10 + n, start + timedelta(days=day, minutes=37 * n), request_hash="faq-1")
        for day in range(30)
        for n in range(10)
    ]
    batches = [calls[i : i + 10] for i in range(0, len(calls), 10)][::-1]
    with ThreadPoolExecutor(4) as pool:
        applied = pool.map(lambda b: FirestoreUsageStore(firestore_client).apply("rp5", b), batches)
        assert sum(applied) == len(calls)
    got = FirestoreUsageStore(firestore_client).daily("rp5", "2026-10-01", "2026-10-31")
    # One cluster (each day's calls less than 24 h after the day before's): all but the first.
    assert sum(r.repeat_requests for r in got) == len(calls) - 1


def test_prefix_repeats_through_the_store(firestore_client: firestore.Client) -> None:
    def prefixed(n: int, minutes: float) -> UsageRecord:
        return call(
            n,
            EVENING + timedelta(minutes=minutes),
            request_hash=None,
            prompt_prefix_hash="system-v7",
            input_tokens=6000 + n,
            cached_input_tokens=0,
        )

    store = FirestoreUsageStore(firestore_client)
    store.apply("rp4", [prefixed(1, 0), prefixed(2, 3)])
    # 6 min after the last (cold), then 30 s after that (warm), by another aggregator.
    FirestoreUsageStore(firestore_client).apply("rp4", [prefixed(3, 9), prefixed(4, 9.5)])
    (row,) = store.daily("rp4", *SPAN)
    assert (row.prefix_hashed_requests, row.prefix_repeat_requests) == (4, 2)
    assert row.prefix_repeat_input_tokens == 6002 + 6004
    assert row.prefix_repeat_min_input_tokens == 6002


def test_a_process_updates_the_markers_it_wrote_without_reading_them(
    firestore_client: firestore.Client, monkeypatch: Any
) -> None:
    # Each write's version comes back with its commit: the next write's precondition. A
    # wrong one would cost every later commit a failed attempt and a read.
    store = FirestoreUsageStore(firestore_client)
    reads: list[int] = []
    read_windows = store._read_windows

    def counted(ws: Any, windows: Any) -> Any:
        reads.append(1)
        return read_windows(ws, windows)

    monkeypatch.setattr(store, "_read_windows", counted)
    for n in range(4):  # each call opens a slot: each commit updates both markers
        at = EVENING + timedelta(hours=8 * n)
        assert store.apply("rp5", [call(n, at, prompt_prefix_hash="sys")]) == 1
    assert reads == []
    assert sum(repeat_counts(store, "rp5").values()) == 3
