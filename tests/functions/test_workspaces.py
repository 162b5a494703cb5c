"""The `workspaces` function in-process (DESIGN §9), with real users of the Auth emulator:
every operation, its bad input, and each escalation the issue lists refused with its code
while nothing changes (the state re-read from Firestore after each attempt); the races
through the function end consistently with a complete audit log.

(The store tests, tests/integration/test_workspace_store.py, force the races' interleaving
with a barrier; here the calls race as they come and the outcome must hold either way.)
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from google.cloud import firestore
from werkzeug.test import TestResponse

from devstack.auth_emulator import AuthEmulator, SignedIn
from shared.store.workspaces import FirestoreWorkspaceStore
from shared.workspaces import service
from tests.support.functions import Captured
from tests.support.membership import bearer, verified

Fn = Callable[[str], FlaskClient]
RECORD = {
    "model": "gpt-4o-mini",
    "provider": "openai",
    "input_tokens": 100,
    "output_tokens": 10,
    "feature": "ci",
}


@pytest.fixture
def api(function: Fn) -> FlaskClient:
    return function("workspaces")


@pytest.fixture
def store(firestore_client: firestore.Client) -> FirestoreWorkspaceStore:
    return FirestoreWorkspaceStore(firestore_client)


@dataclass(frozen=True)
class Acme:
    """A team built through the function: an owner, an admin, a member and a viewer, each
    signed in with a verified email."""

    ws: str
    owner: SignedIn
    admin: SignedIn
    member: SignedIn
    viewer: SignedIn


def error_of(response: TestResponse) -> str:
    body: dict[str, Any] = response.get_json()
    return str(body["error"]["code"])


def create(api: FlaskClient, user: SignedIn, name: str = "Acme") -> str:
    response = api.post("/", json={"name": name}, headers=bearer(user))
    assert response.status_code == 201, response.get_json()
    return str(response.get_json()["workspace_id"])


def invite(api: FlaskClient, by: SignedIn, ws: str, email: str, role: str) -> str:
    response = api.post(f"/{ws}/invites", json={"email": email, "role": role}, headers=bearer(by))
    assert response.status_code == 201, response.get_json()
    return str(response.get_json()["invite_id"])


def accept(api: FlaskClient, user: SignedIn, invite_id: str) -> TestResponse:
    return api.post(f"/invites/{invite_id}/accept", headers=bearer(user))


@pytest.fixture
def acme(api: FlaskClient, auth_emulator: AuthEmulator, sign_up: Callable[..., SignedIn]) -> Acme:
    owner = verified(auth_emulator, sign_up())
    ws = create(api, owner)
    joined = {}
    for role in ("admin", "member", "viewer"):
        user = verified(auth_emulator, sign_up())
        response = accept(api, user, invite(api, owner, ws, user.email, role))
        assert response.status_code == 200, response.get_json()
        joined[role] = user
    return Acme(ws, owner, joined["admin"], joined["member"], joined["viewer"])


@dataclass(frozen=True)
class State:
    roles: dict[str, str]
    invites: list[str]
    keys: list[tuple[str, Any]]
    audit_seq: int
    mirrors: dict[str, list[tuple[str, str]]]


def state(store: FirestoreWorkspaceStore, ws: str, *users: SignedIn) -> State:
    """Everything an operation on ``ws`` could change, read from Firestore."""
    workspace = store.workspace(ws)
    assert workspace is not None
    entries = store.audit(ws, 200, None)
    assert [e.seq for e in entries] == list(range(workspace.audit_seq, 0, -1))
    return State(
        roles={m.uid: m.role for m in store.members(ws)},
        invites=sorted(i.invite_id for i in store.pending_invites(ws, datetime.now(UTC))),
        keys=sorted((k.key_id, k.revoked_at) for k in store.api_keys(ws, 100)),
        audit_seq=workspace.audit_seq,
        mirrors={
            u.uid: [(w.workspace_id, w.role) for w in store.workspaces_of(u.uid)] for u in users
        },
    )


def seen(api: FlaskClient, *users: SignedIn) -> None:
    """Each user's first call, which makes their personal workspace (DESIGN §9): before a
    snapshot of what a later call must not change."""
    for user in users:
        assert api.get("/", headers=bearer(user)).status_code == 200


def actions(store: FirestoreWorkspaceStore, ws: str) -> list[str]:
    return [e.action for e in reversed(store.audit(ws, 200, None))]


# --- workspaces ------------------------------------------------------------------------------


def test_a_user_creates_a_team_and_lists_their_workspaces(
    api: FlaskClient, sign_up: Callable[..., SignedIn]
) -> None:
    user = sign_up()
    response = api.post("/", json={"name": "  Platform team "}, headers=bearer(user))
    assert response.status_code == 201
    made = response.get_json()
    assert set(made) == {"workspace_id", "name", "role"}
    assert (made["name"], made["role"]) == ("Platform team", "owner")
    assert made["workspace_id"] != user.uid
    listed = api.get("/", headers=bearer(user))
    assert listed.status_code == 200
    assert sorted(listed.get_json()["workspaces"], key=lambda w: w["name"]) == [
        {"workspace_id": user.uid, "name": "Personal", "role": "owner"},
        {"workspace_id": made["workspace_id"], "name": "Platform team", "role": "owner"},
    ]
    # Another user does not see it, and cannot read it.
    other = sign_up()
    assert [
        w["workspace_id"] for w in api.get("/", headers=bearer(other)).get_json()["workspaces"]
    ] == [other.uid]
    hidden = api.get(f"/{made['workspace_id']}/members", headers=bearer(other))
    assert hidden.status_code == 404
    assert error_of(hidden) == "not_found"


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({}, 422, "name"),
        ({"name": ""}, 422, "name"),
        ({"name": "   "}, 422, "name"),
        ({"name": "x" * 101}, 422, "name"),
        ({"name": "a\nb"}, 422, "name"),
        ({"name": "ok", "owner": "someone-else"}, 422, "owner"),
        ({"name": 7}, 422, "name"),
    ],
)
def test_a_bad_workspace_is_refused_naming_the_field(
    api: FlaskClient, sign_up: Callable[..., SignedIn], body: Any, status: int, field: str
) -> None:
    user = sign_up()
    response = api.post("/", json=body, headers=bearer(user))
    assert response.status_code == status
    assert error_of(response) == "validation_failed"
    assert field in response.get_json()["error"]["message"]
    assert [
        w["workspace_id"] for w in api.get("/", headers=bearer(user)).get_json()["workspaces"]
    ] == [user.uid]


def test_a_body_that_is_not_json_is_a_bad_request(
    api: FlaskClient, sign_up: Callable[..., SignedIn]
) -> None:
    response = api.post(
        "/", data=b"{name", headers={**bearer(sign_up()), "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert error_of(response) == "bad_request"


# --- routing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status", "allow"),
    [
        ("GET", "/{ws}/nothing", 404, None),
        ("GET", "/{ws}/members/x/y", 404, None),
        ("GET", "/invites/x", 404, None),
        ("GET", "/{ws}/members/bad%20id", 404, None),
        ("DELETE", "/{ws}/members", 405, "GET"),
        ("PATCH", "/", 405, "GET, POST"),
        ("GET", "/invites/abc/accept", 405, "POST"),
        ("POST", "/{ws}/audit", 405, "GET"),
        ("PATCH", "/{ws}/keys/abc", 405, "DELETE"),
        ("PUT", "/", 405, "GET, POST"),
        ("DELETE", "/{ws}/prices", 405, "GET, PUT"),
        ("TRACE", "/", 405, "DELETE, GET, PATCH, POST, PUT"),
    ],
)
def test_unknown_paths_are_404_and_wrong_methods_405_with_allow(
    api: FlaskClient,
    sign_up: Callable[..., SignedIn],
    method: str,
    path: str,
    status: int,
    allow: str | None,
) -> None:
    user = sign_up()
    response = api.open(
        path.format(ws=user.uid), method=method, json={"role": "viewer"}, headers=bearer(user)
    )
    assert response.status_code == status, response.get_json()
    assert response.headers.get("Allow") == allow


def test_an_api_key_is_no_credential_here(api: FlaskClient, acme: Acme) -> None:
    made = api.post(
        f"/{acme.ws}/keys", json={"name": "ci", "scope": "read"}, headers=bearer(acme.owner)
    )
    assert made.status_code == 201
    key = made.get_json()["secret"]
    for path in ("/", f"/{acme.ws}/members", f"/{acme.ws}/keys"):
        refused = api.get(path, headers={"Authorization": f"Bearer {key}"})
        assert refused.status_code == 401, path
        assert key not in refused.get_data(as_text=True)


# --- members, invites, roles --------------------------------------------------------------------


def test_members_are_listed_to_every_member(api: FlaskClient, acme: Acme) -> None:
    for user in (acme.owner, acme.admin, acme.member, acme.viewer):
        response = api.get(f"/{acme.ws}/members", headers=bearer(user))
        assert response.status_code == 200
        members = response.get_json()["members"]
        assert {m["uid"]: m["role"] for m in members} == {
            acme.owner.uid: "owner",
            acme.admin.uid: "admin",
            acme.member.uid: "member",
            acme.viewer.uid: "viewer",
        }
        for m in members:
            assert set(m) == {"uid", "email", "role", "added_by", "added_at"}
            assert m["added_at"].endswith("Z")
        by_uid = {m["uid"]: m for m in members}
        assert by_uid[acme.viewer.uid]["email"] == acme.viewer.email
        assert by_uid[acme.viewer.uid]["added_by"] == acme.owner.uid


def test_an_invite_is_accepted_by_its_verified_address_in_any_case(
    api: FlaskClient,
    acme: Acme,
    auth_emulator: AuthEmulator,
    sign_up: Callable[..., SignedIn],
    store: FirestoreWorkspaceStore,
) -> None:
    newcomer = sign_up()
    response = api.post(
        f"/{acme.ws}/invites",
        json={"email": newcomer.email.upper(), "role": "admin"},
        headers=bearer(acme.admin),
    )
    assert response.status_code == 201
    made = response.get_json()
    assert set(made) == {"invite_id", "email", "role", "expires_at"}
    assert (made["email"], made["role"]) == (newcomer.email, "admin")
    expires = datetime.fromisoformat(made["expires_at"])
    assert (
        timedelta(days=7) - timedelta(minutes=1) < expires - datetime.now(UTC) <= timedelta(days=7)
    )
    pending = api.get(f"/{acme.ws}/invites", headers=bearer(acme.owner)).get_json()["invites"]
    assert [(i["invite_id"], i["invited_by"]) for i in pending] == [
        (made["invite_id"], acme.admin.uid)
    ]
    # Before it is accepted the newcomer sees nothing of the workspace.
    assert api.get(f"/{acme.ws}/members", headers=bearer(newcomer)).status_code == 404
    joined = accept(api, verified(auth_emulator, newcomer), made["invite_id"])
    assert joined.status_code == 200
    assert joined.get_json() == {"workspace_id": acme.ws, "name": "Acme", "role": "admin"}
    assert api.get(f"/{acme.ws}/members", headers=bearer(newcomer)).status_code == 200
    assert api.get(f"/{acme.ws}/invites", headers=bearer(acme.owner)).get_json()["invites"] == []
    mine = api.get("/", headers=bearer(newcomer)).get_json()["workspaces"]
    assert {"workspace_id": acme.ws, "name": "Acme", "role": "admin"} in mine
    assert actions(store, acme.ws)[-2:] == ["invite.created", "invite.accepted"]


def test_an_invite_can_be_withdrawn(
    api: FlaskClient,
    acme: Acme,
    auth_emulator: AuthEmulator,
    sign_up: Callable[..., SignedIn],
) -> None:
    newcomer = verified(auth_emulator, sign_up())
    invite_id = invite(api, acme.admin, acme.ws, newcomer.email, "member")
    assert (
        api.delete(f"/{acme.ws}/invites/{invite_id}", headers=bearer(acme.member)).status_code
        == 403
    )
    assert (
        api.delete(f"/{acme.ws}/invites/{invite_id}", headers=bearer(acme.admin)).status_code == 204
    )
    assert (
        api.delete(f"/{acme.ws}/invites/{invite_id}", headers=bearer(acme.admin)).status_code == 404
    )
    refused = accept(api, newcomer, invite_id)
    assert refused.status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-email", "role": "viewer"}, "email"),
        ({"email": "a@" + "b" * 250 + ".test", "role": "viewer"}, "email"),
        ({"email": "x@apex.test", "role": "superuser"}, "role"),
        ({"email": "x@apex.test"}, "role"),
        (
            {"email": "x@apex.test", "role": "viewer", "expires_at": "2099-01-01T00:00:00Z"},
            "expires_at",
        ),
    ],
)
def test_a_bad_invite_is_refused_naming_the_field(
    api: FlaskClient, acme: Acme, body: Any, field: str
) -> None:
    response = api.post(f"/{acme.ws}/invites", json=body, headers=bearer(acme.owner))
    assert response.status_code == 422
    assert field in response.get_json()["error"]["message"]


def test_a_change_takes_effect_at_once_in_the_process_that_made_it(
    function: Fn, api: FlaskClient, acme: Acme
) -> None:
    # Each call below first caches the caller's role in the team (DESIGN §9: <= 10 s); the
    # change drops this process's entry, so the next call sees it at once.
    # (The ingested record is refused, so nothing is published: no topic is needed.)
    ingest, data = function("usage_ingest"), function("agents_data")
    member = bearer(acme.member, acme.ws)
    assert ingest.post("/", json=[{"bad": 1}], headers=member).status_code == 202
    demoted = api.patch(
        f"/{acme.ws}/members/{acme.member.uid}", json={"role": "viewer"}, headers=bearer(acme.admin)
    )
    assert demoted.status_code == 200
    assert ingest.post("/", json=[{"bad": 1}], headers=member).status_code == 403
    assert data.post("/", json={"period": "last_7d"}, headers=member).status_code == 200
    removed = api.delete(f"/{acme.ws}/members/{acme.member.uid}", headers=bearer(acme.admin))
    assert removed.status_code == 204
    assert data.post("/", json={"period": "last_7d"}, headers=member).status_code == 404


def test_roles_change_and_members_leave_or_are_removed(
    api: FlaskClient, acme: Acme, store: FirestoreWorkspaceStore
) -> None:
    promoted = api.patch(
        f"/{acme.ws}/members/{acme.viewer.uid}", json={"role": "member"}, headers=bearer(acme.admin)
    )
    assert promoted.status_code == 200
    assert promoted.get_json()["role"] == "member"
    assert promoted.get_json()["uid"] == acme.viewer.uid
    # The viewer, now a member, may ingest in the team at once (this process forgot the cache).
    assert store.member(acme.ws, acme.viewer.uid).role == "member"  # type: ignore[union-attr]
    made_owner = api.patch(
        f"/{acme.ws}/members/{acme.admin.uid}", json={"role": "owner"}, headers=bearer(acme.owner)
    )
    assert made_owner.status_code == 200
    left = api.delete(f"/{acme.ws}/members/{acme.member.uid}", headers=bearer(acme.member))
    assert left.status_code == 204
    assert left.get_data() == b""
    removed = api.delete(f"/{acme.ws}/members/{acme.viewer.uid}", headers=bearer(acme.admin))
    assert removed.status_code == 204
    # The removed see nothing at once (the change forgot this process's cached answer).
    for gone in (acme.member, acme.viewer):
        assert api.get(f"/{acme.ws}/members", headers=bearer(gone)).status_code == 404
        assert acme.ws not in [
            w["workspace_id"] for w in api.get("/", headers=bearer(gone)).get_json()["workspaces"]
        ]
    # With two owners, the first may leave.
    assert (
        api.delete(f"/{acme.ws}/members/{acme.owner.uid}", headers=bearer(acme.owner)).status_code
        == 204
    )
    assert {m.uid: m.role for m in store.members(acme.ws)} == {acme.admin.uid: "owner"}
    assert actions(store, acme.ws)[-5:] == [
        "member.role_changed",
        "member.role_changed",
        "member.left",
        "member.removed",
        "member.left",
    ]


# --- escalation: refused with its code, nothing changed ------------------------------------------

INVITE_OWNER = {"email": "x@apex.test", "role": "owner"}
INVITE_ADMIN = {"email": "x@apex.test", "role": "admin"}
INVITE_VIEWER = {"email": "x@apex.test", "role": "viewer"}


@pytest.mark.parametrize(
    ("who", "method", "path", "body", "status", "code"),
    [
        # A member inviting an admin (or anyone), a viewer changing roles.
        ("member", "POST", "/{ws}/invites", INVITE_ADMIN, 403, "forbidden"),
        ("member", "POST", "/{ws}/invites", INVITE_VIEWER, 403, "forbidden"),
        ("viewer", "PATCH", "/{ws}/members/{viewer}", {"role": "owner"}, 403, "forbidden"),
        ("member", "DELETE", "/{ws}/members/{viewer}", None, 403, "forbidden"),
        # An admin inviting an owner, promoting to owner (anyone, or themselves), demoting
        # or removing an owner.
        ("admin", "POST", "/{ws}/invites", INVITE_OWNER, 403, "forbidden"),
        ("admin", "PATCH", "/{ws}/members/{member}", {"role": "owner"}, 403, "forbidden"),
        ("admin", "PATCH", "/{ws}/members/{admin}", {"role": "owner"}, 403, "forbidden"),
        ("admin", "PATCH", "/{ws}/members/{owner}", {"role": "member"}, 403, "forbidden"),
        ("admin", "DELETE", "/{ws}/members/{owner}", None, 403, "forbidden"),
        # The last owner: demoted or removed (leaving).
        ("owner", "PATCH", "/{ws}/members/{owner}", {"role": "admin"}, 409, "conflict"),
        ("owner", "DELETE", "/{ws}/members/{owner}", None, 409, "conflict"),
        # Keys and the audit log are for admins.
        ("member", "POST", "/{ws}/keys", {"name": "k", "scope": "ingest"}, 403, "forbidden"),
        ("member", "GET", "/{ws}/keys", None, 403, "forbidden"),
        ("viewer", "GET", "/{ws}/audit", None, 403, "forbidden"),
        ("member", "GET", "/{ws}/invites", None, 403, "forbidden"),
        # An outsider learns nothing, whatever they try.
        ("outsider", "GET", "/{ws}/members", None, 404, "not_found"),
        ("outsider", "POST", "/{ws}/invites", INVITE_VIEWER, 404, "not_found"),
        ("outsider", "PATCH", "/{ws}/members/{outsider}", {"role": "owner"}, 404, "not_found"),
        ("outsider", "DELETE", "/{ws}/members/{owner}", None, 404, "not_found"),
        ("outsider", "POST", "/{ws}/keys", {"name": "k", "scope": "read"}, 404, "not_found"),
        ("outsider", "GET", "/{ws}/audit", None, 404, "not_found"),
        # No such member.
        ("owner", "PATCH", "/{ws}/members/nobody", {"role": "viewer"}, 404, "not_found"),
    ],
)  # fmt: skip
def test_each_escalation_is_refused_with_its_code_and_changes_nothing(
    api: FlaskClient,
    acme: Acme,
    store: FirestoreWorkspaceStore,
    sign_up: Callable[..., SignedIn],
    who: str,
    method: str,
    path: str,
    body: Any,
    status: int,
    code: str,
) -> None:
    outsider = sign_up()
    seen(api, outsider)
    users = {
        "owner": acme.owner,
        "admin": acme.admin,
        "member": acme.member,
        "viewer": acme.viewer,
        "outsider": outsider,
    }
    everyone = list(users.values())
    before = state(store, acme.ws, *everyone)
    target = path.format(ws=acme.ws, **{k: u.uid for k, u in users.items()})
    response = api.open(target, method=method, json=body, headers=bearer(users[who]))
    assert (response.status_code, error_of(response)) == (status, code), response.get_json()
    assert state(store, acme.ws, *everyone) == before


def test_an_invite_for_another_address_or_an_unverified_one_is_refused(
    api: FlaskClient,
    acme: Acme,
    auth_emulator: AuthEmulator,
    sign_up: Callable[..., SignedIn],
    store: FirestoreWorkspaceStore,
) -> None:
    addressee = sign_up()
    mallory = verified(auth_emulator, sign_up())
    invite_id = invite(api, acme.owner, acme.ws, addressee.email, "admin")
    seen(api, addressee, mallory)
    before = state(store, acme.ws, addressee, mallory)
    stolen = accept(api, mallory, invite_id)
    assert (stolen.status_code, error_of(stolen)) == (403, "forbidden")
    unverified = accept(api, addressee, invite_id)  # signed up, email not verified
    assert (unverified.status_code, error_of(unverified)) == (403, "forbidden")
    assert state(store, acme.ws, addressee, mallory) == before
    # Still pending: the addressee, once verified, joins.
    assert accept(api, verified(auth_emulator, addressee), invite_id).status_code == 200


def test_a_replayed_invite_is_a_conflict(
    api: FlaskClient,
    acme: Acme,
    auth_emulator: AuthEmulator,
    sign_up: Callable[..., SignedIn],
    store: FirestoreWorkspaceStore,
) -> None:
    user = verified(auth_emulator, sign_up())
    invite_id = invite(api, acme.admin, acme.ws, user.email, "member")
    assert accept(api, user, invite_id).status_code == 200
    before = state(store, acme.ws, user)
    replay = accept(api, user, invite_id)
    assert (replay.status_code, error_of(replay)) == (409, "conflict")
    assert state(store, acme.ws, user) == before
    # Removed since, the spent invite does not bring them back.
    assert (
        api.delete(f"/{acme.ws}/members/{user.uid}", headers=bearer(acme.admin)).status_code == 204
    )
    removed = state(store, acme.ws, user)
    again = accept(api, user, invite_id)
    assert (again.status_code, error_of(again)) == (409, "conflict")
    assert state(store, acme.ws, user) == removed


def test_an_invite_after_its_expiry_is_gone(
    api: FlaskClient,
    acme: Acme,
    auth_emulator: AuthEmulator,
    sign_up: Callable[..., SignedIn],
    store: FirestoreWorkspaceStore,
) -> None:
    user = verified(auth_emulator, sign_up())
    seen(api, user)
    # Made eight days ago, through the store: its seven days are over.
    old = service.invite(
        store, acme.ws, acme.owner.uid, user.email, "admin", datetime.now(UTC) - timedelta(days=8)
    )
    before = state(store, acme.ws, user)
    response = accept(api, user, old.invite_id)
    assert (response.status_code, error_of(response)) == (410, "gone")
    assert state(store, acme.ws, user) == before
    assert api.get(f"/{acme.ws}/members", headers=bearer(user)).status_code == 404


def test_an_unknown_invite_is_not_found(
    api: FlaskClient, acme: Acme, auth_emulator: AuthEmulator, sign_up: Callable[..., SignedIn]
) -> None:
    response = accept(api, verified(auth_emulator, sign_up()), "0" * 32)
    assert (response.status_code, error_of(response)) == (404, "not_found")


def test_a_personal_workspaces_owner_stays(
    api: FlaskClient, sign_up: Callable[..., SignedIn], store: FirestoreWorkspaceStore
) -> None:
    user = sign_up()
    assert api.get("/", headers=bearer(user)).status_code == 200  # made on first use
    before = state(store, user.uid, user)
    for method, body in (("PATCH", {"role": "admin"}), ("DELETE", None)):
        response = api.open(
            f"/{user.uid}/members/{user.uid}", method=method, json=body, headers=bearer(user)
        )
        assert (response.status_code, error_of(response)) == (409, "conflict")
    assert state(store, user.uid, user) == before


# --- API keys ----------------------------------------------------------------------------------


def test_a_key_is_shown_once_listed_without_its_secret_and_revoked_at_once(
    function: Fn,
    api: FlaskClient,
    acme: Acme,
    topics: dict[str, Captured],
    firestore_client: firestore.Client,
) -> None:
    expires = (datetime.now(UTC) + timedelta(days=90)).replace(microsecond=0)
    made = api.post(
        f"/{acme.ws}/keys",
        json={"name": "CI ingest", "scope": "ingest", "expires_at": expires.isoformat()},
        headers=bearer(acme.admin),
    )
    assert made.status_code == 201
    key = made.get_json()
    assert set(key) == {"key_id", "name", "scope", "prefix", "secret", "created_at", "expires_at"}
    assert key["secret"].startswith(f"apx_{key['key_id']}_")
    assert key["secret"].startswith(key["prefix"])
    assert datetime.fromisoformat(key["expires_at"]) == expires
    # The key sends usage for its workspace.
    ingest = function("usage_ingest")
    sent = ingest.post(
        "/",
        json=[{**RECORD, "ts": datetime.now(UTC).isoformat()}],
        headers={"Authorization": f"Bearer {key['secret']}"},
    )
    assert sent.status_code == 202, sent.get_json()
    (message,) = topics["apex-usage"].pull(1)
    assert json.loads(message.data)["workspace_id"] == acme.ws
    # Listed, never with the secret or its hash; nor is the secret stored anywhere.
    listing = api.get(f"/{acme.ws}/keys", headers=bearer(acme.owner))
    assert listing.status_code == 200
    (listed,) = listing.get_json()["keys"]
    assert set(listed) == {
        "key_id", "name", "scope", "prefix", "created_by", "created_at", "expires_at",
        "revoked_at", "last_used_at",
    }  # fmt: skip
    assert (listed["key_id"], listed["created_by"], listed["revoked_at"]) == (
        key["key_id"],
        acme.admin.uid,
        None,
    )
    assert listed["last_used_at"] is not None
    secret = key["secret"].split("_", 2)[2]
    assert secret not in listing.get_data(as_text=True)
    for path in (f"api_keys/{key['key_id']}", f"workspaces/{acme.ws}/api_keys/{key['key_id']}"):
        stored = firestore_client.document(path).get().to_dict()
        assert stored is not None
        assert secret not in json.dumps(stored, default=str)
    # Revoked: refused at once in this process, and still listed, as revoked.
    assert (
        api.delete(f"/{acme.ws}/keys/{key['key_id']}", headers=bearer(acme.admin)).status_code
        == 204
    )
    refused = ingest.post(
        "/",
        json=[{**RECORD, "ts": datetime.now(UTC).isoformat()}],
        headers={"Authorization": f"Bearer {key['secret']}"},
    )
    assert refused.status_code == 401
    (revoked,) = api.get(f"/{acme.ws}/keys", headers=bearer(acme.admin)).get_json()["keys"]
    assert revoked["revoked_at"] is not None
    # Revoking again changes nothing; an unknown key, or another workspace's, is not found.
    assert (
        api.delete(f"/{acme.ws}/keys/{key['key_id']}", headers=bearer(acme.admin)).status_code
        == 204
    )
    assert api.delete(f"/{acme.ws}/keys/nosuchkey", headers=bearer(acme.admin)).status_code == 404
    personal = acme.admin.uid
    assert (
        api.delete(f"/{personal}/keys/{key['key_id']}", headers=bearer(acme.admin)).status_code
        == 404
    )


@pytest.mark.parametrize(
    ("expires_at", "field"),
    [
        ("past", "expires_at"),
        ("beyond", "expires_at"),
        ("2030-01-01T00:00:00", "expires_at"),  # no time zone
        ("soon", "expires_at"),
    ],
)
def test_a_key_expiry_must_be_in_the_future_and_within_two_years(
    api: FlaskClient, acme: Acme, store: FirestoreWorkspaceStore, expires_at: str, field: str
) -> None:
    now = datetime.now(UTC)
    value = {
        "past": (now - timedelta(minutes=1)).isoformat(),
        "beyond": (now + timedelta(days=731)).isoformat(),
        "soon": "tomorrow",
    }.get(expires_at, expires_at)
    before = state(store, acme.ws)
    response = api.post(
        f"/{acme.ws}/keys",
        json={"name": "k", "scope": "read", "expires_at": value},
        headers=bearer(acme.owner),
    )
    assert response.status_code == 422
    assert field in response.get_json()["error"]["message"]
    assert state(store, acme.ws) == before


@pytest.mark.parametrize(
    "body",
    [{"name": "k", "scope": "admin"}, {"name": "", "scope": "read"}, {"scope": "read"},
     {"name": "k", "scope": "read", "secret": "apx_mine"}],
)  # fmt: skip
def test_a_bad_key_request_is_refused(api: FlaskClient, acme: Acme, body: Any) -> None:
    response = api.post(f"/{acme.ws}/keys", json=body, headers=bearer(acme.owner))
    assert response.status_code == 422


def test_without_a_pepper_no_key_is_made(
    api: FlaskClient,
    acme: Acme,
    monkeypatch: pytest.MonkeyPatch,
    store: FirestoreWorkspaceStore,
    capsys: pytest.CaptureFixture[str],
    function: Fn,
) -> None:
    before = state(store, acme.ws)
    monkeypatch.delenv("APEX_KEY_PEPPER")
    capsys.readouterr()
    response = function("workspaces").post(
        f"/{acme.ws}/keys", json={"name": "k", "scope": "read"}, headers=bearer(acme.owner)
    )
    assert response.status_code == 500
    assert error_of(response) == "internal"
    reference = response.get_json()["error"]["message"].rsplit(" ", 1)[-1]
    logged = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")
    ]
    faults = [line for line in logged if line.get("reference") == reference]
    assert faults, logged
    assert "APEX_KEY_PEPPER is not set" in json.dumps(faults)
    assert state(store, acme.ws) == before


# --- the audit log ----------------------------------------------------------------------------


def test_the_audit_log_names_who_did_what_newest_first(api: FlaskClient, acme: Acme) -> None:
    made = api.post(
        f"/{acme.ws}/keys", json={"name": "ci", "scope": "read"}, headers=bearer(acme.admin)
    ).get_json()
    api.patch(
        f"/{acme.ws}/members/{acme.viewer.uid}", json={"role": "member"}, headers=bearer(acme.admin)
    )
    response = api.get(f"/{acme.ws}/audit", headers=bearer(acme.admin))
    assert response.status_code == 200
    entries = response.get_json()["entries"]
    # created, 3 x (invite, accept), the key, the role change.
    assert [e["seq"] for e in entries] == list(range(9, 0, -1))
    assert [e["action"] for e in entries[:2]] == ["member.role_changed", "key.created"]
    assert entries[0] == {
        "seq": 9,
        "actor": acme.admin.uid,
        "action": "member.role_changed",
        "target": acme.viewer.uid,
        "detail": {"from": "viewer", "to": "member"},
        "at": entries[0]["at"],
    }
    assert entries[1]["target"] == made["key_id"]
    assert made["secret"] not in response.get_data(as_text=True)
    assert entries[-1]["action"] == "workspace.created"
    page = api.get(f"/{acme.ws}/audit?limit=3&before_seq=5", headers=bearer(acme.owner))
    assert [e["seq"] for e in page.get_json()["entries"]] == [4, 3, 2]
    for query in ("limit=0", "limit=201", "limit=ten", "before_seq=0", "since=1"):
        bad = api.get(f"/{acme.ws}/audit?{query}", headers=bearer(acme.owner))
        assert bad.status_code == 422, query


# --- races ------------------------------------------------------------------------------------


def at_once(calls: list[Callable[[], TestResponse]]) -> list[TestResponse]:
    start = threading.Barrier(len(calls))

    def run(call: Callable[[], TestResponse]) -> TestResponse:
        start.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def test_two_admins_removing_each_other_at_once(
    function: Fn,
    acme: Acme,
    auth_emulator: AuthEmulator,
    sign_up: Callable[..., SignedIn],
    store: FirestoreWorkspaceStore,
    api: FlaskClient,
) -> None:
    second = verified(auth_emulator, sign_up())
    assert (
        accept(api, second, invite(api, acme.owner, acme.ws, second.email, "admin")).status_code
        == 200
    )
    first = acme.admin
    clients = [function("workspaces"), function("workspaces")]
    responses = at_once(
        [
            lambda: clients[0].delete(f"/{acme.ws}/members/{second.uid}", headers=bearer(first)),
            lambda: clients[1].delete(f"/{acme.ws}/members/{first.uid}", headers=bearer(second)),
        ]
    )
    statuses = sorted(r.status_code for r in responses)
    # One removed the other; the other, no longer a member, is told the workspace is not theirs.
    assert statuses == [204, 404], [r.get_json() for r in responses]
    winner = first if responses[0].status_code == 204 else second
    loser = second if winner is first else first
    roles = {m.uid: m.role for m in store.members(acme.ws)}
    assert winner.uid in roles
    assert loser.uid not in roles
    entries = store.audit(acme.ws, 200, None)
    assert [e.seq for e in entries] == list(range(len(entries), 0, -1))
    removals = [e for e in entries if e.action == "member.removed"]
    assert [(e.actor, e.target) for e in removals] == [(winner.uid, loser.uid)]


def test_two_accepts_of_one_invite_at_once(
    function: Fn,
    acme: Acme,
    auth_emulator: AuthEmulator,
    sign_up: Callable[..., SignedIn],
    store: FirestoreWorkspaceStore,
    api: FlaskClient,
) -> None:
    user = verified(auth_emulator, sign_up())
    invite_id = invite(api, acme.admin, acme.ws, user.email, "member")
    clients = [function("workspaces"), function("workspaces")]
    responses = at_once(
        [
            lambda: clients[0].post(f"/invites/{invite_id}/accept", headers=bearer(user)),
            lambda: clients[1].post(f"/invites/{invite_id}/accept", headers=bearer(user)),
        ]
    )
    assert sorted(r.status_code for r in responses) == [200, 409]
    assert store.member(acme.ws, user.uid) is not None
    entries = store.audit(acme.ws, 200, None)
    assert [e.seq for e in entries] == list(range(len(entries), 0, -1))
    assert [e.target for e in entries if e.action == "invite.accepted"].count(user.uid) == 1
