"""Load: N concurrent chat users on the local stack (default 1,000), each on its own
WebSocket, each sending one message; every accepted message must be answered, none lost
(checked on the sockets and again in Firestore). Baseline in the same run: one user alone.

    .venv/bin/python -m bench.load_chat [--users 1000] [--timeout 600]

Users have no usage data, so each run is triage plus the onboarding answer: this loads the
relay, the submission path, Pub/Sub push and the pipeline's bookkeeping, not agent compute.
Loopback only, bounded in users and time; stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from google.cloud import firestore
from websockets.asyncio.client import connect

from bench.common import emulators, percentile, report
from devstack.auth_emulator import AuthEmulator
from devstack.emulators import EmulatorHosts
from devstack.stack import DevConfig, run_stack

TERMINAL = {"run_completed", "run_failed", "run_cancelled"}
QUESTION = "What did we spend on LLMs last week?"


def sign_up_many(hosts: EmulatorHosts, project: str, n: int) -> list[str]:
    def one(i: int) -> str:
        with AuthEmulator(hosts.auth, project) as auth:
            email = f"load-{i}-{uuid.uuid4().hex[:6]}@apex.test"
            auth.sign_up(email, "pw-load-123")
            return auth.sign_in(email, "pw-load-123").id_token

    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(one, range(n)))


async def session(url: str, token: str, deadline: float) -> dict[str, Any]:
    result: dict[str, Any] = {"accepted": False, "answered": False, "run_id": None}
    async with connect(url, open_timeout=60, max_size=None) as ws:
        await ws.send(json.dumps({"type": "auth", "token": token}))
        reply = json.loads(await asyncio.wait_for(ws.recv(), deadline - time.monotonic()))
        if reply["type"] != "auth.ok":
            result["error"] = reply
            return result
        sent = time.perf_counter()
        await ws.send(
            json.dumps(
                {"type": "chat.send", "client_msg_id": str(uuid.uuid4()), "content": QUESTION}
            )
        )
        while time.monotonic() < deadline:
            frame = json.loads(await asyncio.wait_for(ws.recv(), deadline - time.monotonic()))
            if frame["type"] == "chat.accepted":
                result.update(accepted=True, run_id=frame["run_id"])
                result["accept_s"] = time.perf_counter() - sent
            elif frame["type"] == "error":
                result["error"] = frame
                return result
            elif frame["type"] == "event" and frame["event"] == "message":
                result["answered"] = True
            elif frame["type"] == "event" and frame["event"] in TERMINAL:
                result["status"] = frame["event"]
                result["answer_s"] = time.perf_counter() - sent
                return result
    return result


async def crowd(url: str, tokens: list[str], timeout: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    tasks = [session(url, t, deadline) for t in tokens]
    return list(await asyncio.gather(*tasks, return_exceptions=False))


def stored(db: firestore.Client, run_ids: list[str]) -> int:
    """How many of the runs are completed with their answer stored."""
    done = 0
    for run_id in run_ids:
        run = db.collection("runs").document(run_id).get()
        if not run.exists or run.get("status") != "completed":
            continue
        answer = (
            db.collection("threads")
            .document(run.get("thread_id"))
            .collection("messages")
            .document(f"{run_id}-answer")
            .get()
        )
        done += answer.exists
    return done


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    project = f"demo-load{uuid.uuid4().hex[:6]}"
    with emulators(project) as hosts, tempfile.TemporaryDirectory() as state:
        config = DevConfig.with_os_ports(project, Path(state))
        with run_stack(config, {**os.environ}, demo_data=False) as stack:
            url = stack.relay.replace("http://", "ws://") + "/ws"
            tokens = sign_up_many(hosts, project, args.users + 1)
            [alone] = asyncio.run(crowd(url, tokens[:1], args.timeout))
            started = time.monotonic()
            results = asyncio.run(crowd(url, tokens[1:], args.timeout))
            wall = time.monotonic() - started
            db = firestore.Client(project=project)
            accepted = [r for r in results if r["accepted"]]
            answered = [r for r in accepted if r.get("status") == "run_completed" and r["answered"]]
            in_store = stored(db, [r["run_id"] for r in accepted])
    answers = [r["answer_s"] for r in answered]
    accepts = [r["accept_s"] for r in accepted]
    rows = [
        ["one user alone (baseline)", 1, int(alone["accepted"]), int(alone["answered"]),
         round(alone["accept_s"] * 1000, 1), round(alone["answer_s"] * 1000, 1), "-"],
        [f"{args.users} users at once", args.users, len(accepted), len(answered),
         round(percentile(accepts, 0.5) * 1000, 1) if accepts else "-",
         round(percentile(answers, 0.5) * 1000, 1) if answers else "-",
         round(percentile(answers, 0.99) * 1000, 1) if answers else "-"],
    ]  # fmt: skip
    report(
        "load_chat",
        ["case", "users", "accepted", "answered", "accept p50 ms", "answer p50 ms",
         "answer p99 ms"],
        rows,
        {"wall_s": round(wall, 1), "lost": len(accepted) - len(answered),
         "completed_in_firestore": in_store,
         "errors": [r.get("error") for r in results if "error" in r][:10]},
    )  # fmt: skip
    print(f"wall {wall:.1f} s; accepted {len(accepted)}, answered {len(answered)}, "
          f"stored {in_store}, lost {len(accepted) - len(answered)}")  # fmt: skip


if __name__ == "__main__":
    main()
