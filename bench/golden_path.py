"""The golden path: ``chat.send`` -> ``run_completed`` over the relay's WebSocket, on the local
stack as ``make dev`` runs it, at concurrency 1 and 50; baseline in the same run: the same
round trip for a question routed to no agent (triage only, the ``help`` answer), so the
agents' share is visible.

    .venv/bin/python -m bench.golden_path [--requests 40] [--concurrency 50]

The stack (``devstack.stack.run_stack``) loads the demo synthetic workspace (30 days ending
yesterday, ~10,000 records, the planted inefficiencies) into workspace ``demo``; every
bench user has a ``workspace: demo`` claim. Each user keeps one authenticated socket and
sends its questions one after another, each on a new thread. The per-user chat limit is
raised for the run (``APEX_CHAT_MESSAGES_PER_MINUTE``) so it does not pace the measure.
Three warm-up round trips of each kind are not counted (the functions' cold starts).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from bench.common import percentile, report
from bench.relay_capacity import bench_stack, raise_nofile, sign_up
from devstack.stack import DEMO_WORKSPACE, RunningStack

TARGET = "target at concurrency 1: p50 <= 300 ms, p99 <= 1 s (chat.send -> run_completed)"
SPEND = "What did we spend in the last 30 days, and where can we save?"
HELP = "What is the capital of France?"
WARMUP = 3
TERMINAL = {"run_completed", "run_failed", "run_cancelled"}


class User:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def ask(self, content: str) -> dict[str, Any]:
        """One round trip: seconds to chat.accepted, to run_completed, and the agents seen."""
        start = time.perf_counter()
        await self.ws.send(
            json.dumps(
                {"type": "chat.send", "client_msg_id": str(uuid.uuid4()), "content": content}
            )
        )
        accepted_s = None
        agents: list[str] = []
        marks: dict[str, float] = {}  # arrival (s after the send) of each agent's start/end
        while True:
            frame = json.loads(await asyncio.wait_for(self.ws.recv(), 60))
            now = time.perf_counter() - start
            if frame["type"] == "chat.accepted":
                accepted_s = now
            elif frame["type"] == "event":
                if frame["event"] in ("agent_started", "agent_completed"):
                    marks[f"{frame.get('agent', '?')}.{frame['event']}"] = now
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
                    }
            else:
                raise RuntimeError(f"unexpected frame {frame}")


async def open_users(running: RunningStack, tokens: list[str]) -> list[User]:
    url = running.relay.replace("http://", "ws://", 1) + "/ws"
    users = []
    for token in tokens:
        ws = await connect(url, max_size=None, open_timeout=30)
        await ws.send(json.dumps({"type": "auth", "token": token}))
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


async def bench(running: RunningStack, tokens: list[str], requests: int, conc: int) -> list[Any]:
    users = await open_users(running, tokens)
    rows: list[list[Any]] = []
    raw: dict[str, list[dict[str, Any]]] = {}
    stages: dict[str, dict[str, float | str]] = {}
    try:
        for content in (HELP, SPEND):
            await round_trips(users[:1], content, WARMUP)
        for concurrency, n in ((1, requests), (conc, max(requests, 2 * conc))):
            for name, content in (("help (triage only, baseline)", HELP), ("spend+savings", SPEND)):
                start = time.perf_counter()
                results = await round_trips(users[:concurrency], content, n)
                rows.append(summarize(name, concurrency, results, time.perf_counter() - start))
                raw[f"{name} c{concurrency}"] = results
                stages[f"{name} c{concurrency}"] = breakdown(results)
    finally:
        await asyncio.gather(*(u.ws.close() for u in users), return_exceptions=True)
    for key, stage in stages.items():
        print(key, json.dumps(stage))
    return [rows, raw, stages]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=50)
    ns = parser.parse_args()
    raise_nofile()
    with bench_stack(demo_data=True, APEX_CHAT_MESSAGES_PER_MINUTE="100000") as running:
        tokens = [sign_up(running, DEMO_WORKSPACE)[1] for _ in range(ns.concurrency)]
        rows, raw, stages = asyncio.run(bench(running, tokens, ns.requests, ns.concurrency))
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
            "stages_median_ms": stages,
            "raw": raw,
        },
    )


if __name__ == "__main__":
    main()
