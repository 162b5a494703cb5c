"""The pipeline driven message by message through the worker functions, as push would:
duplicate deliveries change nothing, a dead-lettered step fails its run with a reason,
one run per thread at a time, cancellation between steps."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from flask.testing import FlaskClient
from google.cloud import firestore

from shared.auth import Principal
from shared.chat import cancel
from shared.models.usage import parse_usage_record
from shared.services import services
from shared.store.usage import FirestoreUsageStore
from shared.usage.layout import USAGE_DAILY_COLLECTION
from tests.support.event_sequence import check_sequence
from tests.support.functions import Captured, User, envelope

Fn = Callable[[str], FlaskClient]


def start(function: Fn, user: User, message: str, **extra: Any) -> dict[str, Any]:
    response = function("agents_execute").post(
        "/", headers=user.headers, json={"message": message, "wait": False, **extra}
    )
    assert response.status_code == 202, response.get_data(as_text=True)
    return response.get_json()  # type: ignore[no-any-return]


def deliver(function: Fn, worker: str, message: Any, times: int = 1, attempt: int = 1) -> None:
    for _ in range(times):
        response = function(worker).post("/", json=envelope(message, attempt))
        assert response.status_code == 204, response.get_data(as_text=True)


def snapshot(db: firestore.Client, run_id: str, thread_id: str) -> dict[str, Any]:
    """Everything a run wrote, without the fields that differ between two runs."""
    run = db.collection("runs").document(run_id)
    volatile = {
        "ts",
        "run_id",
        "execution_id",
        "execution_time_ms",
        "duration_ms",
        "message_id",
        "thread_id",
    }

    def scrub(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: scrub(v) for k, v in value.items() if k not in volatile}
        if isinstance(value, list):
            return [scrub(v) for v in value]
        return value

    doc = run.get().to_dict() or {}
    return {
        "status": doc["status"],
        "last_seq": doc["last_seq"],
        "events": [
            scrub(json.loads(e.get("frame")))
            for e in run.collection("events").order_by("seq").stream()
        ],
        "steps": sorted(s.id for s in run.collection("steps").stream()),
        "messages": [
            scrub({k: v for k, v in m.to_dict().items() if k not in ("client_msg_id",)})
            for m in db.collection("threads")
            .document(thread_id)
            .collection("messages")
            .order_by("ts")
            .stream()
        ],
    }


def run_pipeline(function: Fn, topics: dict[str, Captured], times: int) -> None:
    """Deliver triage then data, each message ``times`` times."""
    [triage] = topics["apex-triage"].pull(1)
    deliver(function, "triage_worker", triage, times)
    [data] = topics["apex-data"].pull(1)
    assert topics["apex-data"].empty(), "a duplicate delivery published the next step again"
    deliver(function, "data_worker", data, times)
    [optimization] = topics["apex-optimization"].pull(1)
    assert topics["apex-optimization"].empty()
    deliver(function, "optimization_worker", optimization, times)


@pytest.fixture
def with_data(user: User, firestore_client: firestore.Client) -> User:
    records = [
        {
            "id": f"r{i}",
            "model": "gpt-4o",
            "input_tokens": 1000 + i,
            "output_tokens": 200,
            "ts": f"2026-11-{10 + i % 10:02d}T10:00:00Z",
            "feature": "summarize",
        }
        for i in range(40)
    ]
    now = datetime(2026, 11, 25, tzinfo=UTC)
    FirestoreUsageStore(firestore_client).apply(
        user.workspace, [parse_usage_record(r, now=now) for r in records]
    )
    return user


def test_every_message_delivered_twice_gives_the_same_run_as_once(
    function: Fn, with_data: User, topics: dict[str, Captured], firestore_client: firestore.Client
) -> None:
    question = "What did we spend between 2026-11-10 and 2026-11-20, and where can we save?"
    once = start(function, with_data, question)
    run_pipeline(function, topics, times=1)
    once_events = topics["apex-events"].pull(
        snapshot(firestore_client, once["run_id"], once["thread_id"])["last_seq"]
    )
    twice = start(function, with_data, question)
    run_pipeline(function, topics, times=2)
    a = snapshot(firestore_client, once["run_id"], once["thread_id"])
    b = snapshot(firestore_client, twice["run_id"], twice["thread_id"])
    assert a["status"] == "completed"
    assert a == b
    # Each event was published once, in spite of the duplicate deliveries.
    twice_events = topics["apex-events"].pull(b["last_seq"])
    assert topics["apex-events"].empty()
    assert sorted(json.loads(m.data)["seq"] for m in twice_events) == list(
        range(1, b["last_seq"] + 1)
    )
    assert len(once_events) == len(twice_events)
    events = (
        function("runs_get")
        .get(f"/?run_id={twice['run_id']}", headers=with_data.headers)
        .get_json()["events"]
    )
    check_sequence(events, ["triage", "data", "optimization"])


@pytest.mark.parametrize(
    ("question", "reads_users"),
    [
        ("What did we spend between 2026-11-10 and 2026-11-20?", False),
        ("Which users spent the most between 2026-11-10 and 2026-11-20?", True),
    ],
)
def test_the_data_step_reads_per_user_rollups_only_when_users_are_asked_about(
    function: Fn,
    with_data: User,
    topics: dict[str, Captured],
    firestore_client: firestore.Client,
    question: str,
    reads_users: bool,
) -> None:
    run = start(function, with_data, question)
    [triage] = topics["apex-triage"].pull(1)
    deliver(function, "triage_worker", triage)
    [data] = topics["apex-data"].pull(1)
    deliver(function, "data_worker", data)
    events = snapshot(firestore_client, run["run_id"], run["thread_id"])["events"]
    tools = [e["data"]["tool_name"] for e in events if e["event"] == "tool_executing"]
    assert ("query_user_rollups" in tools) is reads_users
    assert "query_usage_rollups" in tools
    [breakdown] = [
        e["data"]["tool_args"]["group_by"]
        for e in events
        if e["event"] == "tool_executing" and e["data"]["tool_name"] == "usage_breakdown"
    ]
    assert breakdown == (
        ["model", "provider", "feature", "user", "day"]
        if reads_users
        else ["model", "provider", "feature", "day"]
    )
    [optimization] = topics["apex-optimization"].pull(1)  # both are spend questions
    deliver(function, "optimization_worker", optimization)
    [message] = snapshot(firestore_client, run["run_id"], run["thread_id"])["messages"][1:]
    assert ("By user" in message["text"]) is reads_users


def test_the_optimization_agent_prices_the_rollups_the_data_agent_measured(
    function: Fn, with_data: User, topics: dict[str, Captured], firestore_client: firestore.Client
) -> None:
    question = "What did we spend between 2026-11-10 and 2026-11-20, and where can we save?"
    run = start(function, with_data, question)
    [triage] = topics["apex-triage"].pull(1)
    deliver(function, "triage_worker", triage)
    [data] = topics["apex-data"].pull(1)
    deliver(function, "data_worker", data)
    # Usage that lands between the two steps is not in this run's recommendations.
    late = [
        {
            "id": f"late{i}",
            "model": "gpt-4o",
            "input_tokens": 50_000,
            "output_tokens": 20,
            "ts": "2026-11-12T10:00:00Z",
            "feature": "late_feature",
        }
        for i in range(30)
    ]
    now = datetime(2026, 11, 25, tzinfo=UTC)
    FirestoreUsageStore(firestore_client).apply(
        with_data.workspace, [parse_usage_record(r, now=now) for r in late]
    )
    [optimization] = topics["apex-optimization"].pull(1)
    deliver(function, "optimization_worker", optimization)
    events = snapshot(firestore_client, run["run_id"], run["thread_id"])["events"]
    optimization_events = [e for e in events if e.get("agent") == "optimization"]
    tools = [e["data"]["tool_name"] for e in optimization_events if e["event"] == "tool_executing"]
    assert tools == ["reuse_measured_rollups", "price_recommendations"]
    [completed] = [e for e in optimization_events if e["event"] == "agent_completed"]
    priced = json.dumps(completed["data"]["result"])
    assert "summarize" in priced
    assert "late_feature" not in priced
    # Read now, the same period includes the late usage.
    direct = function("agents_optimization").post(
        "/",
        headers=with_data.headers,
        json={"period": {"start": "2026-11-10T00:00:00Z", "end": "2026-11-21T00:00:00Z"}},
    )
    assert direct.status_code == 200, direct.get_data(as_text=True)
    assert "late_feature" in json.dumps(direct.get_json())


def test_a_dead_lettered_step_fails_the_run_with_its_reason(
    function: Fn, user: User, topics: dict[str, Captured], firestore_client: firestore.Client
) -> None:
    # Usage that cannot be read: the data step raises on every delivery.
    ws = firestore_client.collection("workspaces").document(user.workspace)
    ws.set({"records": 1, "models": ["gpt-4o"]})
    ws.collection(USAGE_DAILY_COLLECTION).document("bad").set(
        {"day": "2026-11-20", "provider": "openai", "model": "gpt-4o", "requests": "lots"}
    )
    accepted = start(function, user, "What did we spend in the last 30 days?")
    [triage] = topics["apex-triage"].pull(1)
    deliver(function, "triage_worker", triage)
    [data] = topics["apex-data"].pull(1)
    for attempt in range(1, 6):
        response = function("data_worker").post("/", json=envelope(data, attempt))
        assert response.status_code == 500
    # After the 5th attempt Pub/Sub dead-letters the message to deadletter_worker.
    for _ in range(2):
        deliver(function, "deadletter_worker", data, attempt=5)
    run = (
        function("runs_get").get(f"/?run_id={accepted['run_id']}", headers=user.headers).get_json()
    )
    assert run["run"]["status"] == "failed"
    assert "data step failed" in run["run"]["reason"]
    assert "ValidationError" in run["run"]["reason"]
    assert [e["event"] for e in run["events"]][-1] == "run_failed"
    assert sum(e["event"] == "run_failed" for e in run["events"]) == 1


def test_one_run_per_thread_the_next_waits(
    function: Fn, with_data: User, topics: dict[str, Captured], firestore_client: firestore.Client
) -> None:
    first = start(function, with_data, "how many requests last week?")
    second = start(
        function, with_data, "how many requests the week before?", thread_id=first["thread_id"]
    )
    triages = topics["apex-triage"].pull(2)
    by_run = {json.loads(m.data)["run_id"]: m for m in triages}
    deliver(function, "triage_worker", by_run[first["run_id"]])
    deliver(function, "triage_worker", by_run[second["run_id"]])  # cannot take the thread
    [data] = topics["apex-data"].pull(1)
    assert topics["apex-data"].empty()
    runs = firestore_client.collection("runs")
    assert runs.document(second["run_id"]).get().get("status") == "queued"
    deliver(function, "data_worker", data)
    assert runs.document(first["run_id"]).get().get("status") == "completed"
    # The first run's end started the second.
    [handed] = topics["apex-triage"].pull(1)
    assert json.loads(handed.data)["run_id"] == second["run_id"]
    deliver(function, "triage_worker", handed)
    [data] = topics["apex-data"].pull(1)
    deliver(function, "data_worker", data)
    assert runs.document(second["run_id"]).get().get("status") == "completed"


def test_a_cancelled_run_stops_between_steps(
    function: Fn, with_data: User, topics: dict[str, Captured], firestore_client: firestore.Client
) -> None:
    accepted = start(function, with_data, "how many requests last week?")
    [triage] = topics["apex-triage"].pull(1)
    deliver(function, "triage_worker", triage)
    principal = Principal(
        uid=with_data.signed_in.uid, workspace_id=with_data.workspace, role="owner"
    )
    cancel(services().pipeline, principal, accepted["run_id"])
    [data] = topics["apex-data"].pull(1)
    deliver(function, "data_worker", data)
    run = firestore_client.collection("runs").document(accepted["run_id"]).get().to_dict() or {}
    assert run["status"] == "cancelled"
    events = (
        function("runs_get")
        .get(f"/?run_id={accepted['run_id']}", headers=with_data.headers)
        .get_json()["events"]
    )
    assert events[-1]["event"] == "run_cancelled"
    assert not any(e.get("agent") == "data" for e in events)
