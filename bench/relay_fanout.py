"""Relay fan-out: run events from the relay's dispatcher to the sockets watching the runs,
against a bare ``websockets`` broadcast server, same run; then publish-to-socket through the
Pub/Sub emulator.

    .venv/bin/python -m bench.relay_fanout [--sockets 50] [--rate 2000] [--rounds 7]

- The relay runs in a harness process: the relay's own app (``relay.app.create_app``, its
  uvicorn settings from ``relay/__main__.py``) plus a ``POST /drive`` route that calls
  ``Fanout.dispatch(RunEvent)`` on the loop, the entry point an event from Pub/Sub takes
  (``Fanout._on_message`` hands it there with ``call_soon_threadsafe``). Pub/Sub is out of
  that measure. Building the ``RunEvent`` (pydantic, what ``_on_message`` does on Pub/Sub's
  thread) is counted in the relay's process.
- The baseline: ``websockets.asyncio.server`` with a run -> connection table; the same
  driver builds each frame with ``json.dumps`` and sends it with ``websockets.broadcast``.
- K sockets (one user, one run each: ``chat.send`` on the relay, with no worker listening
  so the runs stay queued and only the driven events flow), ~600-byte ``agent_thinking``
  events, each carrying ``time.monotonic()`` of its dispatch; the client (this process)
  takes arrival - dispatch (CLOCK_MONOTONIC is one clock for every process).
- max: 1,000 events per run dispatched as fast as the loop takes them (one per run per loop
  turn): delivered frames/s and server CPU per frame. Both servers run at once and take
  ``--rounds`` max rounds in turn (bare, relay, relay, bare, ...), so each ratio compares
  rounds seconds apart: the machine is shared, and two phases minutes apart compared the
  load as much as the servers. Reported: each round's ratio, their median and range.
  rate: ``--rate`` events/s (all runs together) for 5 s: p50/p99 latency.
- pubsub: ``shared.bus.Bus.publish_events`` from this process to ``apex-events`` with the
  relay's id as attribute, at ``--pubsub-rate`` events/s (default 200) for 5 s, arrival at
  the sockets.

Emulators only (``bench.common.emulators``), topics from ``shared/topology.yaml``; no
functions run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from bench.common import emulators, new_user, percentile, report
from bench.relay_capacity import bare_server, cpu_s, raise_nofile
from devstack.procs import free_port

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "demo-bench-fanout"
TARGET = (
    "target: >= 0.8x the bare server's events/s (median of rounds); p99 <= 50 ms at 2,000 events/s"
)
REASONING = "Comparing spend by model over the period; " * 11  # ~480 chars: ~600-byte frame
MAX_PER_RUN = 1000
RATE_SECONDS = 5.0
PUBSUB_RATE = 200
TICK_S = 0.005
ROUNDS = 7

Emit = Callable[[str, int, float], None]


# --- the driver (both servers) ------------------------------------------------------------


async def drive(spec: dict[str, Any], next_seq: dict[str, int], emit: Emit) -> dict[str, Any]:
    runs: list[str] = spec["runs"]
    for run in runs:
        next_seq.setdefault(run, 1)
    started = time.perf_counter()
    sent = 0
    if spec["mode"] == "max":
        for _ in range(int(spec["per_run"])):
            for run in runs:
                emit(run, next_seq[run], time.monotonic())
                next_seq[run] += 1
            sent += len(runs)
            await asyncio.sleep(0)
    else:
        rate, seconds = float(spec["rate"]), float(spec["seconds"])
        total = int(rate * seconds)
        i = 0
        while sent < total:
            due = min(total, int(rate * (time.perf_counter() - started)) + 1)
            while sent < due:
                run = runs[i % len(runs)]
                i += 1
                emit(run, next_seq[run], time.monotonic())
                next_seq[run] += 1
                sent += 1
            await asyncio.sleep(TICK_S)
    return {"sent": sent, "elapsed_s": time.perf_counter() - started, "next_seq": next_seq}


def event_frame(run: str, seq: int, t: float) -> dict[str, Any]:
    return {
        "type": "event",
        "run_id": run,
        "seq": seq,
        "event": "agent_thinking",
        "agent": "data",
        "data": {"reasoning": REASONING, "t": t},
        "ts": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }


# --- the relay harness (a child process) --------------------------------------------------


def serve_relay(port: int) -> None:
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response

    from relay import __main__ as relay_main
    from relay.app import create_app
    from shared import logging as apex_logging
    from shared.config import Settings
    from shared.models.events import RunEvent

    settings = Settings.from_env(os.environ)
    apex_logging.configure(settings.project)
    app = create_app(settings)
    next_seq: dict[str, int] = {}

    async def drive_route(request: Request) -> Response:
        fanout = request.app.state.relay.fanout

        def emit(run: str, seq: int, t: float) -> None:
            fanout.dispatch(RunEvent.model_validate(event_frame(run, seq, t)))

        return JSONResponse(await drive(await request.json(), next_seq, emit))

    app.add_route("/drive", drive_route, methods=["POST"])
    relay_main.serve(app, "127.0.0.1", port)


@contextmanager
def relay_harness(env: dict[str, str], log: Path) -> Iterator[tuple[int, str, str]]:
    """(pid, http url, relay id) of the harness process."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.relay_fanout", "relay", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                ready = httpx.get(f"{url}/health/ready", timeout=5)
                if ready.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"the relay harness did not start; see {log}")
            time.sleep(0.2)
        yield proc.pid, url, str(ready.json()["relay_id"])
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- the bare baseline server (a child process) -------------------------------------------


def serve_bare(port: int) -> None:
    from websockets.asyncio.server import ServerConnection, broadcast, serve

    watchers: dict[str, set[ServerConnection]] = {}
    next_seq: dict[str, int] = {}

    def emit(run: str, seq: int, t: float) -> None:
        text = json.dumps(event_frame(run, seq, t), separators=(",", ":"))
        broadcast(watchers.get(run, ()), text)

    async def handler(ws: ServerConnection) -> None:
        async for message in ws:
            frame = json.loads(message)
            if frame["type"] == "auth":
                await ws.send('{"type":"auth.ok"}')
            elif frame["type"] == "chat.send":
                run = uuid.uuid4().hex
                watchers.setdefault(run, set()).add(ws)
                await ws.send(json.dumps({"type": "chat.accepted", "run_id": run}))
            elif frame["type"] == "drive":
                result = await drive(frame["spec"], next_seq, emit)
                await ws.send(json.dumps(result))

    async def main() -> None:
        async with serve(
            handler, "127.0.0.1", port, ping_interval=20, ping_timeout=20, compression=None
        ):
            await asyncio.Future()

    asyncio.run(main())


# --- the client ---------------------------------------------------------------------------


class Receivers:
    """K sockets, each watching one run; records each event frame's latency."""

    def __init__(self, sockets: list[ClientConnection], runs: list[str]) -> None:
        self.sockets, self.runs = sockets, runs
        self.latencies: list[float] = []
        self.last_arrival = 0.0
        self.other: list[str] = []
        self._tasks = [asyncio.create_task(self._read(ws)) for ws in sockets]

    async def _read(self, ws: ClientConnection) -> None:
        async for message in ws:
            now = time.monotonic()
            frame = json.loads(message)
            if frame.get("type") == "event":
                self.latencies.append(now - frame["data"]["t"])
                self.last_arrival = now
            else:
                self.other.append(str(message)[:200])

    def reset(self) -> None:
        self.latencies = []

    async def wait_for(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while len(self.latencies) < count:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*(ws.close() for ws in self.sockets), return_exceptions=True)


async def open_watchers(url: str, token: str, k: int) -> Receivers:
    sockets, runs = [], []
    for _ in range(k):
        ws = await connect(url, max_size=None, compression=None, open_timeout=30)
        await ws.send(json.dumps({"type": "auth", "token": token}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 30))["type"] == "auth.ok"
        await ws.send(
            json.dumps(
                {"type": "chat.send", "client_msg_id": str(uuid.uuid4()), "content": "bench"}
            )
        )
        accepted = json.loads(await asyncio.wait_for(ws.recv(), 30))
        assert accepted["type"] == "chat.accepted", accepted
        sockets.append(ws)
        runs.append(accepted["run_id"])
    await asyncio.sleep(1.0)  # the relay's first store read of each run (none stored)
    return Receivers(sockets, runs)


def lat_ms(values: list[float]) -> tuple[float, float, float]:
    ms = [v * 1000 for v in values]
    return (
        round(percentile(ms, 0.5), 2),
        round(percentile(ms, 0.99), 2),
        round(max(ms), 2),
    )


async def max_round(server: Server) -> dict[str, Any]:
    """``MAX_PER_RUN`` events per run, dispatched as fast as the server's loop takes them."""
    recv = server.recv
    recv.reset()
    cpu = cpu_s(server.pid)
    start = time.monotonic()
    result = await server.call({"mode": "max", "runs": recv.runs, "per_run": MAX_PER_RUN})
    server.next_seq = result["next_seq"]
    complete = await recv.wait_for(len(recv.runs) * MAX_PER_RUN, 120)
    out: dict[str, Any] = {
        "frames": len(recv.latencies),
        "complete": complete,
        "events_per_s": round(len(recv.latencies) / (recv.last_arrival - start)),
        "server_cpu_us_per_frame": round((cpu_s(server.pid) - cpu) / len(recv.latencies) * 1e6, 1),
        "load1": round(os.getloadavg()[0], 2),
    }
    out["p50_ms"], out["p99_ms"], _ = lat_ms(recv.latencies)
    return out


async def rate_round(server: Server, rate: float) -> dict[str, Any]:
    """``rate`` events/s (all runs together) for ``RATE_SECONDS``: latency."""
    recv = server.recv
    recv.reset()
    cpu = cpu_s(server.pid)
    start = time.monotonic()
    result = await server.call(
        {"mode": "rate", "runs": recv.runs, "rate": rate, "seconds": RATE_SECONDS}
    )
    server.next_seq = result["next_seq"]
    complete = await recv.wait_for(int(result["sent"]), 60)
    elapsed = recv.last_arrival - start
    out: dict[str, Any] = {
        "sent": result["sent"],
        "received": len(recv.latencies),
        "complete": complete,
        "achieved_per_s": round(len(recv.latencies) / elapsed),
        "server_cpu_share": round((cpu_s(server.pid) - cpu) / elapsed, 2),
    }
    out["p50_ms"], out["p99_ms"], out["max_ms"] = lat_ms(recv.latencies)
    return out


class Server:
    """One server under test: its process, the sockets watching its runs, its driver."""

    def __init__(
        self, name: str, pid: int, recv: Receivers, call: Callable[[dict[str, Any]], Any]
    ) -> None:
        self.name, self.pid, self.recv, self.call = name, pid, recv, call
        self.next_seq: dict[str, int] = {}


async def bare_side(url: str, pid: int, k: int, stack: contextlib.AsyncExitStack) -> Server:
    recv = await open_watchers(url, "x", k)
    stack.push_async_callback(recv.close)
    control = await connect(url, max_size=None)
    stack.push_async_callback(control.close)

    async def call(spec: dict[str, Any]) -> dict[str, Any]:
        await control.send(json.dumps({"type": "drive", "spec": spec}))
        reply: dict[str, Any] = json.loads(await asyncio.wait_for(control.recv(), 120))
        return reply

    return Server("bare", pid, recv, call)


async def relay_side(
    http: str, pid: int, token: str, k: int, stack: contextlib.AsyncExitStack
) -> Server:
    recv = await open_watchers(http.replace("http://", "ws://", 1) + "/ws", token, k)
    stack.push_async_callback(recv.close)
    client = httpx.AsyncClient(timeout=120)
    stack.push_async_callback(client.aclose)

    async def call(spec: dict[str, Any]) -> dict[str, Any]:
        response = await client.post(f"{http}/drive", json=spec)
        response.raise_for_status()
        reply: dict[str, Any] = response.json()
        return reply

    return Server("relay", pid, recv, call)


async def through_pubsub(server: Server, relay_id: str, uid: str, rate: float) -> dict[str, Any]:
    """``shared.bus.Bus.publish_events`` from this process (the workers' publisher settings)
    to ``apex-events`` at ``rate`` events/s for ``RATE_SECONDS``; arrival at the sockets."""
    from shared.bus import Bus
    from shared.models.events import RunEvent

    recv = server.recv
    next_seq = dict(server.next_seq)  # the relay delivers each run's events in seq order
    bus = Bus(Bus.publisher(), PROJECT)
    total = int(rate * RATE_SECONDS)
    recv.reset()
    cpu = cpu_s(server.pid)
    start = time.monotonic()

    def publish_all() -> None:
        sent = 0
        i = 0
        t0 = time.perf_counter()
        while sent < total:
            due = min(total, int(rate * (time.perf_counter() - t0)) + 1)
            batch = []
            while sent < due:
                run = recv.runs[i % len(recv.runs)]
                i += 1
                frame = event_frame(run, next_seq[run], time.monotonic())
                next_seq[run] += 1
                batch.append(RunEvent.model_validate(frame))
                sent += 1
            bus.publish_events(batch, uid=uid, relay=relay_id)
            time.sleep(0.01)

    await asyncio.to_thread(publish_all)
    complete = await recv.wait_for(total, 60)
    out: dict[str, Any] = {
        "sent": total,
        "received": len(recv.latencies),
        "complete": complete,
        "achieved_per_s": round(len(recv.latencies) / (recv.last_arrival - start)),
        "relay_cpu_us_per_event": round(
            (cpu_s(server.pid) - cpu) / max(1, len(recv.latencies)) * 1e6, 1
        ),
    }
    out["p50_ms"], out["p99_ms"], out["max_ms"] = lat_ms(recv.latencies)
    return out


async def bench_both(
    bare_url: str,
    bare_pid: int,
    relay: tuple[int, str, str],
    signed: tuple[str, str],
    ns: argparse.Namespace,
) -> dict[str, Any]:
    """The max rounds in turn (bare, relay, relay, bare, ...), then the rate on each, then
    the relay through Pub/Sub."""
    relay_pid, http, relay_id = relay
    token, uid = signed
    async with contextlib.AsyncExitStack() as stack:
        bare = await bare_side(bare_url, bare_pid, ns.sockets, stack)
        relay_server = await relay_side(http, relay_pid, token, ns.sockets, stack)
        rounds: list[dict[str, Any]] = []
        for i in range(ns.rounds):
            order = (bare, relay_server) if i % 2 == 0 else (relay_server, bare)
            got: dict[str, Any] = {}
            for server in order:
                got[server.name] = await max_round(server)
                await asyncio.sleep(0.5)
            got["ratio"] = round(got["relay"]["events_per_s"] / got["bare"]["events_per_s"], 3)
            got["cpu_ratio"] = round(
                got["bare"]["server_cpu_us_per_frame"] / got["relay"]["server_cpu_us_per_frame"],
                3,
            )
            print(
                f"max round {i + 1}: bare {got['bare']['events_per_s']}/s "
                f"({got['bare']['server_cpu_us_per_frame']} us/frame), relay "
                f"{got['relay']['events_per_s']}/s ({got['relay']['server_cpu_us_per_frame']} "
                f"us/frame): {got['ratio']}x, CPU {got['cpu_ratio']}x; "
                f"load {got['relay']['load1']}",
                flush=True,
            )
            rounds.append(got)
        rates = {}
        for server in (bare, relay_server):
            rates[server.name] = await rate_round(server, ns.rate)
            await asyncio.sleep(0.5)
        pubsub = await through_pubsub(relay_server, relay_id, uid, ns.pubsub_rate)
        if relay_server.recv.other:
            pubsub["unexpected_frames"] = relay_server.recv.other[:5]
    return {"rounds": rounds, "rate": rates, "pubsub": pubsub}


def spread(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 3), "min": min(values), "max": max(values)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", nargs="?", default="bench", choices=["bench", "relay", "bare"])
    parser.add_argument("args", nargs="*")
    parser.add_argument("--sockets", type=int, default=50)
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--pubsub-rate", type=float, default=PUBSUB_RATE)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    ns = parser.parse_args()
    raise_nofile()
    if ns.mode == "relay":
        serve_relay(int(ns.args[0]))
        return
    if ns.mode == "bare":
        serve_bare(int(ns.args[0]))
        return
    from google.cloud.pubsub_v1 import PublisherClient

    from shared.topology import load_topology

    load_before = os.getloadavg()
    with emulators(PROJECT) as hosts, tempfile.TemporaryDirectory() as logs:
        publisher = PublisherClient()
        for topic in load_topology().topic_names():  # topics only: no worker is pushed to
            publisher.create_topic(name=publisher.topic_path(PROJECT, topic))
        signed = new_user(hosts, PROJECT, "bench")
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "APEX_CORS_ORIGINS": "http://127.0.0.1",
            "APEX_THREADS_GET_URL": "http://127.0.0.1:9/",
            "APEX_FIREBASE_API_KEY": "fake-api-key",
            "APEX_FIREBASE_AUTH_DOMAIN": "localhost",
            "APEX_CHAT_MESSAGES_PER_MINUTE": "100000",
        }
        with (
            bare_server("bare", "bench.relay_fanout") as (bare_pid, bare_url),
            relay_harness(env, Path(logs) / "relay.log") as relay,
        ):
            result = asyncio.run(
                bench_both(bare_url, bare_pid, relay, (signed.id_token, signed.uid), ns)
            )
    rounds = result["rounds"]
    ratios = spread([r["ratio"] for r in rounds])
    cpu_ratios = spread([r["cpu_ratio"] for r in rounds])
    columns = [
        "server",
        "max events/s (median)",
        "x baseline (median, range)",
        "CPU us/frame (median)",
        f"p50 ms @{ns.rate:g}/s",
        f"p99 ms @{ns.rate:g}/s",
        "max ms",
        "achieved/s",
    ]
    rows = []
    for name in ("bare", "relay"):
        rate = result["rate"][name]
        rows.append(
            [
                "bare websockets (baseline)" if name == "bare" else "relay dispatcher",
                round(statistics.median(r[name]["events_per_s"] for r in rounds)),
                "1.0"
                if name == "bare"
                else f"{ratios['median']} ({ratios['min']}-{ratios['max']})",
                round(statistics.median(r[name]["server_cpu_us_per_frame"] for r in rounds), 1),
                rate["p50_ms"],
                rate["p99_ms"],
                rate["max_ms"],
                rate["achieved_per_s"],
            ]
        )
    pubsub = result["pubsub"]
    rows.append(
        [
            f"relay via Pub/Sub @{ns.pubsub_rate:g}/s",
            "",
            "",
            pubsub["relay_cpu_us_per_event"],
            pubsub["p50_ms"],
            pubsub["p99_ms"],
            pubsub["max_ms"],
            pubsub["achieved_per_s"],
        ]
    )
    print(
        f"ratio over {len(rounds)} rounds: median {ratios['median']}x "
        f"({ratios['min']}-{ratios['max']}); CPU per frame, bare/relay: median "
        f"{cpu_ratios['median']}x ({cpu_ratios['min']}-{cpu_ratios['max']}); "
        f"load {load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after"
    )
    report(
        "relay_fanout",
        columns,
        rows,
        {
            "target": TARGET,
            "sockets": ns.sockets,
            "rate": ns.rate,
            "pubsub_rate": ns.pubsub_rate,
            "ratio": ratios,
            "cpu_ratio": cpu_ratios,
            "load1": {"before": load_before[0], "after": os.getloadavg()[0]},
            **result,
        },
    )


if __name__ == "__main__":
    main()
