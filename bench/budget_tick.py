"""The budget tick's cost (DESIGN §11, issue 16): what a tick does beyond reading the rollups
it judges, measured against reading the same rollups bare, in the same run.

    .venv/bin/python -m bench.budget_tick [--budgets 1000] [--workspaces 1000] [--rounds 5]

Two shapes, on the emulators (Firestore, Pub/Sub), in-process through the same functions
``budget_worker`` runs (``shared.budgets.tick``):

- **one workspace, 1,000 budgets**: 62 days of the synthetic workspace (``devstack.synthetic``,
  ~20,000 calls) and 1,000 budgets scoped over its features, models and providers (a tenth
  of them crossing a threshold), judged now and on the last evening of last month (a whole
  month of rollups to read). A tick = ``check_workspace``: read the budgets' pages and the
  month's fired set (one batched read), read the rollups once (``UsageStore.daily`` over
  the month and the 8 days before yesterday), judge every budget. The first tick also
  creates and publishes the alerts; the steady ticks (every minute after) only read.
  Baseline: ``UsageStore.daily`` over the same days alone.
- **1,000 workspaces, one budget each**: a few days of usage each. A tick = the fan-out (the
  index, one Publish call of 1,000 messages) and the 1,000 checks, run one after another
  here (in GCP each is a push to ``budget_worker``, in parallel across instances).
  Baseline: the 1,000 rollup reads alone.

Ticks and baselines alternate within each round (the order swapped every round); figures
are the median over the rounds, with their range.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, time, timedelta
from functools import partial
from time import perf_counter
from typing import Any, Final

from google.cloud import firestore

from bench.common import emulators, report
from devstack.synthetic import generate
from shared.budgets.rules import Month
from shared.budgets.tick import NOTIFY_TOPIC, TICK_TOPIC, check_workspace, fan_out
from shared.bus import Bus
from shared.models.budgets import BudgetDoc, BudgetScope
from shared.models.messages import EVENTS_TOPIC
from shared.models.usage import UsageRecord, parse_usage_record
from shared.store.budget_interface import BudgetChange
from shared.store.budgets import FirestoreBudgetStore
from shared.store.documents import AuditEntry
from shared.store.usage import FirestoreUsageStore
from shared.store.workspaces import FirestoreWorkspaceStore
from shared.workspaces.service import create_workspace

PROJECT: Final = "demo-bench-budgets"
# Days of synthetic usage in the one workspace: all of last month and this month so far.
SYNTHETIC_DAYS: Final = 62
BATCH: Final = 400  # budgets a commit (a batch holds 500 writes: these and the 10 pages)
EMULATOR_NOTE: Final = (
    "reads and writes go to the Firestore emulator on loopback: the ratio says what the tick "
    "adds to its rollup read in this code, not Cloud Firestore's latency"
)


def spread(values: Sequence[float], digits: int = 1) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
    }


def timed(call: Callable[[], object]) -> float:
    started = perf_counter()
    call()
    return perf_counter() - started


def add_budgets(
    db: firestore.Client, workspace_id: str, budgets: list[BudgetDoc], owner: str
) -> None:
    """Write budgets as the rules do (audit entry and index with them), in batches."""
    store = FirestoreBudgetStore(db)
    workspaces = FirestoreWorkspaceStore(db)
    written = store.budgets(workspace_id)
    for start in range(0, len(budgets), BATCH):
        workspace = workspaces.workspace(workspace_id)
        assert workspace is not None
        chunk = tuple(budgets[start : start + BATCH])
        entry = AuditEntry(
            seq=workspace.audit_seq + 1,
            workspace_id=workspace_id,
            actor=owner,
            action="budget.created",
            target=None,
            detail={"bench": len(chunk)},
            at=datetime.now(UTC),
        )
        written += chunk
        store.commit(BudgetChange(entry=entry, budgets=chunk, all_budgets=tuple(written)))


def budget(workspace_id: str, n: int, monthly: float, scope: BudgetScope) -> BudgetDoc:
    now = datetime.now(UTC)
    return BudgetDoc(
        budget_id=f"{n:016x}",
        workspace_id=workspace_id,
        name=f"bench {n}",
        monthly_usd=monthly,
        scope=scope,
        thresholds=[0.5, 0.8, 1.0],
        created_by="bench",
        created_at=now,
        updated_at=now,
    )


def scopes(records: Sequence[UsageRecord]) -> list[BudgetScope]:
    features = sorted({r.feature for r in records if r.feature})
    models = sorted({r.model for r in records})
    providers = sorted({r.provider for r in records if r.provider})
    return (
        [BudgetScope()]
        + [BudgetScope(feature=f) for f in features]
        + [BudgetScope(model=m) for m in models]
        + [BudgetScope(provider=p) for p in providers]
        + [BudgetScope(feature=f, model=m) for f in features for m in models]
    )


def one_workspace(
    db: firestore.Client, bus: Bus, n_budgets: int, rounds: int
) -> list[dict[str, Any]]:
    """The same workspace judged at two moments: now, and the last evening of last month (a
    whole month of rollups to read)."""
    ws = "bench-one"
    workspaces = FirestoreWorkspaceStore(db)
    create_workspace(workspaces, "bench", None, "Bench", datetime.now(UTC), ws)
    usage = FirestoreUsageStore(db)
    today = datetime.now(UTC).date()
    synthetic = generate(end=today, days=SYNTHETIC_DAYS)
    usage.apply(ws, synthetic.records)
    options = scopes(synthetic.records)
    made = [
        # One in ten crosses a threshold (a small monthly amount); the rest stay under.
        budget(ws, i, 0.01 if i % 10 == 0 else 1e6, options[i % len(options)])
        for i in range(n_budgets)
    ]
    add_budgets(db, ws, made, "bench")
    budgets = FirestoreBudgetStore(db)
    month_end = datetime.combine(today.replace(day=1), time(18), UTC) - timedelta(days=1)
    out = []
    for label, moment in (("now", None), ("end of last month", month_end)):

        def at(moment: datetime | None = moment) -> datetime:
            return moment or datetime.now(UTC)

        before = len(budgets.notifications(ws, 10_000))
        first_s = timed(
            lambda: check_workspace(budgets, usage, bus, ws, at(), workspaces=workspaces)
        )
        alerts = len(budgets.notifications(ws, 10_000)) - before
        days = Month(at()).read_range()
        rows = len(usage.daily(ws, *days))
        ticks: list[float] = []
        bare: list[float] = []
        for r in range(rounds):
            pair: list[tuple[list[float], Callable[[], object]]] = [
                (
                    ticks,
                    lambda: check_workspace(budgets, usage, bus, ws, at(), workspaces=workspaces),
                ),
                (bare, partial(usage.daily, ws, *days)),
            ]
            for samples, call in pair if r % 2 == 0 else reversed(pair):
                samples.append(timed(call))
        ratios = [t / b for t, b in zip(ticks, bare, strict=True)]
        out.append(
            {
                "judged": label,
                "at": at().isoformat(timespec="seconds"),
                "budgets": n_budgets,
                "records": len(synthetic.records),
                "rollup_rows_read": rows,
                "days_read": list(days),
                "alerts_created_by_first_tick": alerts,
                "first_tick_ms": round(first_s * 1000, 1),
                "steady_tick_ms": spread([t * 1000 for t in ticks]),
                "bare_read_ms": spread([b * 1000 for b in bare]),
                "ratio": spread(ratios, 2),
            }
        )
    return out


def many_workspaces(
    db: firestore.Client, bus: Bus, n_workspaces: int, rounds: int
) -> dict[str, Any]:
    usage = FirestoreUsageStore(db)
    store = FirestoreWorkspaceStore(db)
    now = datetime.now(UTC)
    ids = [f"bench-{i:04d}" for i in range(n_workspaces)]
    for i, ws in enumerate(ids):
        create_workspace(store, "bench", None, ws, now, ws)
        records = [
            parse_usage_record(
                {
                    "id": f"{ws}-{d}-{k}",
                    "model": ("gpt-4o", "gpt-4o-mini")[k % 2],
                    "provider": "openai",
                    "input_tokens": 2_000,
                    "output_tokens": 200,
                    "ts": (now - timedelta(days=d, minutes=k)).isoformat(),
                    "feature": ("chat", "search", "summarize")[k % 3],
                },
                now=now,
            )
            for d in range(10)
            for k in range(3)
        ]
        usage.apply(ws, records)
        add_budgets(db, ws, [budget(ws, i, 1e6, BudgetScope())], "bench")
    budgets = FirestoreBudgetStore(db)
    days = Month(now).read_range()

    def tick() -> None:
        at = datetime.now(UTC)
        fan_out(budgets, bus, at)
        for ws in budgets.workspaces_with_budgets():
            check_workspace(budgets, usage, bus, ws, at, workspaces=store)

    def bare_reads() -> None:
        for ws in ids:
            usage.daily(ws, *days)

    ticks: list[float] = []
    bare: list[float] = []
    for r in range(rounds):
        pair: list[tuple[list[float], Callable[[], None]]] = [(ticks, tick), (bare, bare_reads)]
        for samples, call in pair if r % 2 == 0 else reversed(pair):
            samples.append(timed(call))
    ratios = [t / b for t, b in zip(ticks, bare, strict=True)]
    return {
        "workspaces": n_workspaces,
        "tick_s": spread(ticks, 2),
        "per_workspace_ms": spread([t / n_workspaces * 1000 for t in ticks], 2),
        "bare_reads_s": spread(bare, 2),
        "ratio": spread(ratios, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--budgets", type=int, default=1000)
    parser.add_argument("--workspaces", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with emulators(PROJECT):
        db = firestore.Client(project=PROJECT)
        bus = Bus(Bus.publisher(), PROJECT)
        publisher = Bus.publisher()
        for topic in (TICK_TOPIC, NOTIFY_TOPIC, EVENTS_TOPIC):
            publisher.create_topic(name=bus.topic_path(topic))
        one = one_workspace(db, bus, args.budgets, args.rounds)
        many = many_workspaces(db, bus, args.workspaces, args.rounds)
        db.close()

    def fmt(s: dict[str, float], unit: str) -> str:
        return f"{s['median']}{unit} ({s['min']}-{s['max']})"

    rows = [
        [
            f"1 workspace, {one_['budgets']} budgets, {one_['judged']} "
            f"({one_['rollup_rows_read']} rollup rows)",
            f"{one_['first_tick_ms']} ms ({one_['alerts_created_by_first_tick']} alerts)",
            fmt(one_["steady_tick_ms"], " ms"),
            fmt(one_["bare_read_ms"], " ms"),
            fmt(one_["ratio"], "x"),
        ]
        for one_ in one
    ]
    rows.append(
        [
            f"{many['workspaces']} workspaces, 1 budget each",
            "-",
            fmt(many["tick_s"], " s"),
            fmt(many["bare_reads_s"], " s"),
            fmt(many["ratio"], "x"),
        ]
    )
    report(
        "budget_tick",
        ["shape", "first tick", "tick (median, range)", "rollups read bare", "ratio"],
        rows,
        {
            "one_workspace": one,
            "many_workspaces": many,
            "rounds": args.rounds,
            "note": EMULATOR_NOTE,
        },
    )


if __name__ == "__main__":
    main()
