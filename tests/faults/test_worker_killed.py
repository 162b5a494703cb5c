"""A worker process killed in the middle of a step (SIGKILL, not an exception): Pub/Sub
redelivers to the restarted worker and the run completes, every event exactly once.

Its own stack (not the e2e one): the test kills and restarts one of its processes.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest
from google.cloud import firestore

from devstack import probes
from devstack.auth_emulator import AuthEmulator
from devstack.emulators import EmulatorHosts
from devstack.procs import ManagedProcess, wait_ready
from devstack.stack import RunningStack
from devstack.synthetic import generate
from shared.store.usage import FirestoreUsageStore
from tests.support.event_sequence import check_sequence
from tests.support.stack import Caller, running_stack


@pytest.fixture(scope="module")
def own_stack(
    emulators: EmulatorHosts, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningStack]:
    with running_stack(f"demo-f{uuid.uuid4().hex[:10]}", tmp_path_factory.mktemp("faults")) as s:
        yield s


def worker(stack: RunningStack, name: str) -> ManagedProcess:
    [proc] = [
        p for p in stack.watched if isinstance(p, ManagedProcess) and p.name == f"function {name}"
    ]
    return proc


def test_a_worker_killed_mid_step_is_redelivered_and_the_run_completes(
    own_stack: RunningStack,
) -> None:
    with AuthEmulator(own_stack.hosts.auth, own_stack.project) as auth:
        user = auth.sign_up(f"killed-{uuid.uuid4().hex[:8]}@apex.test", "pw-123456")
    workspace = user.uid  # their personal workspace (DESIGN §9)
    caller = Caller(user, workspace, own_stack.functions)
    db = firestore.Client(project=own_stack.project)
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    FirestoreUsageStore(db).apply(workspace, generate(end=yesterday).records)

    accepted = caller.post(
        "agents_execute", {"message": "What did we spend in the last 30 days?", "wait": False}
    )
    assert accepted.status_code == 202
    run_id = accepted.json()["run_id"]
    # The data step starts as soon as triage is committed: kill its worker then.
    steps = db.collection("runs").document(run_id).collection("steps")
    deadline = time.monotonic() + 30
    while not steps.document("triage").get().exists:
        assert time.monotonic() < deadline, "triage never committed"
        time.sleep(0.005)
    data_worker = worker(own_stack, "data_worker")
    os.killpg(data_worker.pid, signal.SIGKILL)
    data_worker.popen.wait(timeout=10)  # type: ignore[union-attr]
    assert not steps.document("data").get().exists, "the data step finished before the kill"
    data_worker.start()
    wait_ready(
        data_worker,
        data_worker.name,
        partial(probes.http_answers, own_stack.workers["data_worker"]),
        60.0,
    )

    deadline = time.monotonic() + 120
    while True:
        run = caller.get("runs_get", run_id=run_id).json()
        if run["run"]["status"] != "running" and run["run"]["status"] != "queued":
            break
        assert time.monotonic() < deadline, run["run"]
        time.sleep(0.5)
    assert run["run"]["status"] == "completed"
    check_sequence(run["events"], ["triage", "data", "optimization"])
    db.close()
