"""A push worker logs inside its message's context (DESIGN §7: structured JSON logs with
severity, trace, run id and uid): every line a step worker writes while it serves a message
names the run, its user and the step, on success and on failure alike.

The lines are the real ones: the functions configure logging (``shared.logging.configure``,
JSON on stdout) when they build their services, which here happens inside the test, so
stdout is the test's capture.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from google.cloud import firestore

from shared.usage.layout import USAGE_DAILY_COLLECTION
from tests.support.functions import Captured, User, envelope

Fn = Callable[[str], FlaskClient]
# Loggers of Apex's own code (the edge, the pipeline, the agents, the stores).
APEX_LOGGERS = ("shared.", "apex.")


def start(function: Fn, user: User, message: str) -> str:
    response = function("agents_execute").post(
        "/", headers=user.headers, json={"message": message, "wait": False}
    )
    assert response.status_code == 202, response.get_data(as_text=True)
    run_id: str = response.get_json()["run_id"]
    return run_id


def apex_lines(out: str) -> list[dict[str, Any]]:
    """The JSON log lines of Apex's loggers in ``out`` (other libraries' lines left out)."""
    lines = [json.loads(text) for text in out.splitlines() if text.startswith("{")]
    return [line for line in lines if str(line.get("logger", "")).startswith(APEX_LOGGERS)]


def served(
    function: Fn, worker: str, message: Any, capsys: pytest.CaptureFixture[str]
) -> tuple[int, Any, list[dict[str, Any]]]:
    """Deliver ``message`` to ``worker``: its status, its JSON body, and the lines it logged."""
    capsys.readouterr()
    response = function(worker).post("/", json=envelope(message))
    return response.status_code, response.get_json(silent=True), apex_lines(capsys.readouterr().out)


def test_every_line_of_a_worker_names_its_run_user_and_step(
    function: Fn, user: User, topics: dict[str, Captured], capsys: pytest.CaptureFixture[str]
) -> None:
    records = [
        {"id": f"r{i}", "model": "gpt-4o", "input_tokens": 1000, "output_tokens": 200,
         "ts": f"2026-11-{10 + i:02d}T10:00:00Z", "feature": "summarize"}
        for i in range(5)
    ]  # fmt: skip
    response = function("usage_ingest").post("/", headers=user.headers, json=records)
    assert response.status_code == 202, response.get_data(as_text=True)
    [batch] = topics["apex-usage"].pull(1)
    # A usage batch belongs to a user, not to a run.
    status, _, lines = served(function, "usage_aggregator", batch, capsys)
    assert status == 204
    assert lines, "usage_aggregator logged nothing"
    for line in lines:
        assert (line.get("uid"), line.get("run_id"), line.get("step")) == (
            user.signed_in.uid,
            None,
            None,
        )

    run_id = start(function, user, "What did we spend between 2026-11-10 and 2026-11-15?")
    context = {"run_id": run_id, "uid": user.signed_in.uid}
    # The first step's message comes from the submitter, the next one's from the pipeline.
    for topic, worker, step in (
        ("apex-triage", "triage_worker", "triage"),
        ("apex-data", "data_worker", "data"),
    ):
        [message] = topics[topic].pull(1)
        status, _, lines = served(function, worker, message, capsys)
        assert status == 204
        assert lines, f"{worker} logged nothing"
        for line in lines:
            assert {k: line.get(k) for k in ("run_id", "uid", "step")} == {**context, "step": step}
            assert line["severity"] in ("INFO", "WARNING", "ERROR")


def test_a_failing_step_logs_its_fault_in_the_runs_context(
    function: Fn,
    user: User,
    topics: dict[str, Captured],
    firestore_client: firestore.Client,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Usage that cannot be read: the data step raises.
    ws = firestore_client.collection("workspaces").document(user.workspace)
    ws.set({"records": 1, "models": ["gpt-4o"]})
    ws.collection(USAGE_DAILY_COLLECTION).document("bad").set(
        {"day": "2026-11-20", "provider": "openai", "model": "gpt-4o", "requests": "lots"}
    )
    run_id = start(function, user, "What did we spend in the last 30 days?")
    [triage] = topics["apex-triage"].pull(1)
    assert served(function, "triage_worker", triage, capsys)[0] == 204
    [data] = topics["apex-data"].pull(1)

    status, body, lines = served(function, "data_worker", data, capsys)

    # A 500 with a reference id (Pub/Sub redelivers), and the logged fault under that id.
    assert status == 500
    assert body["error"]["code"] == "internal"
    reference = body["error"]["message"].removeprefix("internal error; reference ")
    [fault] = [line for line in lines if line.get("reference") == reference]
    assert fault["severity"] == "ERROR"
    assert "ValidationError" in fault["stack_trace"]
    assert (fault["run_id"], fault["uid"], fault["step"]) == (run_id, user.signed_in.uid, "data")
