"""The read side of the usage layout (issue 13): ``agents_data`` with every breakdown on a
large team's workspace, against ``agents_triage`` measured the same way in the same run.

    .venv/bin/python -m bench.usage_read [--rounds 5] [--requests 40] [--models-per-feature 10]

The workspace: 50 features x 10 models x 200 users over 90 days, every feature calling
``--models-per-feature`` of the models every day (10: all 500 (feature, model) rollups
every day, the worst case of those numbers), written through ``UsageStore.apply`` (the
aggregator's own path) and compacted, as a past day is. Both functions run as their own
functions-framework processes on loopback; rounds alternate triage and data (``requests``
warm calls each), and the figure is the median over the rounds of data p50 / triage p50,
with the range. Documents read: what the data agent's two queries return.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from google.cloud import firestore
from google.cloud.firestore_v1 import FieldFilter

from bench.common import create_topics, emulators, new_user, report, summary_ms
from bench.functions import start
from shared.models.period import resolve_token
from shared.models.usage import UsageRecord, usage_record
from shared.store.usage import WORKSPACES, FirestoreUsageStore
from shared.usage import report as usage_report
from shared.usage.layout import USAGE_DAILY_COLLECTION, USAGE_DAILY_USERS_COLLECTION

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "demo-bench-read"
WORKSPACE = "large-team"
FEATURES, MODELS, USERS, DAYS = 50, 10, 200, 90
TARGET = "agents_data (every breakdown) warm p50 <= 5x agents_triage warm p50, same run"
# Priced models of three providers (the price table knows them all).
MODEL_NAMES = (
    ("openai", "gpt-4o"),
    ("openai", "gpt-4o-mini"),
    ("openai", "gpt-4.1"),
    ("openai", "gpt-4.1-mini"),
    ("openai", "o3-mini"),
    ("anthropic", "claude-sonnet-4-6"),
    ("anthropic", "claude-haiku-4-5"),
    ("anthropic", "claude-opus-4-1"),
    ("google", "gemini-2.5-flash"),
    ("google", "gemini-2.5-pro"),
)


def records_of_day(
    day: date, per_feature: int, calls: int, rng: random.Random
) -> list[UsageRecord]:
    """``calls`` calls for each (feature, model) pair of the day: every pair present, the
    calls dealt to the users in turn (every user present when there are enough)."""
    out: list[UsageRecord] = []
    start_of_day = datetime(day.year, day.month, day.day, tzinfo=UTC)
    for f in range(FEATURES):
        for m in range(per_feature):
            provider, model = MODEL_NAMES[(f + m) % MODELS]
            for c in range(calls):
                n = rng.randrange(1 << 40)
                out.append(
                    usage_record(
                        record_id=f"{day}-{f}-{m}-{c}-{n:x}",
                        ts=start_of_day + timedelta(seconds=rng.randrange(86_000)),
                        provider=provider,
                        model=model,
                        feature=f"feature-{f:02d}",
                        user=f"user-{len(out) % USERS:03d}",
                        status="error" if rng.random() < 0.02 else "ok",
                        input_tokens=rng.randrange(200, 6000),
                        cached_input_tokens=0,
                        output_tokens=rng.randrange(10, 1200),
                        latency_ms=rng.randrange(100, 12_000),
                        request_hash=f"q{rng.randrange(50)}" if rng.random() < 0.2 else None,
                    )
                )
    return out


def load(db: firestore.Client, per_feature: int, calls: int) -> int:
    """The workspace's 90 days through the aggregator's path, then compacted."""
    store = FirestoreUsageStore(db)
    rng = random.Random(13)
    end = datetime.now(UTC).date()
    total = 0
    for n in range(DAYS):
        records = records_of_day(end - timedelta(days=DAYS - 1 - n), per_feature, calls, rng)
        if len({r.user for r in records}) < USERS:
            raise RuntimeError("every user calls every day: raise --calls")
        total += store.apply(WORKSPACE, records)
    while store.compact(WORKSPACE).parts_folded:
        pass
    return total


def documents_read(db: firestore.Client, period_token: str) -> dict[str, int]:
    """What ``agents_data``'s two queries return: the daily rollups' documents over the days
    the report needs, the per-user ones over the period."""
    period = resolve_token(period_token, datetime.now(UTC))
    days, own = usage_report.days_needed(period), usage_report.days_of(period)
    ws = db.collection(WORKSPACES).document(WORKSPACE)

    def count(collection: str, first: str, last: str) -> int:
        query = (
            ws.collection(collection)
            .where(filter=FieldFilter("day", ">=", first))
            .where(filter=FieldFilter("day", "<=", last))
        )
        return len(list(query.stream()))

    return {
        "days_needed": len(days),
        "period_days": len(own),
        "daily_docs": count(USAGE_DAILY_COLLECTION, days[0], days[-1]),
        "user_docs": count(USAGE_DAILY_USERS_COLLECTION, own[0], own[-1]),
    }


def timed(client: httpx.Client, send: Any, requests: int) -> list[float]:
    samples = []
    for _ in range(requests):
        t = time.perf_counter()
        response = send(client)
        samples.append(time.perf_counter() - t)
        if not response.is_success:
            raise RuntimeError(f"{response.status_code} {response.text[:300]}")
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--models-per-feature", type=int, default=MODELS)
    parser.add_argument("--calls", type=int, default=2, help="calls a (feature, model) a day")
    parser.add_argument("--period", default="last_30d")
    args = parser.parse_args()
    with emulators(PROJECT) as hosts:
        os.environ["APEX_FUNCTION_CALLS_PER_MINUTE"] = "1000000"
        os.environ["APEX_WORKSPACE_CALLS_PER_MINUTE"] = "1000000"
        create_topics(PROJECT)
        db = firestore.Client(project=PROJECT)
        started = time.perf_counter()
        records = load(db, args.models_per_feature, args.calls)
        load_s = time.perf_counter() - started
        read = documents_read(db, args.period)
        token = new_user(hosts, PROJECT, WORKSPACE).id_token
        auth = {"Authorization": f"Bearer {token}", "X-Apex-Workspace": WORKSPACE}
        main_py = ROOT / "functions" / "main.py"
        sends = {
            "agents_triage": lambda c: c.post(
                "/", headers=auth, json={"message": "What did we spend last week?"}
            ),
            "agents_data": lambda c: c.post("/", headers=auth, json={"period": args.period}),
        }
        procs = {name: start(main_py, name) for name in sends}
        clients = {name: httpx.Client(base_url=procs[name][1], timeout=60) for name in sends}
        try:
            for name, send in sends.items():  # up, and warm
                deadline = time.monotonic() + 60
                while True:
                    try:
                        timed(clients[name], send, 5)
                        break
                    except httpx.TransportError:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.1)
            rounds: list[dict[str, Any]] = []
            for _ in range(args.rounds):
                triage = summary_ms(
                    timed(clients["agents_triage"], sends["agents_triage"], args.requests)
                )
                data = summary_ms(
                    timed(clients["agents_data"], sends["agents_data"], args.requests)
                )
                rounds.append(
                    {"triage": triage, "data": data, "ratio": data["p50_ms"] / triage["p50_ms"]}
                )
        finally:
            for client in clients.values():
                client.close()
            for proc, _, _ in procs.values():
                proc.terminate()
                proc.wait(timeout=10)
    ratios = [r["ratio"] for r in rounds]
    triage_p50 = statistics.median(r["triage"]["p50_ms"] for r in rounds)
    data_p50 = statistics.median(r["data"]["p50_ms"] for r in rounds)
    data_p99 = statistics.median(r["data"]["p99_ms"] for r in rounds)
    docs = read["daily_docs"] + read["user_docs"]
    rows = [
        [
            "records loaded (through UsageStore.apply), compacted",
            f"{records:,} in {load_s:.0f} s",
            "",
        ],
        ["agents_triage warm p50 ms (baseline)", round(triage_p50, 2), "1.00x"],
        [
            "agents_data warm p50 ms (every breakdown)",
            round(data_p50, 2),
            f"{statistics.median(ratios):.2f}x",
        ],
        ["agents_data warm p99 ms", round(data_p99, 2), ""],
        ["data / triage p50 ratio: rounds' range", "", f"{min(ratios):.2f}x-{max(ratios):.2f}x"],
        [
            f"documents read a query ({read['days_needed']} days of daily rollups, "
            f"{read['period_days']} of per-user)",
            docs,
            f"{docs / read['period_days']:.2f} a day of the period",
        ],
    ]
    report(
        "usage_read",
        ["measure", "value", "x baseline"],
        rows,
        {
            "target": TARGET,
            "workspace": {
                "features": FEATURES,
                "models": MODELS,
                "users": USERS,
                "days": DAYS,
                "models_per_feature": args.models_per_feature,
                "calls_per_pair_per_day": args.calls,
            },
            "period": args.period,
            "documents": read,
            "rounds": rounds,
            "load_avg": os.getloadavg(),
        },
    )


if __name__ == "__main__":
    main()
