"""Relay capacity: idle authenticated sockets one relay process holds, and its RSS per socket,
against a bare ``websockets`` server holding the same idle sockets, same run.

    .venv/bin/python -m bench.relay_capacity [--sockets 10000]

The local stack runs as ``make dev`` runs it (``devstack.stack.run_stack``, no demo data);
one more relay process (``python -m relay``, the stack's environment) is started for the
measure. This process is the client: ``websockets`` asyncio clients, opened in batches,
each sends ``{"type":"auth","token"}`` (one user's token) and waits for ``auth.ok``, then
every socket stays open and idle while the server's VmRSS (``/proc/PID/status``) is read.
The baseline is ``websockets.asyncio.server.serve`` in its own process (the same keep-alive
pings), answering the first frame of each socket with a small JSON frame, then idle.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from bench.common import join_workspace, report
from devstack.auth_emulator import AuthEmulator
from devstack.procs import ManagedProcess, free_port, wait_ready
from devstack.stack import DevConfig, RunningStack, relay_process, relay_ready, run_stack

ROOT = Path(__file__).resolve().parents[1]
TARGET = "target: >= 10,000 idle authenticated sockets on 2 cores; <= 30 KiB RSS a socket"
RESULTS_DIR = ROOT / "bench" / "results"
BATCH = 200  # sockets opened (and authenticated) at once
PASSWORD = "pw-bench-123"  # noqa: S105 - an emulator account


def raise_nofile(wanted: int = 65_536) -> int:
    """The soft open-files limit up to ``wanted`` (or the hard limit); children inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = hard if hard != resource.RLIM_INFINITY else wanted
    new = max(soft, min(wanted, limit))
    resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    return new


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def bench_stack(*, demo_data: bool = False, **env: str) -> Iterator[RunningStack]:
    """The local stack (emulators, functions, relay), every port from the OS."""
    project = f"demo-bench{uuid.uuid4().hex[:6]}"
    environ = {**os.environ, "GOOGLE_CLOUD_PROJECT": project, **env}
    with tempfile.TemporaryDirectory() as state:
        config = DevConfig.with_os_ports(project, Path(state))
        with run_stack(config, environ, demo_data=demo_data) as running:
            yield running


@contextmanager
def own_relay(running: RunningStack, log_dir: Path, **env: str) -> Iterator[tuple[int, str]]:
    """One more relay process on the stack's environment: (pid, ws url)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc: ManagedProcess = relay_process(port, {**running.env, **env}, log_dir / "relay.log")
    proc.start()
    try:
        wait_ready(proc, "bench relay", partial(relay_ready, url), 60.0)
        yield proc.pid, f"ws://127.0.0.1:{port}/ws"
    finally:
        proc.stop()


def sign_up(running: RunningStack, workspace: str) -> tuple[str, str]:
    """A member of ``workspace``: (uid, ID token)."""
    with AuthEmulator(running.hosts.auth, running.project) as auth:
        email = f"bench-{uuid.uuid4().hex[:8]}@apex.test"
        user = auth.sign_up(email, PASSWORD)
    join_workspace(running.project, workspace, user.uid, email)
    return user.uid, user.id_token


# --- where a socket's memory goes (--profile-memory) ------------------------------------


def serve_traced_relay(port: int) -> None:
    """The relay's app under tracemalloc, with ``POST /tracemalloc`` (``{"mark": true}``
    takes the baseline snapshot; otherwise: the top allocation sites grown since it)."""
    import tracemalloc

    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response

    from relay import __main__ as relay_main
    from relay.app import create_app

    tracemalloc.start(25)
    app = create_app()
    marks: list[tracemalloc.Snapshot] = []

    async def route(request: Request) -> Response:
        body = await request.json()
        snapshot = tracemalloc.take_snapshot()
        if body.get("mark"):
            marks[:] = [snapshot]
            return JSONResponse({"marked": True})
        stats = snapshot.compare_to(marks[0], "traceback")
        by_site: dict[str, list[int]] = {}
        by_owner: dict[str, int] = {}
        # Each site's largest traceback, innermost frames first: who called it.
        via: dict[str, tuple[int, list[str]]] = {}
        for stat in stats:
            site = str(stat.traceback[-1])  # the newest frame
            entry = by_site.setdefault(site, [0, 0])
            entry[0] += stat.size_diff
            entry[1] += stat.count_diff
            owner = _owner(stat.traceback)
            by_owner[owner] = by_owner.get(owner, 0) + stat.size_diff
            if stat.size_diff > via.get(site, (0, []))[0]:
                frames = [_short(str(f)) for f in reversed(stat.traceback)][1:8]
                via[site] = (stat.size_diff, frames)
        ranked = sorted(by_site.items(), key=lambda kv: -kv[1][0])[:40]
        top = [
            {"site": k, "kib": round(v[0] / 1024, 1), "count": v[1], "via": via.get(k, (0, []))[1]}
            for k, v in ranked
        ]
        total = sum(s.size_diff for s in stats)
        owners = {k: round(v / 1024, 1) for k, v in sorted(by_owner.items(), key=lambda kv: -kv[1])}
        return JSONResponse({"total_kib": round(total / 1024, 1), "owners": owners, "top": top})

    app.add_route("/tracemalloc", route, methods=["POST"])
    relay_main.serve(app, "127.0.0.1", port)


def _short(frame: str) -> str:
    return frame.split("site-packages/", 1)[-1].split("/lib/python3", 1)[-1].replace(str(ROOT), "")


def _owner(traceback: Any) -> str:
    """Who asked for an allocation: the innermost frame in the relay, else in a package.
    ``relay/__main__.py`` (which starts uvicorn, so is under every frame) is not an owner."""
    frames = [str(f.filename) for f in traceback]  # oldest first
    for filename in reversed(frames):
        if "/relay/" in filename and "site-packages" not in filename:
            name = "relay/" + filename.rsplit("/relay/", 1)[1]
            if name != "relay/__main__.py":
                return name
    for filename in reversed(frames):
        if "site-packages/" in filename:
            return filename.split("site-packages/", 1)[1].split("/", 1)[0]
    return "stdlib"


async def profile_memory(http: str, token: str, count: int) -> dict[str, Any]:
    import httpx

    url = http.replace("http://", "ws://", 1) + "/ws"
    async with httpx.AsyncClient(timeout=120) as client:
        await _open_one(url, token)  # warm: first-use allocations are not per socket
        await asyncio.sleep(1.0)
        (await client.post(f"{http}/tracemalloc", json={"mark": True})).raise_for_status()
        sockets = []
        for start in range(0, count, BATCH):
            sockets += await asyncio.gather(
                *(_open_one(url, token) for _ in range(start, min(start + BATCH, count)))
            )
        await asyncio.sleep(3.0)
        diff: dict[str, Any] = (await client.post(f"{http}/tracemalloc", json={})).json()
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    diff["sockets"] = count
    for row in diff["top"]:
        row["bytes_per_socket"] = round(row["kib"] * 1024 / count)
    return diff


def run_profile_memory(running: RunningStack, token: str, count: int, log: Path) -> None:
    port = free_port()
    http = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.relay_capacity", "traced", str(port)],
            cwd=ROOT,
            env={**running.env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while not relay_ready(http):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"the traced relay did not start; see {log}")
            time.sleep(0.2)
        diff = asyncio.run(profile_memory(http, token, count))
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    print(f"Python heap grown by {count} idle authenticated sockets: {diff['total_kib']} KiB")
    print(f"({diff['total_kib'] / count:.1f} KiB a socket); by owner, bytes a socket:")
    for owner, kib in diff["owners"].items():
        print(f"  {round(kib * 1024 / count):>7}  {owner}")
    print("top sites (the allocating line), bytes a socket:")
    for row in diff["top"]:
        print(f"  {row['bytes_per_socket']:>7}  {row['count']:>7}  {row['site']}")
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "relay_capacity_memory.json").write_text(json.dumps(diff, indent=2) + "\n")


# --- the baseline server ------------------------------------------------------------------


def serve_bare(port: int) -> None:
    from websockets.asyncio.server import ServerConnection, serve

    async def handler(ws: ServerConnection) -> None:
        async for _ in ws:
            await ws.send('{"type":"auth.ok"}')

    async def main() -> None:
        async with serve(
            handler,
            "127.0.0.1",
            port,
            ping_interval=20,
            ping_timeout=20,
            max_size=64 * 1024,
            compression=None,
            backlog=4096,
        ):
            await asyncio.Future()

    asyncio.run(main())


@contextmanager
def bare_server(mode: str, module: str) -> Iterator[tuple[int, str]]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", module, mode, str(port)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        url = f"ws://127.0.0.1:{port}/"
        deadline = time.monotonic() + 20
        while True:
            try:
                asyncio.run(_probe(url))
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the bare websockets server did not start") from None
                time.sleep(0.1)
        yield proc.pid, url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _probe(url: str) -> None:
    async with connect(url, open_timeout=2):
        pass


# --- the client -----------------------------------------------------------------------------


async def _open_one(url: str, token: str) -> ClientConnection:
    ws = await connect(url, open_timeout=60, max_size=None, compression=None)
    await ws.send(json.dumps({"type": "auth", "token": token}))
    reply = json.loads(await asyncio.wait_for(ws.recv(), 60))
    if reply.get("type") != "auth.ok":
        raise RuntimeError(f"not authenticated: {reply}")
    return ws


async def hold(url: str, token: str, count: int, pid: int) -> dict[str, Any]:
    """Open ``count`` authenticated sockets, read the server's RSS, close them."""
    await asyncio.sleep(1.0)
    before = rss_kib(pid)
    cpu = cpu_s(pid)
    sockets: list[ClientConnection] = []
    failures: list[str] = []
    started = time.perf_counter()
    for start in range(0, count, BATCH):
        results = await asyncio.gather(
            *(_open_one(url, token) for _ in range(start, min(start + BATCH, count))),
            return_exceptions=True,
        )
        for r in results:
            if isinstance(r, BaseException):
                failures.append(repr(r)[:200])
            else:
                sockets.append(r)
        if len(failures) > count // 100 + 10:
            break
    open_s = time.perf_counter() - started
    open_cpu = cpu_s(pid) - cpu
    await asyncio.sleep(3.0)  # settle
    after = rss_kib(pid)
    # Still open after the settle? One ping each, answered by the server.
    alive = 0
    pongs = await asyncio.gather(
        *(asyncio.wait_for(ws.ping(), 30) for ws in sockets), return_exceptions=True
    )
    for p in pongs:
        if not isinstance(p, BaseException):
            alive += 1
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    held = len(sockets)
    return {
        "requested": count,
        "held": held,
        "alive_after_settle": alive,
        "failures": len(failures),
        "first_failures": failures[:3],
        "rss_before_kib": before,
        "rss_after_kib": after,
        "kib_per_socket": round((after - before) / held, 1) if held else None,
        "open_s": round(open_s, 1),
        "server_cpu_ms_per_open": round(open_cpu / held * 1000, 3) if held else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", nargs="?", default="bench", choices=["bench", "bare", "traced"])
    parser.add_argument("args", nargs="*")
    parser.add_argument("--sockets", type=int, default=10_000)
    parser.add_argument(
        "--profile-memory",
        action="store_true",
        help="instead: where the relay's per-socket memory goes (tracemalloc), no figures",
    )
    ns = parser.parse_args()
    nofile = raise_nofile()
    if ns.mode == "bare":
        serve_bare(int(ns.args[0]))
        return
    if ns.mode == "traced":
        serve_traced_relay(int(ns.args[0]))
        return
    if ns.profile_memory:
        with bench_stack() as running, tempfile.TemporaryDirectory() as logs:
            _, token = sign_up(running, "bench")
            run_profile_memory(running, token, min(ns.sockets, 2_000), Path(logs) / "traced.log")
        return
    if nofile < ns.sockets + 500:
        raise SystemExit(f"open-files limit {nofile} is below {ns.sockets} sockets")
    with bench_stack() as running, tempfile.TemporaryDirectory() as logs:
        _, token = sign_up(running, "bench")
        with bare_server("bare", "bench.relay_capacity") as (pid, url):
            bare = asyncio.run(hold(url, token, ns.sockets, pid))
        with own_relay(running, Path(logs)) as (pid, url):
            relay = asyncio.run(hold(url, token, ns.sockets, pid))
    rows = []
    for name, r in (("bare websockets (baseline)", bare), ("relay", relay)):
        rows.append(
            [
                name,
                r["requested"],
                r["held"],
                r["alive_after_settle"],
                r["rss_before_kib"] // 1024,
                r["rss_after_kib"] // 1024,
                r["kib_per_socket"],
                r["open_s"],
                r["server_cpu_ms_per_open"],
            ]
        )
    columns = [
        "server",
        "requested",
        "held",
        "alive",
        "RSS before MiB",
        "RSS after MiB",
        "KiB/socket",
        "open s",
        "server CPU ms/open",
    ]
    report(
        "relay_capacity",
        columns,
        rows,
        {"target": TARGET, "open_files_limit": nofile, "bare": bare, "relay": relay},
    )


if __name__ == "__main__":
    main()
