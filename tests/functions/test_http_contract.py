"""The HTTP contract of DESIGN §2 on every public function: status codes and error bodies
for bad input, and none of them a 500."""

from __future__ import annotations

import base64
import json
import math
import time
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.support.functions import Captured, User
from tests.support.ratelimit import seconds_left_in_window, start_within_one_window

PUBLIC = [
    "agents_execute",
    "agents_triage",
    "agents_data",
    "agents_optimization",
    "usage_ingest",
    "runs_get",
    "threads_get",
]
GETS = {"runs_get", "threads_get"}
Fn = Callable[[str], FlaskClient]


def call(fn: Fn, target: str, user: User | None = None, **kw: Any):  # type: ignore[no-untyped-def]
    client = fn(target)
    headers = dict(user.headers) if user else {}
    headers.update(kw.pop("headers", {}))
    if target in GETS:
        return client.get("/", headers=headers, **kw)
    return client.post("/", headers=headers, **kw)


def expect_error(response, status: int, code: str) -> dict:  # type: ignore[no-untyped-def,type-arg]
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    return body["error"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("target", PUBLIC)
def test_no_token_is_401(function: Fn, project_id: str, target: str) -> None:
    response = call(function, target, json={})
    expect_error(response, 401, "unauthenticated")
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("target", PUBLIC)
def test_garbage_token_is_401(function: Fn, project_id: str, target: str) -> None:
    response = call(function, target, headers={"Authorization": "Bearer not.a.jwt"}, json={})
    expect_error(response, 401, "unauthenticated")


def test_expired_token_is_401(function: Fn, user: User) -> None:
    header, payload, _ = user.signed_in.id_token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * 4))
    claims["exp"] = int(time.time()) - 5
    stale = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    response = function("agents_triage").post(
        "/", headers={"Authorization": f"Bearer {header}.{stale}."}, json={"message": "hi"}
    )
    assert "expired" in expect_error(response, 401, "unauthenticated")["message"]


@pytest.mark.parametrize("target", sorted(set(PUBLIC) - GETS))
def test_wrong_content_type_is_415(function: Fn, user: User, target: str) -> None:
    response = call(function, target, user, data="message=hi", content_type="text/plain")
    expect_error(response, 415, "unsupported_media_type")


@pytest.mark.parametrize("target", sorted(set(PUBLIC) - GETS - {"usage_ingest"}))
def test_body_over_1_mib_is_413(function: Fn, user: User, target: str) -> None:
    body = json.dumps({"message": "x" * (1024 * 1024)})
    response = call(function, target, user, data=body, content_type="application/json")
    expect_error(response, 413, "payload_too_large")


def test_ingest_body_over_5_mib_is_413(function: Fn, user: User) -> None:
    body = "[" + ",".join(['{"model":"gpt-4o"}'] * 300_000) + "]"
    assert len(body) > 5 * 1024 * 1024
    response = call(function, "usage_ingest", user, data=body, content_type="application/json")
    expect_error(response, 413, "payload_too_large")


def test_ingest_more_than_5000_records_is_413(function: Fn, user: User) -> None:
    response = call(function, "usage_ingest", user, json=[{}] * 5001)
    expect_error(response, 413, "payload_too_large")


@pytest.mark.parametrize(
    ("target", "body", "field"),
    [
        ("agents_execute", {"message": ""}, "message"),
        ("agents_execute", {"message": "hi", "timeout_s": 61}, "timeout_s"),
        ("agents_execute", {"message": "hi", "surprise": 1}, "surprise"),
        ("agents_triage", {"message": "x" * 8001}, "message"),
        ("agents_data", {"period": "last_fortnight"}, "period"),
        ("agents_data", {"period": "last_7d", "group_by": ["colour"]}, "group_by"),
        ("agents_optimization", {"period": "last_7d", "min_monthly_savings_usd": -1}, "min_"),
        ("agents_optimization", {}, "period"),
    ],
)
def test_schema_violation_is_422_naming_the_field(
    function: Fn, user: User, target: str, body: dict[str, object], field: str
) -> None:
    response = call(function, target, user, json=body)
    assert field in expect_error(response, 422, "validation_failed")["message"]


def test_malformed_json_is_400(function: Fn, user: User) -> None:
    response = call(function, "agents_triage", user, data="{", content_type="application/json")
    expect_error(response, 400, "bad_request")


def test_wrong_method_is_405(function: Fn, user: User) -> None:
    response = function("agents_triage").get("/", headers=user.headers)
    expect_error(response, 405, "method_not_allowed")
    assert response.headers["Allow"] == "POST"
    response = function("runs_get").post("/", headers=user.headers, json={})
    expect_error(response, 405, "method_not_allowed")


def test_bad_query_is_422(function: Fn, user: User) -> None:
    response = function("runs_get").get("/?after_seq=-1&run_id=abc", headers=user.headers)
    assert "after_seq" in expect_error(response, 422, "validation_failed")["message"]
    response = function("runs_get").get("/", headers=user.headers)
    assert "run_id" in expect_error(response, 422, "validation_failed")["message"]


def test_another_users_run_and_thread_are_404(
    function: Fn, new_user: Callable[[], User], topics: dict[str, Captured]
) -> None:
    owner, other = new_user(), new_user()
    accepted = function("agents_execute").post(
        "/", headers=owner.headers, json={"message": "what did we spend?", "wait": False}
    )
    assert accepted.status_code == 202, accepted.get_data(as_text=True)
    run_id, thread_id = accepted.get_json()["run_id"], accepted.get_json()["thread_id"]
    assert function("runs_get").get(f"/?run_id={run_id}", headers=owner.headers).status_code == 200
    expect_error(
        function("runs_get").get(f"/?run_id={run_id}", headers=other.headers), 404, "not_found"
    )
    expect_error(
        function("threads_get").get(f"/?thread_id={thread_id}", headers=other.headers),
        404,
        "not_found",
    )
    # Posting into another user's thread is refused the same way.
    stolen = function("agents_execute").post(
        "/", headers=other.headers, json={"message": "hi", "thread_id": thread_id, "wait": False}
    )
    expect_error(stolen, 404, "not_found")
    assert function("threads_get").get("/", headers=other.headers).get_json() == {"threads": []}
    expect_error(function("runs_get").get("/?run_id=nope", headers=owner.headers), 404, "not_found")


def test_rate_limit_is_429_with_retry_after(
    function: Fn, user: User, new_user: Callable[[], User], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APEX_FUNCTION_CALLS_PER_MINUTE", "3")
    client = function("threads_get")
    start_within_one_window(need_s=20)
    # Up to the limit every call is served; the call past it, and the next, are refused
    # until the window ends, which Retry-After says.
    statuses = [client.get("/", headers=user.headers).status_code for _ in range(3)]
    assert statuses == [200, 200, 200]
    for _ in range(2):
        response = client.get("/", headers=user.headers)
        left = seconds_left_in_window()
        error = expect_error(response, 429, "rate_limited")
        assert "more than 3 function calls a minute" in error["message"]
        assert math.floor(left) <= int(response.headers["Retry-After"]) <= math.ceil(left) + 1
    # The limit is the user's own: another user is still served.
    assert client.get("/", headers=new_user().headers).status_code == 200


def test_cors_for_configured_origins_only(
    function: Fn, user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APEX_CORS_ORIGINS", "https://app.example")
    client = function("agents_triage")
    preflight = client.options("/", headers={"Origin": "https://app.example"})
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    other = client.options("/", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers
    response = client.post(
        "/", headers={**user.headers, "Origin": "https://app.example"}, json={"message": "hi"}
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example"
