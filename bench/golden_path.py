"""The golden path: ``chat.send`` -> ``run_completed`` over the relay's WebSocket, on the local
stack as ``make dev`` runs it, at concurrency 1 and 50; baseline in the same run: the same
round trip for a question routed to no agent (triage only, the ``help`` answer), so the
agents' share is visible.

    .venv/bin/python -m bench.golden_path [--requests 30] [--rounds 5] [--concurrency 50]

The stack (``devstack.stack.run_stack``) loads the demo synthetic workspace (30 days ending
yesterday, ~10,000 records, the planted inefficiencies) into workspace ``demo``; every
bench user has a ``workspace: demo`` claim. Each user keeps one authenticated socket and
sends its questions one after another, each on a new thread. The per-user chat limit is
raised for the run (``APEX_CHAT_MESSAGES_PER_MINUTE``) so it does not pace the measure.
Three warm-up round trips of each kind are not counted (the functions' cold starts).

Concurrency 1 runs in ``--rounds`` rounds of ``--requests`` of each question, in turn (help,
spend, then spend, help, ...); each round's ratio of the p50s compares runs seconds apart, and
the median and range of the rounds' ratios are reported (the target: spend <= 3x help). Each
stage is reported twice: by the arrival of the events at the client, and by the events' own
``ts`` (when the worker recorded them), which splits a hop between agents from the next
agent's work. ``--concurrency 1`` skips the burst.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
import uuid
from datetime import datetime
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from bench.common import percentile, report
from bench.relay_capacity import bench_stack, raise_nofile, sign_up
from devstack.stack import DEMO_WORKSPACE, RunningStack

TARGET = (
    "target at concurrency 1: p50 <= 300 ms, p99 <= 1 s (chat.send -> run_completed); "
    "spend p50 <= 3x the triage-only p50 (median of the rounds)"
)
SPEND = "What did we spend in the last 30 days, and where can we save?"
HELP = "What is the capital of France?"
WARMUP = 3
ROUNDS = 5
TERMINAL = {"run_completed", "run_failed", "run_cancelled"}


def _wall(ts: str) -> float:
    return datetime.fromisoformat(ts).timestamp()


class User:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def ask(self, content: str) -> dict[str, Any]:
        """One round trip: seconds to chat.accepted, to run_completed, and the agents seen."""
        start = time.perf_counter()
        start_wall = time.time()
        await self.ws.send(
            json.dumps(
                {"type": "chat.send", "client_msg_id": str(uuid.uuid4()), "content": content}
            )
        )
        accepted_s = None
        agents: list[str] = []
        marks: dict[str, float] = {}  # arrival (s after the send) of each agent's start/end
        # The same events' own ``ts`` (when the worker recorded them; ms precision, one clock
        # for every process here), s after the send: where a step's time goes server-side.
        stamped: dict[str, float] = {}
        while True:
            frame = json.loads(await asyncio.wait_for(self.ws.recv(), 60))
            now = time.perf_counter() - start
            if frame["type"] == "chat.accepted":
                accepted_s = now
            elif frame["type"] == "event":
                if frame["event"] in ("agent_started", "agent_completed"):
                    marks[f"{frame.get('agent', '?')}.{frame['event']}"] = now
                    stamped[f"{frame.get('agent', '?')}.{frame['event']}"] = (
                        _wall(frame["ts"]) - start_wall
                    )
                elif frame["event"] in ("run_started", *TERMINAL):
                    stamped[frame["event"]] = _wall(frame["ts"]) - start_wall
                if frame["event"] == "agent_started":
                    agents.append(frame.get("agent", "?"))
                if frame["event"] in TERMINAL:
                    return {
                        "accepted_s": accepted_s,
                        "total_s": time.perf_counter() - start,
                        "status": frame["event"],
                        "agents": agents,
                        "events": frame["seq"],
                        "marks": marks,
                        "stamped": stamped,
                        "arrived": now,
                    }
            else:
                raise RuntimeError(f"unexpected frame {frame}")


async def open_users(running: RunningStack, tokens: list[str]) -> list[User]:
    url = running.relay.replace("http://", "ws://", 1) + "/ws"
    users = []
    for token in tokens:
        ws = await connect(url, max_size=None, open_timeout=30)
        await ws.send(json.dumps({"type": "auth", "token": token, "workspace_id": DEMO_WORKSPACE}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 30))["type"] == "auth.ok"
        users.append(User(ws))
    return users


async def round_trips(users: list[User], content: str, requests: int) -> list[dict[str, Any]]:
    """``requests`` round trips, ``len(users)`` at a time (each user one after another)."""
    per_user = [requests // len(users) + (i < requests % len(users)) for i in range(len(users))]

    async def one(user: User, n: int) -> list[dict[str, Any]]:
        return [await user.ask(content) for _ in range(n)]

    results = await asyncio.gather(*(one(u, n) for u, n in zip(users, per_user, strict=True)))
    return [r for rs in results for r in rs]


def summarize(name: str, concurrency: int, results: list[dict[str, Any]], wall: float) -> list[Any]:
    total = [r["total_s"] * 1000 for r in results]
    accepted = [r["accepted_s"] * 1000 for r in results]
    ok = sum(r["status"] == "run_completed" for r in results)
    agents = sorted({"+".join(r["agents"]) for r in results})
    return [*_row(name, concurrency, results, total, accepted, ok, wall), ",".join(agents)]


def _stage_ms(results: list[dict[str, Any]], a: str, b: str) -> float | str:
    """Median ms from mark ``a`` to mark ``b`` (as the client saw them arrive)."""
    spans = [
        (r["marks"][b] - (r["accepted_s"] if a == "send" else r["marks"][a])) * 1000
        for r in results
        if b in r["marks"] and (a == "send" or a in r["marks"])
    ]
    return round(percentile(spans, 0.5), 1) if spans else ""


def breakdown(results: list[dict[str, Any]]) -> dict[str, float | str]:
    """Median of each stage: accepted -> triage start, each agent start -> end, the gaps
    between agents (a Pub/Sub hop and a worker's start), the last agent -> run_completed."""
    out: dict[str, float | str] = {
        "accepted->triage.started": _stage_ms(results, "send", "triage.agent_started")
    }
    previous = None
    for agent in ("triage", "data", "optimization"):
        start, end = f"{agent}.agent_started", f"{agent}.agent_completed"
        if previous is not None:
            out[f"{previous}->{start}"] = _stage_ms(results, previous, start)
        out[f"{agent} (started->completed)"] = _stage_ms(results, start, end)
        previous = end
    return out


def _ts_span(results: list[dict[str, Any]], a: str, b: str) -> float | str:
    """Median ms from event ``a``'s ``ts`` to event ``b``'s (``send``: the client's send;
    ``arrived``: the terminal frame's arrival at the client)."""

    def at(r: dict[str, Any], mark: str) -> float | None:
        if mark == "send":
            return 0.0
        if mark == "arrived":
            return float(r["arrived"])
        value = r["stamped"].get(mark)
        return None if value is None else float(value)

    spans = []
    for r in results:
        start, end = at(r, a), at(r, b)
        if start is not None and end is not None:
            spans.append((end - start) * 1000)
    return round(percentile(spans, 0.5), 1) if spans else ""


def server_breakdown(results: list[dict[str, Any]]) -> dict[str, float | str]:
    """Median of each stage by the events' own timestamps (when the workers recorded them):
    send -> run_started (relay, publish, push, triage's reads), each agent's work, the hop
    between agents (the step's commit, the publish, Pub/Sub push, the next worker's reads),
    the last agent -> run_completed (the answer), run_completed -> its arrival (the commit,
    the publish, the relay)."""
    out: dict[str, float | str] = {"send->run_started": _ts_span(results, "send", "run_started")}
    previous = "run_started"
    for agent in ("triage", "data", "optimization"):
        start, end = f"{agent}.agent_started", f"{agent}.agent_completed"
        if not any(start in r["stamped"] for r in results):
            continue
        out[f"{previous}->{start}"] = _ts_span(results, previous, start)
        out[f"{agent} (started->completed)"] = _ts_span(results, start, end)
        previous = end
    out[f"{previous}->run_completed"] = _ts_span(results, previous, "run_completed")
    out["run_completed->arrived"] = _ts_span(results, "run_completed", "arrived")
    return out


def _row(
    name: str,
    concurrency: int,
    results: list[dict[str, Any]],
    total: list[float],
    accepted: list[float],
    ok: int,
    wall: float,
) -> list[Any]:
    return [
        name,
        concurrency,
        len(results),
        ok,
        round(percentile(total, 0.5), 1),
        round(percentile(total, 0.99), 1),
        round(percentile(accepted, 0.5), 1),
        round(len(results) / wall, 1),
    ]


async def c1_rounds(
    user: User, requests: int, rounds: int
) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """Concurrency 1 in ``rounds`` rounds of ``requests`` of each question, in turn (help,
    spend, then spend, help, ...): each round's spend/help ratio compares runs seconds apart
    (the machine is shared; a ratio of two phases minutes apart measured the load too)."""
    per_round: list[dict[str, Any]] = []
    pooled: dict[str, list[dict[str, Any]]] = {HELP: [], SPEND: []}
    for i in range(rounds):
        order = (HELP, SPEND) if i % 2 == 0 else (SPEND, HELP)
        got = {content: await round_trips([user], content, requests) for content in order}
        p50 = {c: percentile([r["total_s"] * 1000 for r in got[c]], 0.5) for c in got}
        per_round.append(
            {
                "help_p50_ms": round(p50[HELP], 1),
                "spend_p50_ms": round(p50[SPEND], 1),
                "ratio": round(p50[SPEND] / p50[HELP], 2),
                "load1": round(os.getloadavg()[0], 2),
            }
        )
        print(f"round {i + 1}: {json.dumps(per_round[-1])}", flush=True)
        for content, results in got.items():
            pooled[content].extend(results)
    return per_round, pooled


async def bench(
    running: RunningStack, tokens: list[str], ns: argparse.Namespace
) -> tuple[list[list[Any]], dict[str, Any]]:
    users = await open_users(running, tokens)
    rows: list[list[Any]] = []
    raw: dict[str, list[dict[str, Any]]] = {}
    stages: dict[str, dict[str, float | str]] = {}
    names = {HELP: "help (triage only, baseline)", SPEND: "spend+savings"}
    try:
        for content in (HELP, SPEND):
            await round_trips(users[:1], content, WARMUP)
        per_round, pooled = await c1_rounds(users[0], ns.requests, ns.rounds)
        # One after another: a question's runs/s is 1 / its mean round trip.
        levels: list[tuple[int, dict[str, list[dict[str, Any]]], float | None]] = [
            (1, pooled, None)
        ]
        if ns.concurrency > 1:
            n = max(ns.requests, 2 * ns.concurrency)
            for content in (HELP, SPEND):
                start = time.perf_counter()
                results = await round_trips(users[: ns.concurrency], content, n)
                levels.append((ns.concurrency, {content: results}, time.perf_counter() - start))
        for concurrency, by_content, seconds in levels:
            for content, results in by_content.items():
                name = names[content]
                wall = sum(r["total_s"] for r in results) if seconds is None else seconds
                rows.append(summarize(name, concurrency, results, wall))
                raw[f"{name} c{concurrency}"] = results
                stages[f"{name} c{concurrency}"] = breakdown(results)
                stages[f"{name} c{concurrency} (event ts)"] = server_breakdown(results)
    finally:
        await asyncio.gather(*(u.ws.close() for u in users), return_exceptions=True)
    for key, stage in stages.items():
        print(key, json.dumps(stage))
    ratios = [r["ratio"] for r in per_round]
    summary = {
        "ratio_median": round(statistics.median(ratios), 2),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "rounds": per_round,
    }
    print(
        f"spend/help p50 at concurrency 1 over {len(ratios)} rounds: median "
        f"{summary['ratio_median']}x ({summary['ratio_min']}-{summary['ratio_max']})"
    )
    return rows, {"stages_median_ms": stages, "c1": summary, "raw": raw}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=30, help="of each question, a round")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--concurrency", type=int, default=50)
    ns = parser.parse_args()
    raise_nofile()
    load_before = os.getloadavg()[0]
    with bench_stack(demo_data=True, APEX_CHAT_MESSAGES_PER_MINUTE="100000") as running:
        tokens = [sign_up(running, DEMO_WORKSPACE)[1] for _ in range(ns.concurrency)]
        rows, extra = asyncio.run(bench(running, tokens, ns))
    columns = [
        "question",
        "concurrency",
        "n",
        "completed",
        "p50 ms",
        "p99 ms",
        "accepted p50 ms",
        "runs/s",
        "agents",
    ]
    report(
        "golden_path",
        columns,
        rows,
        {
            "target": TARGET,
            "questions": {"spend": SPEND, "help": HELP},
            "data": "demo synthetic workspace, 30 days ending yesterday (devstack.synthetic)",
            "load1": {"before": load_before, "after": os.getloadavg()[0]},
            **extra,
        },
    )


if __name__ == "__main__":
    main()
