"""Which WebSocket implementation the relay runs under uvicorn (docs/relay.md).

Each candidate serves the same small Starlette app (the relay's stack: Starlette, uvicorn,
the relay's ws settings) in its own process on loopback; one client process (the
``websockets`` asyncio client, the same for all) measures:

- handshake: open and close one socket, sequentially (median ms);
- push: 100 sockets each receive 500 event-sized frames (~600 B) from the server: frames/s
  (the median of 3 runs) and the server's CPU time per frame (the figure that does not
  depend on what else the machine runs): the relay's main traffic;
- echo: 50 sockets each send 200 frames and await the answer: round trips/s and server CPU
  per round trip;
- memory: the server's RSS growth per open idle socket (KiB);
- the close codes the relay relies on: a frame over 64 KiB (1009), SIGTERM (1012).

Run: ``.venv/bin/python -m bench.relay_ws`` (about three minutes); prints a table and writes
``bench/results/relay_ws.json``. The baseline is the first row: uvicorn's default
(``auto``, which picks websockets-sansio when ``websockets`` is installed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "relay_ws.json"
CANDIDATES = (
    ("auto", True),
    ("websockets-sansio", True),
    ("wsproto", True),
    ("websockets", True),  # uvicorn's impl over websockets' legacy (deprecated) API
    ("websockets-sansio", False),
    ("wsproto", False),
)
EVENT = json.dumps(
    {
        "type": "event",
        "run_id": "5e330169de944176915b2c557ac37ae9",
        "seq": 12,
        "event": "tool_completed",
        "agent": "data",
        "data": {
            "tool_name": "spend_breakdown",
            "execution_id": "c0ffee",
            "results": {"by_model": [{"model": "gpt-4o", "cost_usd": 1234.56}] * 6},
            "execution_time_ms": 12,
            "success": True,
        },
        "ts": "2026-11-25T21:54:41.355Z",
    }
)
PUSH_SOCKETS, PUSH_FRAMES = 100, 500
ECHO_SOCKETS, ECHO_FRAMES = 50, 200
IDLE_SOCKETS = 1000
HANDSHAKES = 300
REPEATS = 3  # push and echo: the median of this many runs


# --- the server (a child process per candidate) -------------------------------------------


async def _endpoint(ws: WebSocket) -> None:
    await ws.accept()
    try:
        while True:
            text = await ws.receive_text()
            if text.startswith("push "):
                for _ in range(int(text.split()[1])):
                    await ws.send_text(EVENT)
            else:
                await ws.send_text(text)
    except WebSocketDisconnect:
        return


def serve(impl: str, deflate: bool, port: int) -> None:
    app = Starlette(routes=[WebSocketRoute("/ws", _endpoint)])
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        ws=impl,
        ws_max_size=64 * 1024,
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
        ws_per_message_deflate=deflate,
        timeout_graceful_shutdown=5,
        log_level="warning",
    )


# --- the client -----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def _handshakes(url: str) -> float:
    times = []
    for _ in range(HANDSHAKES):
        start = time.perf_counter()
        async with connect(url):
            pass
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


async def _push(url: str) -> float:
    async def one() -> int:
        async with connect(url, max_size=None) as ws:
            await ws.send(f"push {PUSH_FRAMES}")
            for _ in range(PUSH_FRAMES):
                await ws.recv()
        return PUSH_FRAMES

    start = time.perf_counter()
    total = sum(await asyncio.gather(*(one() for _ in range(PUSH_SOCKETS))))
    return total / (time.perf_counter() - start)


async def _echo(url: str) -> float:
    async def one() -> int:
        async with connect(url) as ws:
            for i in range(ECHO_FRAMES):
                await ws.send(f'{{"type":"ping","n":{i}}}')
                await ws.recv()
        return ECHO_FRAMES

    start = time.perf_counter()
    total = sum(await asyncio.gather(*(one() for _ in range(ECHO_SOCKETS))))
    return total / (time.perf_counter() - start)


async def _idle_memory(url: str, pid: int) -> float:
    before = _rss_kib(pid)
    sockets = []
    for start in range(0, IDLE_SOCKETS, 100):
        sockets += await asyncio.gather(
            *(connect(url) for _ in range(start, min(start + 100, IDLE_SOCKETS)))
        )
    for ws in sockets:  # one frame each, so every per-socket buffer exists
        await ws.send("x")
        await ws.recv()
    await asyncio.sleep(0.5)
    grown = _rss_kib(pid) - before
    await asyncio.gather(*(ws.close() for ws in sockets))
    return grown / IDLE_SOCKETS


async def _oversize_code(url: str) -> int | None:
    async with connect(url, max_size=None) as ws:
        await ws.send("x" * (64 * 1024 + 1))
        try:
            await ws.recv()
        except ConnectionClosed as e:
            return e.rcvd.code if e.rcvd else None
    return None


def _cpu_s(pid: int) -> float:
    """The server's user + system CPU time so far (immune to what else the machine runs)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _timed(
    pid: int, frames: int, measure: Callable[[], Awaitable[float]]
) -> tuple[float, float]:
    """(median frames/s over REPEATS runs, server CPU microseconds per frame)."""
    cpu = _cpu_s(pid)
    rates = [await measure() for _ in range(REPEATS)]
    used = _cpu_s(pid) - cpu
    return statistics.median(rates), used / (frames * REPEATS) * 1e6


async def _measure(url: str, pid: int) -> dict[str, Any]:
    handshake = await _handshakes(url)
    push_rate, push_cpu = await _timed(pid, PUSH_SOCKETS * PUSH_FRAMES, lambda: _push(url))
    echo_rate, echo_cpu = await _timed(pid, ECHO_SOCKETS * ECHO_FRAMES, lambda: _echo(url))
    return {
        "handshake_ms": round(handshake, 3),
        "push_frames_per_s": round(push_rate),
        "push_server_cpu_us_per_frame": round(push_cpu, 1),
        "echo_round_trips_per_s": round(echo_rate),
        "echo_server_cpu_us_per_round_trip": round(echo_cpu, 1),
        "idle_kib_per_socket": round(await _idle_memory(url, pid), 1),
        "oversize_close_code": await _oversize_code(url),
    }


async def _sigterm_code(url: str, proc: subprocess.Popen[bytes]) -> tuple[int | None, float]:
    async with connect(url) as ws:
        start = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        try:
            await ws.recv()
        except ConnectionClosed as e:
            return (e.rcvd.code if e.rcvd else None), time.perf_counter() - start
    return None, time.perf_counter() - start


def run_candidate(impl: str, deflate: bool) -> dict[str, Any]:
    port = _free_port()
    argv = [sys.executable, __file__, "serve", impl, "1" if deflate else "0", str(port)]
    proc = subprocess.Popen(argv, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"{impl} did not start") from None
                time.sleep(0.1)
        url = f"ws://127.0.0.1:{port}/ws"
        row = asyncio.run(_measure(url, proc.pid))
        code, seconds = asyncio.run(_sigterm_code(url, proc))
        row["sigterm_close_code"] = code
        row["sigterm_close_s"] = round(seconds, 3)
        proc.wait(timeout=15)
        return {"impl": impl, "per_message_deflate": deflate, **row}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", nargs="?", default="bench", choices=["bench", "serve"])
    parser.add_argument("args", nargs="*")
    ns = parser.parse_args()
    if ns.mode == "serve":
        impl, deflate, port = ns.args
        serve(impl, deflate == "1", int(port))
        return
    rows = [run_candidate(impl, deflate) for impl, deflate in CANDIDATES]
    header = (
        f"{'impl':<18} {'deflate':>7} {'handshake ms':>12} {'push fr/s':>10} {'push cpu us':>11} "
        f"{'echo rt/s':>10} {'echo cpu us':>11} {'KiB/socket':>10} {'>64KiB':>6} {'SIGTERM':>7}"
    )
    print(header)
    for r in rows:
        print(
            f"{r['impl']:<18} {r['per_message_deflate']!s:>7} {r['handshake_ms']:>12.2f} "
            f"{r['push_frames_per_s']:>10} {r['push_server_cpu_us_per_frame']:>11} "
            f"{r['echo_round_trips_per_s']:>10} {r['echo_server_cpu_us_per_round_trip']:>11} "
            f"{r['idle_kib_per_socket']:>10} {r['oversize_close_code']!s:>6} "
            f"{r['sigterm_close_code']!s:>7}"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}, "rows": rows},
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
