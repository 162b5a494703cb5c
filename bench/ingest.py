"""Ingest and the 90-day query, on the local stack (``run_stack``: emulators and functions).

- ceiling: the Firestore emulator's own batched-write rate, empty documents built from the
  raw protobuf classes in commits of 500, ``COMMITTERS`` commits in flight (as the aggregator
  commits), measured in this run (and, for reference, small documents through the client's
  own ``batch.set``);
- the writes a record costs: its marker, its request-hash marker when it is the first of
  its kind, and its share of the rollup documents and the workspace document its commit
  touches (counted from the records, as ``UsageStore.apply`` chunks them);
- ``UsageStore.apply``: what ``usage_aggregator`` does with each batch, in this process;
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

import httpx
from google.cloud import firestore
from google.cloud.firestore_v1 import FieldFilter

from bench.common import report
from bench.relay_capacity import bench_stack, sign_up
from devstack.synthetic import generate
from shared.agents.data import measure
from shared.agents.pipeline import CHAT_DIMENSIONS
from shared.agents.trace import EventLog
from shared.models.period import resolve_token
from shared.models.usage import UsageRecord
from shared.store import raw_writes
from shared.store.usage import COMMITTERS, WORKSPACES, UsageStore, commit_chunks
from shared.usage import report as usage_report
from shared.usage.rollup import USAGE_DAILY_COLLECTION, USAGE_DAILY_USERS_COLLECTION, accumulate

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


def writes_per_record(records: Sequence[UsageRecord]) -> float:
    """Documents written per record when none was applied before (as ``apply`` commits)."""
    writes, seen = 0, set[str]()
    for chunk in commit_chunks(records):
        batch = accumulate(chunk, seen_request_hashes=seen)
        seen |= batch.new_request_hashes
        writes += len(batch.record_ids) + len(batch.new_request_hashes) + 1
        writes += len(batch.daily) + len(batch.users)
    return writes / len(records)


def until_counted(store: UsageStore, workspace: str, records: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while store.catalogue(workspace).records < records:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{workspace}: not every record was applied in {timeout_s} s")
        time.sleep(0.05)


def end_to_end(
    ingest_url: str, token: str, store: UsageStore, workspace: str, raw: Sequence[object]
) -> float:
    """Records/s from the first POST to ``usage_ingest`` until the aggregator applied all."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"}
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
        store = UsageStore(db)
        per_record = writes_per_record(records)
        client_docs = write_ceiling(db, 40_000, raw=False)
        ceiling_docs = write_ceiling(db, 40_000, raw=True)
        started = time.perf_counter()
        store.apply("apply", records)
        apply_rate = len(records) / (time.perf_counter() - started)
        _, token = sign_up(running, "e2e")
        e2e_rate = end_to_end(running.functions["usage_ingest"], token, store, "e2e", raw)

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
            5, lambda: measure(EventLog().agent("data", "bench"), store, "ninety", period)
        )
    ceiling_records = ceiling_docs / per_record
    rows = [
        ["emulator batched writes, plain docs via batch.set, docs/s", round(client_docs), ""],
        [
            "emulator batched writes, empty docs, raw protobuf, docs/s (baseline)",
            round(ceiling_docs),
            "",
        ],
        [f"writes a record costs (of {len(records):,} records)", round(per_record, 2), ""],
        ["ceiling as records/s (docs/s / writes a record)", round(ceiling_records), "1.00"],
        [
            "UsageStore.apply, records/s",
            round(apply_rate),
            f"{apply_rate / ceiling_records:.2f}",
        ],
        [
            "usage_ingest -> Pub/Sub -> usage_aggregator, records/s",
            round(e2e_rate),
            f"{e2e_rate / ceiling_records:.2f}",
        ],
        [f"stream {daily_docs} daily rollups, ms (baseline)", raw_daily, "1.00"],
        ["data agent 90 days, chat breakdowns, ms", chat, f"{chat / raw_daily:.2f}"],
        [f"stream those + {user_docs} per-user rollups, ms (baseline)", raw_all, "1.00"],
        ["data agent 90 days, every breakdown, ms", full, f"{full / raw_all:.2f}"],
    ]
    report(
        "ingest",
        ["measure", "value", "x baseline"],
        rows,
        {
            "records": len(records),
            "ninety_day_records": len(ninety.records),
            "committers": COMMITTERS,
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
