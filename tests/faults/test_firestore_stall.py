"""The Firestore emulator frozen for 5 s under load (SIGSTOP, then SIGCONT: a stall, its
data stays in memory): requests in flight wait or fail with a clear error, the system
recovers by itself, and nothing that was acknowledged is lost (asserted on stored state)."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from google.cloud import firestore

from devstack.emulators import EmulatorHosts, Emulators
from tests.support.functions import Captured, User

Fn = Callable[[str], FlaskClient]


def test_a_frozen_firestore_loses_nothing_acknowledged(
    function: Fn,
    user: User,
    topics: dict[str, Captured],
    emulator_set: tuple[Emulators, EmulatorHosts],
    firestore_client: firestore.Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proc = emulator_set[0].process("firestore")
    if proc is None:
        pytest.fail("this test freezes the Firestore emulator it started; unset the env var")
    monkeypatch.setenv("APEX_CHAT_MESSAGES_PER_MINUTE", "1000000")
    results: list[tuple[int, dict[str, Any]]] = []
    stop = threading.Event()

    def load() -> None:
        client = function("agents_execute")
        while not stop.is_set():
            response = client.post(
                "/", headers=user.headers, json={"message": "what did we spend?", "wait": False}
            )
            results.append((response.status_code, response.get_json()))

    workers = [threading.Thread(target=load) for _ in range(4)]
    for thread in workers:
        thread.start()
    time.sleep(1.5)
    before = len(results)
    os.killpg(proc.pid, signal.SIGSTOP)
    try:
        time.sleep(5)
        during = len(results) - before
    finally:
        os.killpg(proc.pid, signal.SIGCONT)
    time.sleep(2)
    stop.set()
    for thread in workers:
        thread.join(timeout=120)
        assert not thread.is_alive(), "a request never came back after the stall"

    assert before > 0
    assert during <= 4, "requests completed while Firestore was frozen"
    accepted = [body for status, body in results if status == 202]
    refused = [(status, body) for status, body in results if status != 202]
    assert len(accepted) > before
    for status, body in refused:  # a stall may fail a request, but clearly
        assert status == 503, body
        assert body["error"]["code"] == "unavailable"
    # Every acknowledged run and its message are stored, and each was handed to triage.
    runs = firestore_client.collection("runs")
    for body in accepted:
        run = runs.document(body["run_id"]).get()
        assert run.exists, body
        message = (
            firestore_client.collection("threads")
            .document(body["thread_id"])
            .collection("messages")
            .document(run.get("message_id"))
            .get()
        )
        assert message.exists
    published = {m.attributes["run_id"] for m in topics["apex-triage"].pull(len(accepted), 30)}
    assert published == {body["run_id"] for body in accepted}
    # And it works again without anyone's help.
    after = function("agents_execute").post(
        "/", headers=user.headers, json={"message": "and now?", "wait": False}
    )
    assert after.status_code == 202
