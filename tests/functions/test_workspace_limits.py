"""Per-workspace rate limits beside the per-user ones (DESIGN §2, §9): every call in a
workspace counts against it — each member's and each API key's — configurable, 429 with
`Retry-After` past it; and the CORS preflight allows what teams need."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from flask.testing import FlaskClient

from devstack.auth_emulator import AuthEmulator, SignedIn
from tests.support.functions import Captured
from tests.support.membership import make_team
from tests.support.ratelimit import seconds_left_in_window, start_within_one_window

Fn = Callable[[str], FlaskClient]


def test_members_and_keys_share_their_workspace_limit(
    function: Fn,
    auth_emulator: AuthEmulator,
    sign_up: Callable[..., SignedIn],
    topics: dict[str, Captured],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api = function("workspaces")
    team = make_team(api, auth_emulator, {"owner": sign_up(), "member": sign_up()})
    made = api.post(
        f"/{team.workspace_id}/keys",
        json={"name": "dashboards", "scope": "read"},
        headers={"Authorization": f"Bearer {team.users['owner'].id_token}"},
    )
    assert made.status_code == 201
    key = {"Authorization": f"Bearer {made.get_json()['secret']}"}
    monkeypatch.setenv("APEX_WORKSPACE_CALLS_PER_MINUTE", "4")
    data = function("agents_data")
    body = {"period": "last_7d"}
    start_within_one_window(need_s=20)
    served = [
        data.post("/", json=body, headers=team.headers("owner")).status_code,
        data.post("/", json=body, headers=team.headers("owner")).status_code,
        data.post("/", json=body, headers=team.headers("member")).status_code,
        data.post("/", json=body, headers=key).status_code,
    ]
    assert served == [200, 200, 200, 200]
    # Each is far below the per-user limit (120); together they reach the workspace's.
    for headers in (team.headers("member"), key):
        response = data.post("/", json=body, headers=headers)
        left = seconds_left_in_window()
        assert response.status_code == 429, response.get_json()
        error = response.get_json()["error"]
        assert error["code"] == "rate_limited"
        assert "more than 4 workspace calls a minute" in error["message"]
        assert math.floor(left) <= int(response.headers["Retry-After"]) <= math.ceil(left) + 1
    # Another workspace (the member's personal one) has its own count.
    personal = {"Authorization": f"Bearer {team.users['member'].id_token}"}
    assert data.post("/", json=body, headers=personal).status_code == 200


def test_cors_allows_the_workspace_header_and_the_team_methods(
    function: Fn, project_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APEX_CORS_ORIGINS", "https://app.example")
    preflight = function("workspaces").options("/", headers={"Origin": "https://app.example"})
    assert preflight.status_code == 204
    allowed = {h.strip() for h in preflight.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"Authorization", "Content-Type", "X-Apex-Workspace"} <= allowed
    methods = {m.strip() for m in preflight.headers["Access-Control-Allow-Methods"].split(",")}
    assert {"GET", "POST", "PUT", "PATCH", "DELETE"} <= methods


def test_ingest_says_retry_within_5_s_however_long_the_window_has_to_run(
    function: Fn,
    sign_up: Callable[..., SignedIn],
    topics: dict[str, Captured],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DESIGN §2: an ingest Retry-After is at most 5 s (exporters give up after about 10 s),
    while the message still says how long the window has to run."""
    headers = {"Authorization": f"Bearer {sign_up().id_token}"}
    record = {
        "model": "gpt-4o-mini",
        "input_tokens": 100,
        "output_tokens": 10,
        "ts": datetime.now(UTC).isoformat(),
    }
    ingest = function("usage_ingest")
    monkeypatch.setenv("APEX_WORKSPACE_CALLS_PER_MINUTE", "1")
    start_within_one_window(need_s=15)
    assert ingest.post("/", json=[record], headers=headers).status_code == 202
    refused = ingest.post("/", json=[record], headers=headers)
    assert seconds_left_in_window() > 10
    assert refused.status_code == 429, refused.get_json()
    message = refused.get_json()["error"]["message"]
    waited = re.search(r"retry in (\d+) s", message)
    assert waited, message
    assert int(waited.group(1)) > 5
    assert refused.headers["Retry-After"] == "5"
