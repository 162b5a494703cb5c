"""Role x function x expected status (DESIGN §9): every public function, and every path of
`workspaces`, called by an owner, an admin, a member and a viewer of one team workspace
and by an outsider, each with `X-Apex-Workspace` naming the team. Not a member: 404; a
role that lacks the action: 403. The table is the contract; the team is built the way
users build one (create, invite, accept)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import pytest
from flask.testing import FlaskClient

from devstack.auth_emulator import AuthEmulator, SignedIn
from shared.endpoints import ENDPOINTS
from tests.support.functions import Captured
from tests.support.membership import Team, bearer, make_team
from tests.support.otlp import chat, export, otlp_json

Who = str  # a role, or "outsider"
WHO: Final = ("owner", "admin", "member", "viewer", "outsider")


def _statuses(owner: int, admin: int, member: int, viewer: int, outsider: int) -> dict[Who, int]:
    return dict(zip(WHO, (owner, admin, member, viewer, outsider), strict=True))


EVERY_ROLE_OK: Final = {"agents_triage", "agents_data", "agents_optimization", "threads_get"}
RECORD: Final = {
    "model": "gpt-4o-mini",
    "provider": "openai",
    "input_tokens": 100,
    "output_tokens": 10,
    "ts": datetime.now(UTC).isoformat(),
    "feature": "roles",
}


@dataclass(frozen=True)
class Row:
    target: str
    method: str
    path: str  # `{ws}` is the team's id, `{viewer}` the viewer's uid
    body: Any
    expect: dict[Who, int]


ROWS: Final = [
    Row("agents_execute", "POST", "/", {"message": "what did we spend?", "wait": False},
        _statuses(202, 202, 202, 202, 404)),
    Row("agents_triage", "POST", "/", {"message": "what did we spend last week?"},
        _statuses(200, 200, 200, 200, 404)),
    Row("agents_data", "POST", "/", {"period": "last_7d"}, _statuses(200, 200, 200, 200, 404)),
    Row("agents_optimization", "POST", "/", {"period": "last_30d"},
        _statuses(200, 200, 200, 200, 404)),
    Row("usage_ingest", "POST", "/", [RECORD], _statuses(202, 202, 202, 403, 404)),
    Row("otlp_ingest", "POST", "/v1/traces", otlp_json(export([chat()])),
        _statuses(200, 200, 200, 403, 404)),
    Row("threads_get", "GET", "/", None, _statuses(200, 200, 200, 200, 404)),
    # Runs stay per user inside a workspace: the owner's run is the owner's alone.
    Row("runs_get", "GET", "/?run_id={owner_run}", None, _statuses(200, 404, 404, 404, 404)),
    Row("workspaces", "GET", "/{ws}/members", None, _statuses(200, 200, 200, 200, 404)),
    Row("workspaces", "GET", "/{ws}/invites", None, _statuses(200, 200, 403, 403, 404)),
    Row("workspaces", "POST", "/{ws}/invites", {"email": "new@apex.test", "role": "viewer"},
        _statuses(201, 201, 403, 403, 404)),
    Row("workspaces", "PATCH", "/{ws}/members/{viewer}", {"role": "viewer"},
        _statuses(200, 200, 403, 403, 404)),
    Row("workspaces", "GET", "/{ws}/keys", None, _statuses(200, 200, 403, 403, 404)),
    Row("workspaces", "POST", "/{ws}/keys", {"name": "ci", "scope": "read"},
        _statuses(201, 201, 403, 403, 404)),
    Row("workspaces", "GET", "/{ws}/audit", None, _statuses(200, 200, 403, 403, 404)),
    Row("workspaces", "GET", "/{ws}/prices", None, _statuses(200, 200, 200, 200, 404)),
    Row("workspaces", "PUT", "/{ws}/prices", [{"provider": "openai", "model": "gpt-4o",
        "discount_pct": 10}], _statuses(200, 200, 403, 403, 404)),
    Row("workspaces", "GET", "/{ws}/settings", None, _statuses(200, 200, 200, 200, 404)),
    Row("workspaces", "PUT", "/{ws}/settings", {"allowed_models": None},
        _statuses(200, 200, 403, 403, 404)),
]  # fmt: skip


def test_the_table_covers_every_public_function() -> None:
    assert {row.target for row in ROWS} == set(ENDPOINTS)


@dataclass(frozen=True)
class World:
    team: Team
    outsider: SignedIn
    owner_run: str


@pytest.fixture
def world(
    function: Callable[[str], FlaskClient],
    auth_emulator: AuthEmulator,
    sign_up: Callable[..., SignedIn],
    topics: dict[str, Captured],
) -> World:
    users = {role: sign_up() for role in ("owner", "admin", "member", "viewer")}
    team = make_team(function("workspaces"), auth_emulator, users)  # type: ignore[arg-type]
    run = function("agents_execute").post(
        "/", json={"message": "hello", "wait": False}, headers=team.headers("owner")
    )
    assert run.status_code == 202, run.get_json()
    return World(team, sign_up(), run.get_json()["run_id"])


def _call(fn: Callable[[str], FlaskClient], world: World, row: Row, who: Who) -> Any:
    user = world.outsider if who == "outsider" else world.team.users[who]  # type: ignore[index]
    path = row.path.format(
        ws=world.team.workspace_id,
        viewer=world.team.users["viewer"].uid,
        owner_run=world.owner_run,
    )
    return fn(row.target).open(
        path, method=row.method, json=row.body, headers=bearer(user, world.team.workspace_id)
    )


def _error(body: Any) -> Any:
    if "error" in body:
        return body["error"]
    # otlp_ingest answers with a google.rpc.Status (docs/otlp.md): ErrorInfo names the code.
    info = next(d for d in body["details"] if d["@type"].endswith("google.rpc.ErrorInfo"))
    return {"code": info["reason"], "message": body["message"]}


def test_each_role_gets_exactly_what_its_role_allows(
    function: Callable[[str], FlaskClient], world: World
) -> None:
    codes = {403: "forbidden", 404: "not_found"}
    mismatches = {}
    for row in ROWS:
        for who in WHO:
            response = _call(function, world, row, who)
            wanted = row.expect[who]
            error = _error(response.get_json()) if response.status_code >= 400 else None
            if response.status_code != wanted or (
                error is not None and error["code"] != codes[wanted]
            ):
                mismatches[(f"{row.method} {row.target}{row.path}", who)] = (
                    response.status_code,
                    wanted,
                    error,
                )
    assert not mismatches, f"(got, wanted, error): {mismatches}"


def test_the_old_workspace_claim_grants_nothing(
    function: Callable[[str], FlaskClient],
    world: World,
    sign_up: Callable[..., SignedIn],
) -> None:
    # The retired rule: a `workspace` custom claim made its holder act in that workspace.
    claimant = sign_up(claims={"workspace": world.team.workspace_id})
    named = function("agents_data").post(
        "/", json={"period": "last_7d"}, headers=bearer(claimant, world.team.workspace_id)
    )
    assert named.status_code == 404, named.get_json()
    ingest = function("usage_ingest").post("/", json=[RECORD], headers=bearer(claimant))
    assert ingest.status_code == 202
    # Without the header they act in their personal workspace (id = uid), not the claim's.
    threads = function("threads_get").get("/", headers=bearer(claimant))
    assert threads.status_code == 200
    mine = function("workspaces").get("/", headers=bearer(claimant)).get_json()["workspaces"]
    assert [(w["workspace_id"], w["role"]) for w in mine] == [(claimant.uid, "owner")]
