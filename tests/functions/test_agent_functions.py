"""The agents and usage functions in-process: what they compute from real stored usage."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import pytest
from flask.testing import FlaskClient
from google.cloud import firestore

from devstack.auth_emulator import AuthEmulator
from devstack.emulators import EmulatorHosts
from devstack.synthetic import SyntheticWorkspace, generate
from shared.store.usage import FirestoreUsageStore
from tests.support.functions import Captured, User, envelope

Fn = Callable[[str], FlaskClient]
END = date(2026, 11, 20)
PERIOD = {"start": "2026-10-22", "end": "2026-11-20"}


@pytest.fixture(scope="module")
def planted() -> SyntheticWorkspace:
    return generate(end=END)


@pytest.fixture(scope="module")
def loaded_project(
    emulators: EmulatorHosts, planted: SyntheticWorkspace
) -> Iterator[tuple[str, User]]:
    """One project with the planted workspace, shared by the read-only tests of this module
    (loading ~10,000 records takes seconds on the emulator)."""
    project = f"demo-m{uuid.uuid4().hex[:12]}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GOOGLE_CLOUD_PROJECT", project)
        with AuthEmulator(emulators.auth, project) as auth:
            signed = auth.sign_up(f"planted-{uuid.uuid4().hex[:8]}@apex.test", "pw-123456")
            workspace = signed.uid  # their personal workspace (DESIGN §9)
        client = firestore.Client(project=project)
        FirestoreUsageStore(client).apply(workspace, planted.records)
        client.close()
        yield project, User(signed, workspace)


@pytest.fixture
def loaded(loaded_project: tuple[str, User], monkeypatch: pytest.MonkeyPatch) -> User:
    # Function-scoped fixtures of other tests may have pointed the env elsewhere.
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", loaded_project[0])
    return loaded_project[1]


def test_triage_routes_a_cost_question_through_both_agents(function: Fn, loaded: User) -> None:
    response = function("agents_triage").post(
        "/", headers=loaded.headers, json={"message": "How much did gpt-4o cost us last week?"}
    )
    assert response.status_code == 200
    body = response.get_json()
    assert body["intent"] == "cost_analysis"
    assert body["route"]["agents"] == ["data", "optimization"]
    assert body["entities"]["period"]["token"] == "last_week"
    assert [m["name"] for m in body["entities"]["models"]] == ["gpt-4o"]


def test_triage_without_data_routes_to_onboarding(function: Fn, user: User) -> None:
    response = function("agents_triage").post(
        "/", headers=user.headers, json={"message": "What did we spend last month?"}
    )
    assert response.get_json()["route"] == {
        "agents": [],
        "answer": "onboarding",
        "data_sufficient": False,
        "reason": "cost_analysis needs usage data and the workspace has none",
    }


def test_data_totals_match_the_records(
    function: Fn, loaded: User, planted: SyntheticWorkspace
) -> None:
    response = function("agents_data").post(
        "/", headers=loaded.headers, json={"period": PERIOD, "group_by": ["model", "day"]}
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["totals"]["requests"] == sum(r.requests for r in planted.records)
    assert body["totals"]["output_tokens"] == sum(r.output_tokens for r in planted.records)
    assert set(body["breakdown"]) == {"model", "day"}
    assert len(body["breakdown"]["day"]) == 30
    assert sum(row["requests"] for row in body["breakdown"]["model"]) == body["totals"]["requests"]
    [anomaly] = body["anomalies"]
    assert anomaly["day"] == planted.manifest.anomaly.day
    assert anomaly["driver"]["model"] == planted.manifest.anomaly.model


def test_data_of_another_workspace_is_empty(
    function: Fn, loaded: User, loaded_project: tuple[str, User], emulators: EmulatorHosts
) -> None:
    with AuthEmulator(emulators.auth, loaded_project[0]) as auth:
        signed = auth.sign_up(f"stranger-{uuid.uuid4().hex[:8]}@apex.test", "pw-123456")
    stranger = User(signed, signed.uid)
    body = (
        function("agents_data")
        .post("/", headers=stranger.headers, json={"period": PERIOD})
        .get_json()
    )
    assert body["totals"]["requests"] == 0


def test_optimization_finds_every_planted_saving(
    function: Fn, loaded: User, planted: SyntheticWorkspace
) -> None:
    response = function("agents_optimization").post(
        "/", headers=loaded.headers, json={"period": PERIOD}
    )
    assert response.status_code == 200
    body = response.get_json()
    found = {(r["kind"], r["model"], r["feature"]): r for r in body["recommendations"]}
    assert len(found) == len(planted.manifest.inefficiencies)
    for plant in planted.manifest.inefficiencies:
        rec = found[(plant.kind, plant.model, plant.feature)]
        assert rec["monthly_savings_usd"] == pytest.approx(plant.monthly_savings_usd, rel=0.05)
        assert (rec["basis"], rec["target_model"]) == (plant.basis, plant.target_model)
    high = function("agents_optimization").post(
        "/", headers=loaded.headers, json={"period": PERIOD, "min_monthly_savings_usd": 4}
    )
    assert {r["kind"] for r in high.get_json()["recommendations"]} == {
        p.kind for p in planted.manifest.inefficiencies if p.monthly_savings_usd >= 4
    }


def test_ingest_accepts_both_forms_and_reports_each_bad_record(
    function: Fn, user: User, topics: dict[str, Captured], firestore_client: firestore.Client
) -> None:
    plain = {
        "id": "call-1",
        "model": "gpt-4o",
        "provider": "openai",
        "input_tokens": 1200,
        "cached_input_tokens": 200,
        "output_tokens": 300,
        "ts": "2026-11-20T10:00:00Z",
        "feature": "summarize",
        "user": "u1",
    }
    otel = {
        "start_time_unix_nano": 1_763_632_800_000_000_000,
        "end_time_unix_nano": 1_763_632_801_500_000_000,
        "attributes": {
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.provider.name": "openai",
            "gen_ai.usage.input_tokens": 500,
            "gen_ai.usage.cache_read.input_tokens": 100,
            "gen_ai.usage.output_tokens": 50,
            "apex.feature": "classify",
        },
    }
    bad = {**plain, "id": "call-2", "input_tokens": -1}
    response = function("usage_ingest").post("/", headers=user.headers, json=[plain, bad, otel])
    assert response.status_code == 202, response.get_data(as_text=True)
    body = response.get_json()
    assert body["accepted"] == 2
    [rejected] = body["rejected"]
    assert rejected["index"] == 1
    assert "input_tokens" in rejected["error"]
    [message] = topics["apex-usage"].pull(1)
    assert message.attributes["kind"] == "usage_batch"
    aggregator = function("usage_aggregator")
    for _ in range(2):  # a duplicate delivery counts once
        assert aggregator.post("/", json=envelope(message)).status_code == 204
    catalogue = FirestoreUsageStore(firestore_client).catalogue(user.workspace)
    assert catalogue.records == 2
    assert sorted(catalogue.models) == ["gpt-4o", "gpt-4o-mini"]
    rows = FirestoreUsageStore(firestore_client).daily(user.workspace, "2025-11-20", "2026-11-20")
    assert sum(r.cached_input_tokens for r in rows) == 300


def test_ingest_ndjson_publishes_each_line_with_a_stable_id_for_the_callers_workspace(
    function: Fn, user: User, topics: dict[str, Captured]
) -> None:
    lines: list[dict[str, Any]] = [
        {
            "model": "gpt-4o",
            "input_tokens": 10 + i,
            "output_tokens": 5,
            "ts": f"2026-11-20T10:0{i}:00Z",
            "feature": f"f{i}",
        }
        for i in range(3)
    ]
    lines.append({**lines[0], "id": "call-7", "model": "gpt-4o-mini", "provider": "openai"})
    ndjson = "\n".join(json.dumps(line) for line in lines) + "\n\n"  # blank lines skipped
    ingest = function("usage_ingest")

    def publish(**body: Any) -> dict[str, Any]:
        """Ingest ``body``; the one usage batch it published, checked against its envelope."""
        response = ingest.post("/", headers=user.headers, **body)
        assert response.status_code == 202, response.get_data(as_text=True)
        assert response.get_json() == {"accepted": 4, "rejected": []}
        [message] = topics["apex-usage"].pull(1)
        batch: dict[str, Any] = json.loads(message.data)
        assert dict(message.attributes) == {
            "kind": "usage_batch",
            "batch_id": batch["batch_id"],
            "workspace_id": user.workspace,
        }
        assert batch["kind"] == "usage_batch"
        assert (batch["workspace_id"], batch["uid"]) == (user.workspace, user.signed_in.uid)
        return batch

    first = publish(data=ndjson, content_type="application/x-ndjson")
    records = first["records"]
    # Every line, in order, with what it said.
    assert [
        (r["model"], r["provider"], r["input_tokens"], r["output_tokens"], r["feature"])
        for r in records
    ] == [
        ("gpt-4o", None, 10, 5, "f0"),
        ("gpt-4o", None, 11, 5, "f1"),
        ("gpt-4o", None, 12, 5, "f2"),
        ("gpt-4o-mini", "openai", 10, 5, "f0"),
    ]
    assert [r["ts"] for r in records] == [line["ts"] for line in lines]
    # The id a line gives is kept; the others are the hash of their content.
    ids = [r["record_id"] for r in records]
    assert ids[3] == "call-7"
    assert all(re.fullmatch(r"[0-9a-f]{64}", i) for i in ids[:3]), ids
    assert len(set(ids)) == 4
    # Stable: the same lines again, or as a JSON array, are the same records under the
    # same ids (so the aggregator counts them once), in a batch of their own.
    again = publish(data=ndjson, content_type="application/x-ndjson")
    as_array = publish(json=lines)
    assert again["records"] == as_array["records"] == records
    assert len({first["batch_id"], again["batch_id"], as_array["batch_id"]}) == 3


def test_idempotency_key_replays_the_first_response(
    function: Fn, user: User, topics: dict[str, Captured]
) -> None:
    client = function("agents_execute")
    headers = {**user.headers, "Idempotency-Key": "k-1"}
    first = client.post("/", headers=headers, json={"message": "hello", "wait": False})
    again = client.post("/", headers=headers, json={"message": "hello", "wait": False})
    assert first.status_code == again.status_code == 202
    assert again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    topics["apex-triage"].pull(1)
    assert topics["apex-triage"].empty(), "the replay started a second run"
    other = client.post("/", headers=headers, json={"message": "another", "wait": False})
    assert other.status_code == 409
    assert other.get_json()["error"]["code"] == "conflict"
