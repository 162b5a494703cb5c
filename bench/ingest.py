"""Ingest: records/s the aggregator applies (``UsageStore.apply``, what ``usage_aggregator``
does with each batch), against the Firestore emulator's own batched-write rate measured in
the same run; and the data agent's 90-day query.

    .venv/bin/python -m bench.ingest [--records 20000]
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta

from google.cloud import firestore

from bench.common import emulators, report
from devstack.synthetic import generate
from shared.agents.data import measure
from shared.agents.trace import EventLog
from shared.models.period import resolve_token
from shared.store.usage import UsageStore

PROJECT = "demo-bench-ingest"
TARGET = (
    "target: >= 0.8x the emulator's batched-write ceiling, >= 10,000 records/s; "
    "90-day query <= 200 ms"
)


def write_ceiling(db: firestore.Client, docs: int) -> float:
    """Plain documents/s in batches of 500 (the most one commit holds)."""
    col = db.collection("ceiling")
    started = time.perf_counter()
    for start in range(0, docs, 500):
        batch = db.batch()
        for i in range(start, min(docs, start + 500)):
            batch.set(col.document(f"d{i}"), {"n": i, "day": "2026-11-20", "requests": 1})
        batch.commit()
    return docs / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=20_000)
    args = parser.parse_args()
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    workspace = generate(end=yesterday, days=90, scale=max(1, args.records // 27_000))
    records = workspace.records[: args.records]
    with emulators(PROJECT):
        db = firestore.Client(project=PROJECT)
        store = UsageStore(db)
        # Each record costs about two writes (its marker, and a share of the rollups).
        ceiling_docs = write_ceiling(db, 2 * len(records))
        started = time.perf_counter()
        store.apply("bench", records)
        apply_rate = len(records) / (time.perf_counter() - started)
        store.apply("ninety", workspace.records)
        period = resolve_token("last_90d", datetime.now(UTC))
        samples = []
        for _ in range(5):
            t = time.perf_counter()
            measure(EventLog().agent("data", "bench"), store, "ninety", period)
            samples.append(time.perf_counter() - t)
    ceiling_records = ceiling_docs / 2
    rows = [
        ["emulator batched writes (docs/s)", round(ceiling_docs), "baseline"],
        ["  as records/s (2 writes each)", round(ceiling_records), "1.00"],
        ["aggregator apply (records/s)", round(apply_rate), f"{apply_rate / ceiling_records:.2f}"],
        ["data agent, 90 days (ms, median of 5)", round(sorted(samples)[2] * 1000, 1), ""],
    ]
    report(
        "ingest",
        ["measure", "value", "x ceiling"],
        rows,
        {
            "records": len(records),
            "ninety_day_records": len(workspace.records),
            "target": TARGET,
            "query_samples_ms": [round(s * 1000, 1) for s in samples],
        },
    )


if __name__ == "__main__":
    main()
