"""Ingest and the 90-day query, on the local stack (``run_stack``: emulators and functions).

- ceiling: the Firestore emulator's own batched-write rate, empty documents built from the
  raw protobuf classes in commits of 500, ``COMMITTERS`` commits in flight (as the aggregator
  commits), measured in this run (and, for reference, small documents through the client's
  own ``batch.set``);
- the store's ceiling for this very workload (the baseline): the commits ``apply`` makes
  for the records (each record's marker, its request-hash marker when it is the first of
  its kind, its share of its day's two parts), built ahead and committed back to back,
  ``COMMITTERS`` at once: what the emulator takes, with no Apex work left in the timing;
- ``FirestoreUsageStore.apply``: what ``usage_aggregator`` does with each batch, in this process;
- end to end: NDJSON bodies of 5,000 records POSTed to ``usage_ingest`` → Pub/Sub → push →
  ``usage_aggregator``, from the first POST until the workspace counts every record;
- the data agent over 90 days of the synthetic workspace, as the chat's data step asks it
  (no user breakdown) and with every breakdown; baseline: the same rollup documents
  streamed with the official client and nothing else (what the store itself costs).

    .venv/bin/python -m bench.ingest [--records 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from google.cloud import firestore
from google.cloud.firestore_v1 import FieldFilter

from bench.common import report
from bench.relay_capacity import bench_stack, cpu_s, sign_up
from devstack.synthetic import generate
from shared.agents.data import measure
from shared.agents.pipeline import CHAT_DIMENSIONS
from shared.agents.trace import EventLog
from shared.models.period import resolve_token
from shared.models.usage import UsageRecord
from shared.price_book import PriceBook
from shared.store import raw_writes
from shared.store.usage import COMMITTERS, WORKSPACES, FirestoreUsageStore, commit_chunks
from shared.usage import report as usage_report
from shared.usage.layout import USAGE_DAILY_COLLECTION, USAGE_DAILY_USERS_COLLECTION
from shared.usage.rollups import accumulate

TARGET = (
    "target: >= 0.8x the emulator's batched-write ceiling, >= 10,000 records/s where the "
    "store allows it; 90-day query <= 200 ms"
)
INGEST_BODY_RECORDS = 5000


def write_ceiling(db: firestore.Client, docs: int, *, raw: bool) -> float:
    """Documents/s in commits of 500 (the most one commit holds), ``COMMITTERS`` at once.

    ``raw``: empty documents created from the raw protobuf classes (``shared.store.raw_writes``,
    what the aggregator's markers are): what the emulator itself takes, with the least client
    work. Otherwise small plain documents through the client's own ``batch.set``."""
    col = db.collection(f"ceiling-{uuid.uuid4().hex[:6]}")

    def commit(start: int) -> None:
        batch = db.batch()
        refs = [col.document(f"d{i}") for i in range(start, min(docs, start + 500))]
        if raw:
            raw_writes.add(batch, [raw_writes.create_empty(ref) for ref in refs])
        else:
            for i, ref in enumerate(refs):
                batch.set(ref, {"n": start + i, "day": "2026-11-20", "requests": 1})
        batch.commit()

    started = time.perf_counter()
    with ThreadPoolExecutor(COMMITTERS) as pool:
        list(pool.map(commit, range(0, docs, 500)))
    return docs / (time.perf_counter() - started)


def prepared_commits(
    store: FirestoreUsageStore, workspace: str, records: Sequence[UsageRecord]
) -> tuple[list[firestore.WriteBatch], int]:
    """The commits ``apply`` makes for ``records`` into a new workspace, built ahead, and
    the documents they write."""
    batches, writes, seen = [], 0, dict[str, dict[int, tuple[int, int]]]()
    for chunk in commit_chunks(records):
        # Chunks' window markers are their own here (each created once, as in a first
        # ingest where every batch brings new requests).
        rollups = accumulate(chunk, markers=seen)
        new = {m: s for m, s in rollups.markers.items() if m not in seen}
        seen.update(rollups.markers)
        rollups = rollups.model_copy(update={"markers": new})
        batches.append(store.batch(workspace, rollups, chunk))
        writes += len(rollups.record_ids) + len(new)
        writes += 2 * len({r.day for r in chunk})  # a part in each rollup collection
    return batches, writes


def replay(batches: Sequence[firestore.WriteBatch]) -> float:
    """Seconds to commit prepared batches, ``COMMITTERS`` at once."""
    started = time.perf_counter()
    with ThreadPoolExecutor(COMMITTERS) as pool:
        list(pool.map(lambda batch: batch.commit(), batches))
    return time.perf_counter() - started


def until_counted(
    store: FirestoreUsageStore, workspace: str, records: int, timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    while store.catalogue(workspace).records < records:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{workspace}: not every record was applied in {timeout_s} s")
        time.sleep(0.05)


def end_to_end(
    ingest_url: str, token: str, store: FirestoreUsageStore, workspace: str, raw: Sequence[object]
) -> float:
    """Records/s from the first POST to ``usage_ingest`` until the aggregator applied all."""
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/x-ndjson",
        "X-Apex-Workspace": workspace,
    }
    started = time.perf_counter()
    with httpx.Client(timeout=60) as http:
        for start in range(0, len(raw), INGEST_BODY_RECORDS):
            body = raw[start : start + INGEST_BODY_RECORDS]
            response = http.post(
                ingest_url, content="\n".join(json.dumps(r) for r in body), headers=headers
            )
            if response.status_code != 202 or response.json()["rejected"]:
                raise RuntimeError(f"usage_ingest: {response.status_code} {response.text[:300]}")
    until_counted(store, workspace, len(raw), timeout_s=300)
    return len(raw) / (time.perf_counter() - started)


def _label(pid: int) -> str | None:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    except OSError:
        return None
    if "--target" in argv:
        return f"function {argv[argv.index('--target') + 1]}"
    joined = " ".join(argv)
    for needle, label in (
        ("firestore_emulator", "Firestore emulator"),
        ("devstack.pubsub", "Pub/Sub emulator"),
        ("emulators:start", "Auth emulator"),
        ("-m relay", "relay"),
    ):
        if needle in joined:
            return label
    return None


def stack_cpu_s() -> dict[str, float]:
    """CPU seconds so far of each process of the stack (this process's descendants)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    totals: dict[str, float] = {"bench (this process)": cpu_s(os.getpid())}
    todo = list(children.get(os.getpid(), []))
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        label = _label(pid)
        if label is not None:
            try:
                totals[label] = totals.get(label, 0.0) + cpu_s(pid)
            except OSError:
                continue
    return totals


def median_ms(samples: int, call: Callable[[], object]) -> tuple[float, list[float]]:
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        call()
        times.append(round((time.perf_counter() - started) * 1000, 1))
    return statistics.median(times), times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=20_000)
    args = parser.parse_args()
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    ninety = generate(end=yesterday, days=90, scale=max(1, args.records // 27_000))
    records, raw = ninety.records[: args.records], ninety.raw[: args.records]
    with bench_stack() as running:
        os.environ.update(running.env)
        db = firestore.Client(project=running.project)
        store = FirestoreUsageStore(db)
        client_docs = write_ceiling(db, 40_000, raw=False)
        ceiling_docs = write_ceiling(db, 40_000, raw=True)
        batches, writes = prepared_commits(store, "replay", records)
        replay_rate = len(records) / replay(batches)
        started = time.perf_counter()
        store.apply("apply", records)
        apply_rate = len(records) / (time.perf_counter() - started)
        _, token = sign_up(running, "e2e")
        cpu_before = stack_cpu_s()
        e2e_started = time.perf_counter()
        e2e_rate = end_to_end(running.functions["usage_ingest"], token, store, "e2e", raw)
        e2e_wall = time.perf_counter() - e2e_started
        cpu_after = stack_cpu_s()
        e2e_cpu = {
            name: round(cpu_after[name] - cpu_before.get(name, 0.0), 2)
            for name in sorted(cpu_after, key=lambda n: cpu_before.get(n, 0.0) - cpu_after[n])
        }

        store.apply("ninety", ninety.records)
        period = resolve_token("last_90d", datetime.now(UTC))
        days = usage_report.days_needed(period)
        own = usage_report.days_of(period)
        ws = db.collection(WORKSPACES).document("ninety")

        def stream(collection: str, first: str, last: str) -> int:
            query = (
                ws.collection(collection)
                .where(filter=FieldFilter("day", ">=", first))
                .where(filter=FieldFilter("day", "<=", last))
            )
            return len([snap.to_dict() for snap in query.stream()])

        daily_docs = stream(USAGE_DAILY_COLLECTION, days[0], days[-1])
        user_docs = stream(USAGE_DAILY_USERS_COLLECTION, own[0], own[-1])
        raw_daily, raw_daily_s = median_ms(
            5, lambda: stream(USAGE_DAILY_COLLECTION, days[0], days[-1])
        )
        chat, chat_s = median_ms(
            5,
            lambda: measure(
                EventLog().agent("data", "bench"),
                store,
                "ninety",
                period,
                dimensions=CHAT_DIMENSIONS,
                book=PriceBook.LIST,
            ),
        )
        raw_all, raw_all_s = median_ms(
            5,
            lambda: (
                stream(USAGE_DAILY_COLLECTION, days[0], days[-1]),
                stream(USAGE_DAILY_USERS_COLLECTION, own[0], own[-1]),
            ),
        )
        full, full_s = median_ms(
            5,
            lambda: measure(
                EventLog().agent("data", "bench"), store, "ninety", period, book=PriceBook.LIST
            ),
        )
    rows = [
        ["emulator batched writes, plain docs via batch.set, docs/s", round(client_docs), ""],
        ["emulator batched writes, empty docs, raw protobuf, docs/s", round(ceiling_docs), ""],
        [f"documents written a record (of {len(records):,})", round(writes / len(records), 2), ""],
        [
            "the same commits, built ahead, replayed: records/s (baseline)",
            round(replay_rate),
            "1.00",
        ],
        ["UsageStore.apply, records/s", round(apply_rate), f"{apply_rate / replay_rate:.2f}"],
        [
            "usage_ingest -> Pub/Sub -> usage_aggregator, records/s",
            round(e2e_rate),
            f"{e2e_rate / replay_rate:.2f}",
        ],
        [f"stream {daily_docs} daily rollups, ms (baseline)", raw_daily, "1.00"],
        ["data agent 90 days, chat breakdowns, ms", chat, f"{chat / raw_daily:.2f}"],
        [f"stream those + {user_docs} per-user rollups, ms (baseline)", raw_all, "1.00"],
        ["data agent 90 days, every breakdown, ms", full, f"{full / raw_all:.2f}"],
    ]
    print(f"end to end: {e2e_wall:.2f} s wall; CPU s by process: {e2e_cpu}")
    report(
        "ingest",
        ["measure", "value", "x baseline"],
        rows,
        {
            "records": len(records),
            "ninety_day_records": len(ninety.records),
            "committers": COMMITTERS,
            "end_to_end": {"wall_s": round(e2e_wall, 2), "cpu_s_by_process": e2e_cpu},
            "target": TARGET,
            "samples_ms": {
                "stream_daily": raw_daily_s,
                "chat": chat_s,
                "stream_all": raw_all_s,
                "every_breakdown": full_s,
            },
        },
    )


if __name__ == "__main__":
    main()
