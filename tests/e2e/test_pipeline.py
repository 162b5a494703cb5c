"""The pipeline end to end through the emulators: ingest the planted workspace through
``usage_ingest`` (and the aggregator, by push), ask through ``agents_execute``, and check
the answer and the run's events against what was planted (issue 3 acceptance)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from google.cloud import firestore

from devstack.stack import RunningStack
from devstack.synthetic import SyntheticWorkspace, generate
from tests.support.event_sequence import check_sequence
from tests.support.stack import Caller, ingest, last_month


@pytest.fixture(scope="module")
def planted() -> SyntheticWorkspace:
    end, days = last_month()
    return generate(end=end, days=days)


def test_a_cost_question_is_answered_with_the_planted_savings(
    stack: RunningStack,
    new_caller: Callable[[], Caller],
    stack_db: firestore.Client,
    planted: SyntheticWorkspace,
) -> None:
    caller = new_caller()
    ingest(caller, stack_db, planted)
    response = caller.post(
        "agents_execute",
        {"message": "What did we spend last month, and where can we save?", "timeout_s": 60},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "completed"
    check_sequence(body["events"], ["triage", "data", "optimization"])
    recommendations = body["answer"]["recommendations"]
    found = {(r["kind"], r["model"], r["feature"]): r for r in recommendations}
    assert len(found) == len(planted.manifest.inefficiencies) == len(recommendations)
    for plant in planted.manifest.inefficiencies:
        rec = found[(plant.kind, plant.model, plant.feature)]
        assert rec["monthly_savings_usd"] == pytest.approx(plant.monthly_savings_usd, rel=0.05)
        assert rec["evidence"]
        assert rec["steps"]
    # The answer names the savings and the anomaly it was built from.
    text = body["answer"]["text"]
    assert planted.manifest.anomaly.day in text
    top = max(recommendations, key=lambda r: r["monthly_savings_usd"])
    assert f"${top['monthly_savings_usd']:,.2f}" in text
    # The thread holds the question and the answer.
    thread = caller.get("threads_get", thread_id=body["thread_id"]).json()
    assert [m["role"] for m in thread["messages"]] == ["user", "assistant"]
    assert thread["messages"][1]["text"] == text
    run = caller.get("runs_get", run_id=body["run_id"]).json()
    assert run["run"]["status"] == "completed"
    assert run["events"] == body["events"]


def test_a_step_that_always_fails_is_dead_lettered_and_its_run_failed(
    stack: RunningStack, new_caller: Callable[[], Caller], stack_db: firestore.Client
) -> None:
    caller = new_caller()
    # Usage that cannot be read: the data worker raises on every delivery.
    ws = stack_db.collection("workspaces").document(caller.workspace)
    ws.set({"records": 1, "models": ["gpt-4o"]})
    ws.collection("usage_daily").document("bad").set(
        {"day": datetime.now(UTC).date().isoformat(), "provider": "openai", "requests": "lots"}
    )
    accepted = caller.post("agents_execute", {"message": "What did we spend?", "wait": False})
    assert accepted.status_code == 202
    run_id = accepted.json()["run_id"]
    deadline = time.monotonic() + 150  # 5 attempts with 1..60 s backoff, then the DLQ
    while True:
        run = caller.get("runs_get", run_id=run_id).json()
        if run["run"]["status"] in ("failed", "completed"):
            break
        assert time.monotonic() < deadline, run["run"]
        time.sleep(1)
    assert run["run"]["status"] == "failed"
    assert "data step failed after every delivery attempt" in run["run"]["reason"]
    assert run["events"][-1]["event"] == "run_failed"
    attempts = stack_db.collection("runs").document(run_id).get().get("attempt")
    assert attempts == 5
