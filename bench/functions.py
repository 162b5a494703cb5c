"""Functions: warm p50/p99 per HTTP function and cold start (process start → first 200),
each against a do-nothing functions-framework function measured the same way, same run.

    .venv/bin/python -m bench.functions [--requests 200]

Every function runs as its own functions-framework process on loopback, on the emulators,
with the planted synthetic workspace loaded (30 days, ~10,000 records).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from google.cloud import firestore

from bench.common import create_topics, emulators, new_user, report, summary_ms
from devstack.procs import free_port
from devstack.synthetic import generate
from shared.store.usage import FirestoreUsageStore

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "demo-bench"
WORKSPACE = "bench"
TARGET = "target: triage p50 <= 10 ms; cold start <= 2 s"


def start(source: Path, target: str) -> tuple[subprocess.Popen[bytes], str, float]:
    port = free_port()
    started = time.perf_counter()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "functions_framework",
            "--source",
            str(source),
            "--target",
            target,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return proc, f"http://127.0.0.1:{port}/", started


def first_ok(
    client: httpx.Client, send: Any, started: float, proc: subprocess.Popen[bytes]
) -> float:
    """Seconds from process start to the first 2xx answer."""
    deadline = started + 60
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the function process exited with {proc.returncode}")
        try:
            response = send(client)
        except httpx.TransportError:
            time.sleep(0.005)
            continue
        if response.is_success:
            return time.perf_counter() - started
        raise RuntimeError(f"first answer {response.status_code}: {response.text[:200]}")
    raise RuntimeError("no answer within 60 s")


def measure(source: Path, target: str, send: Any, requests: int) -> dict[str, Any]:
    proc, url, started = start(source, target)
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            cold = first_ok(client, send, started, proc)
            for _ in range(10):  # warm-up
                send(client)
            samples = []
            for _ in range(requests):
                t = time.perf_counter()
                response = send(client)
                samples.append(time.perf_counter() - t)
                if not response.is_success:
                    raise RuntimeError(f"{target}: {response.status_code} {response.text[:200]}")
        return {"target": target, "cold_start_s": round(cold, 3), **summary_ms(samples)}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    with emulators(PROJECT) as hosts:
        os.environ["APEX_FUNCTION_CALLS_PER_MINUTE"] = "1000000"
        os.environ["APEX_CHAT_MESSAGES_PER_MINUTE"] = "1000000"
        create_topics(PROJECT)
        db = firestore.Client(project=PROJECT)
        yesterday = datetime.now(UTC).date() - timedelta(days=1)
        FirestoreUsageStore(db).apply(WORKSPACE, generate(end=yesterday).records)
        token = new_user(hosts, PROJECT, WORKSPACE).id_token
        auth = {"Authorization": f"Bearer {token}", "X-Apex-Workspace": WORKSPACE}
        record = {
            "model": "gpt-4o",
            "input_tokens": 10,
            "output_tokens": 5,
            "ts": datetime.now(UTC).isoformat(),
        }
        main_py = ROOT / "functions" / "main.py"
        cases: list[tuple[Path, str, Any]] = [
            (Path(__file__).with_name("baseline_function.py"), "hello", lambda c: c.get("/")),
            (
                main_py,
                "agents_triage",
                lambda c: c.post(
                    "/", headers=auth, json={"message": "What did we spend last week?"}
                ),
            ),
            (
                main_py,
                "agents_data",
                lambda c: c.post("/", headers=auth, json={"period": "last_30d"}),
            ),
            (
                main_py,
                "agents_optimization",
                lambda c: c.post("/", headers=auth, json={"period": "last_30d"}),
            ),
            (main_py, "threads_get", lambda c: c.get("/", headers=auth)),
            (main_py, "usage_ingest", lambda c: c.post("/", headers=auth, json=[record])),
            (
                main_py,
                "agents_execute",
                lambda c: c.post("/", headers=auth, json={"message": "hi", "wait": False}),
            ),
        ]
        results = [measure(source, target, send, args.requests) for source, target, send in cases]
    base = results[0]
    rows = [
        [
            r["target"],
            r["p50_ms"],
            r["p99_ms"],
            round(r["p50_ms"] / base["p50_ms"], 1),
            r["cold_start_s"],
            round(r["cold_start_s"] / base["cold_start_s"], 1),
        ]
        for r in results
    ]
    report(
        "functions",
        [
            "function",
            "warm p50 ms",
            "warm p99 ms",
            "p50 x baseline",
            "cold start s",
            "cold x baseline",
        ],
        rows,
        {
            "baseline": "bench/baseline_function.py hello",
            "target": TARGET,
            "results": results,
            "requests": args.requests,
        },
    )


if __name__ == "__main__":
    main()
