"""Budgets, the signing secret and notifications through the ``workspaces`` function
in-process (DESIGN §11, §9), with real users of the Auth emulator and Firestore read back:

- an admin creates, changes and deletes budgets (audit entries, the tick's index), the
  signing secret is returned once and rotates; members read budgets with this month's spend
  and forecast, and see a webhook's host only;
- every bad input of the issue is a 422 naming the field, with nothing stored (budgets,
  secret, index, audit sequence read back unchanged);
- a member or viewer changing a budget is 403, another workspace's budget 404;
- notifications are listed with each member's own unread state, marked read per user.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from google.cloud import firestore

from devstack.auth_emulator import AuthEmulator, SignedIn
from shared.budgets.rules import Month
from shared.models.budgets import NotificationDoc, Period
from shared.models.usage import UsageRecord, parse_usage_record
from shared.store.budgets import FirestoreBudgetStore
from shared.store.usage import FirestoreUsageStore
from shared.store.workspaces import FirestoreWorkspaceStore
from tests.support.membership import Team, bearer, make_team
from tests.support.usage import cost_nano

Fn = Callable[[str], FlaskClient]
HOOK = "https://hooks.example.com/services/T000/B000/secretpart"


@pytest.fixture
def api(function: Fn) -> FlaskClient:
    return function("workspaces")


@pytest.fixture
def team(api: FlaskClient, auth_emulator: AuthEmulator, sign_up: Callable[..., SignedIn]) -> Team:
    return make_team(
        api,
        auth_emulator,
        {"owner": sign_up(), "admin": sign_up(), "member": sign_up(), "viewer": sign_up()},
    )


@pytest.fixture
def budgets(firestore_client: firestore.Client) -> FirestoreBudgetStore:
    return FirestoreBudgetStore(firestore_client)


@pytest.fixture
def workspaces(firestore_client: firestore.Client) -> FirestoreWorkspaceStore:
    return FirestoreWorkspaceStore(firestore_client)


def error_of(response: Any) -> tuple[str, str]:
    body = response.get_json()["error"]
    return body["code"], body["message"]


def as_(team: Team, role: str) -> dict[str, str]:
    return bearer(team.users[role])  # type: ignore[index]


@dataclass(frozen=True)
class State:
    """Everything a budget operation could change, read from Firestore."""

    budgets: list[dict[str, Any]]
    # The per-budget documents, which must always hold what the pages hold.
    budget_docs: list[dict[str, Any]]
    secret: str | None
    indexed: bool
    audit_seq: int


def state(
    db: firestore.Client,
    budgets: FirestoreBudgetStore,
    workspaces: FirestoreWorkspaceStore,
    ws: str,
) -> State:
    workspace = workspaces.workspace(ws)
    assert workspace is not None
    secret = budgets.webhook_secret(ws)
    return State(
        budgets=[b.model_dump() for b in budgets.budgets(ws)],
        budget_docs=sorted(
            (
                snap.to_dict() or {}
                for snap in db.collection("workspaces").document(ws).collection("budgets").stream()
            ),
            key=lambda d: str(d["budget_id"]),
        ),
        secret=None if secret is None else secret.secret,
        indexed=db.collection("budget_workspaces").document(ws).get().exists,
        audit_seq=workspace.audit_seq,
    )


@pytest.fixture
def state_of(
    firestore_client: firestore.Client,
    budgets: FirestoreBudgetStore,
    workspaces: FirestoreWorkspaceStore,
) -> Callable[[str], State]:
    """``state`` of a workspace, read from this test's Firestore."""
    return lambda ws: state(firestore_client, budgets, workspaces, ws)


def create(api: FlaskClient, team: Team, body: dict[str, Any], role: str = "admin") -> Any:
    response = api.post(f"/{team.workspace_id}/budgets", json=body, headers=as_(team, role))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


# --- create, read, change, delete -----------------------------------------------------------------


def test_an_admin_creates_budgets_and_the_secret_is_shown_once(
    api: FlaskClient,
    team: Team,
    state_of: Callable[[str], State],
    budgets: FirestoreBudgetStore,
    workspaces: FirestoreWorkspaceStore,
    firestore_client: firestore.Client,
) -> None:
    ws = team.workspace_id
    plain = create(api, team, {"name": "All spend", "monthly_usd": 500})
    assert plain["thresholds"] == [0.5, 0.8, 1.0]
    assert plain["scope"] == {"feature": None, "model": None, "provider": None}
    assert plain["webhook_secret"] is None  # no webhook: no secret yet
    assert budgets.webhook_secret(ws) is None
    assert firestore_client.collection("budget_workspaces").document(ws).get().exists

    hooked = create(
        api,
        team,
        {
            "name": "Summaries",
            "monthly_usd": 1000,
            "scope": {"feature": "summarize", "provider": "OpenAI"},
            "thresholds": [1.0, 0.25],
            "webhook_url": HOOK,
            "anomalies": True,
        },
    )
    secret = hooked["webhook_secret"]
    assert secret.startswith("whsec_")
    assert hooked["scope"] == {"feature": "summarize", "model": None, "provider": "openai"}
    assert hooked["thresholds"] == [0.25, 1.0]
    assert hooked["webhook_url"] == HOOK
    stored = budgets.webhook_secret(ws)
    assert stored is not None
    assert stored.secret == secret
    # A second budget with a webhook: the secret is not shown again.
    again = create(api, team, {"name": "Other", "monthly_usd": 10, "webhook_url": HOOK})
    assert again["webhook_secret"] is None
    assert budgets.webhook_secret(ws) == stored

    held = state_of(ws)
    assert [b["budget_id"] for b in held.budgets] == [b["budget_id"] for b in held.budget_docs]
    assert held.budgets == held.budget_docs
    # Every member reads them, with the month's spend; only admins see the whole URL.
    for role in ("owner", "admin", "member", "viewer"):
        listed = api.get(f"/{ws}/budgets", headers=as_(team, role))
        assert listed.status_code == 200
        views = {b["name"]: b for b in listed.get_json()["budgets"]}
        assert set(views) == {"All spend", "Summaries", "Other"}
        view = views["Summaries"]
        assert view["webhook_host"] == "hooks.example.com"
        assert view["webhook_url"] == (HOOK if role in ("owner", "admin") else None)
        assert (view["spend_usd"], view["forecast_usd"]) == (0.0, 0.0)
        assert view["month"] == Month(datetime.now(UTC)).label
        assert "webhook_secret" not in view
        assert secret not in listed.get_data(as_text=True)

    # The audit log names each change, with the webhook's host and never its URL.
    entries = workspaces.audit(ws, 50, None)
    created = [e for e in entries if e.action == "budget.created"]
    assert len(created) == 3
    text = json.dumps([e.model_dump(mode="json") for e in entries])
    assert "secretpart" not in text
    assert secret not in text
    hooked_entry = next(e for e in created if e.target == hooked["budget_id"])
    assert hooked_entry.detail["webhook_host"] == "hooks.example.com"
    assert hooked_entry.detail["webhook_secret_created"] is True
    assert hooked_entry.actor == team.users["admin"].uid


def test_the_secret_rotates_only_for_admins(
    api: FlaskClient,
    team: Team,
    state_of: Callable[[str], State],
    budgets: FirestoreBudgetStore,
    workspaces: FirestoreWorkspaceStore,
) -> None:
    ws = team.workspace_id
    first = create(api, team, {"name": "b", "monthly_usd": 5, "webhook_url": HOOK})[
        "webhook_secret"
    ]
    before = state_of(ws)
    for role in ("member", "viewer"):
        refused = api.post(f"/{ws}/webhook_secret", headers=as_(team, role))
        assert refused.status_code == 403
        assert error_of(refused)[0] == "forbidden"
    assert state_of(ws) == before
    rotated = api.post(f"/{ws}/webhook_secret", headers=as_(team, "owner"))
    assert rotated.status_code == 200
    new = rotated.get_json()["webhook_secret"]
    assert new.startswith("whsec_")
    assert new != first
    stored = budgets.webhook_secret(ws)
    assert stored is not None
    assert stored.secret == new
    assert workspaces.audit(ws, 1, None)[0].action == "webhook_secret.rotated"
    assert new not in json.dumps(
        [e.model_dump(mode="json") for e in workspaces.audit(ws, 50, None)]
    )


def test_an_admin_changes_and_deletes_a_budget(
    api: FlaskClient,
    team: Team,
    state_of: Callable[[str], State],
    budgets: FirestoreBudgetStore,
    workspaces: FirestoreWorkspaceStore,
    firestore_client: firestore.Client,
) -> None:
    ws = team.workspace_id
    made = create(api, team, {"name": "b", "monthly_usd": 100})
    path = f"/{ws}/budgets/{made['budget_id']}"
    changed = api.patch(
        path, json={"monthly_usd": 250.5, "thresholds": [0.9]}, headers=as_(team, "admin")
    )
    assert changed.status_code == 200, changed.get_json()
    body = changed.get_json()
    assert (body["monthly_usd"], body["thresholds"], body["name"]) == (250.5, [0.9], "b")
    assert body["webhook_secret"] is None
    entry = workspaces.audit(ws, 1, None)[0]
    assert (entry.action, entry.detail["changed"]) == (
        "budget.changed",
        ["monthly_usd", "thresholds"],
    )
    # The same values again change nothing (no audit entry).
    seq = state_of(ws).audit_seq
    same = api.patch(path, json={"monthly_usd": 250.5}, headers=as_(team, "admin"))
    assert same.status_code == 200
    assert state_of(ws).audit_seq == seq
    # Adding the workspace's first webhook by PATCH shows the new secret, once.
    hooked = api.patch(path, json={"webhook_url": HOOK}, headers=as_(team, "admin")).get_json()
    assert hooked["webhook_secret"].startswith("whsec_")
    removed = api.patch(path, json={"webhook_url": None}, headers=as_(team, "admin")).get_json()
    assert removed["webhook_url"] is None
    assert removed["webhook_secret"] is None
    assert budgets.webhook_secret(ws) is not None  # the secret stays for the next webhook

    deleted = api.delete(path, headers=as_(team, "owner"))
    assert deleted.status_code == 204
    assert budgets.budgets(ws) == []
    # The last budget gone: the workspace leaves the tick's index.
    assert not firestore_client.collection("budget_workspaces").document(ws).get().exists
    assert workspaces.audit(ws, 1, None)[0].action == "budget.deleted"
    again = api.delete(path, headers=as_(team, "owner"))
    assert again.status_code == 404


def test_spend_and_forecast_are_this_months_per_scope(
    api: FlaskClient, team: Team, firestore_client: firestore.Client
) -> None:
    ws = team.workspace_id
    now = datetime.now(UTC)
    records = [
        record("summarize", "gpt-4o", now - timedelta(minutes=5), 20_000, 4_000, "a"),
        record("classify", "gpt-4o-mini", now - timedelta(minutes=4), 5_000, 100, "b"),
    ]
    FirestoreUsageStore(firestore_client).apply(ws, records)
    create(api, team, {"name": "all", "monthly_usd": 100})
    create(api, team, {"name": "sum", "monthly_usd": 100, "scope": {"feature": "summarize"}})
    create(api, team, {"name": "mini", "monthly_usd": 100, "scope": {"model": "gpt-4o-mini"}})
    create(api, team, {"name": "none", "monthly_usd": 100, "scope": {"provider": "anthropic"}})
    views = {
        b["name"]: b
        for b in api.get(f"/{ws}/budgets", headers=as_(team, "viewer")).get_json()["budgets"]
    }
    total = sum(cost_nano(r) for r in records)
    assert views["all"]["spend_usd"] == round(total / 1e9, 2)
    assert views["sum"]["spend_usd"] == round(cost_nano(records[0]) / 1e9, 2)
    assert views["mini"]["spend_usd"] == round(cost_nano(records[1]) / 1e9, 2)
    assert views["none"]["spend_usd"] == 0.0
    # Nothing in the 7 full days before today: the forecast is what is spent so far.
    for view in views.values():
        assert view["forecast_usd"] == view["spend_usd"]


def record(
    feature: str, model: str, ts: datetime, input_tokens: int, output_tokens: int, rid: str
) -> UsageRecord:
    return parse_usage_record(
        {
            "id": rid,
            "model": model,
            "provider": "openai",
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "ts": ts.isoformat(),
            "feature": feature,
        },
        now=datetime.now(UTC),
    )


# --- bad input: 422 naming the field, nothing stored ----------------------------------------------

OK = {"name": "b", "monthly_usd": 100}


@pytest.fixture
def budget(api: FlaskClient, team: Team) -> Any:
    """A budget (``OK``) the team's admin made, as created."""
    return create(api, team, OK)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**OK, "monthly_usd": -5}, "monthly_usd"),
        ({**OK, "monthly_usd": 0}, "monthly_usd"),
        ({**OK, "monthly_usd": 1e10}, "monthly_usd"),
        ({**OK, "monthly_usd": 1e308 * 10}, "monthly_usd"),  # Infinity in the JSON
        ({**OK, "monthly_usd": float("nan")}, "monthly_usd"),
        ({**OK, "monthly_usd": "a lot"}, "monthly_usd"),
        ({"name": "b"}, "monthly_usd"),
        ({**OK, "name": ""}, "name"),
        ({**OK, "scope": {"team": "platform"}}, "scope.team"),
        ({**OK, "scope": {"feature": "x", "user": "bob"}}, "scope.user"),
        ({**OK, "scope": {"feature": ""}}, "scope.feature"),
        ({**OK, "thresholds": [0]}, "thresholds.0"),
        ({**OK, "thresholds": [-0.5]}, "thresholds.0"),
        ({**OK, "thresholds": [0.5, 10.01]}, "thresholds.1"),
        ({**OK, "thresholds": [11]}, "thresholds.0"),
        ({**OK, "thresholds": []}, "thresholds"),
        ({**OK, "thresholds": [0.5, 0.5]}, "thresholds"),
        ({**OK, "thresholds": [0.1 * i for i in range(1, 12)]}, "thresholds"),
        ({**OK, "thresholds": [0.12345]}, "thresholds.0"),
        ({**OK, "webhook_url": "http://169.254.169.254/"}, "webhook_url"),
        ({**OK, "webhook_url": "https://169.254.169.254/latest/meta-data/"}, "webhook_url"),
        ({**OK, "webhook_url": "http://10.0.0.1/"}, "webhook_url"),
        ({**OK, "webhook_url": "https://10.0.0.1/hook"}, "webhook_url"),
        ({**OK, "webhook_url": "https://[::ffff:10.0.0.1]/"}, "webhook_url"),
        ({**OK, "webhook_url": "https://[::ffff:a9fe:a9fe]/"}, "webhook_url"),
        ({**OK, "webhook_url": "https://[64:ff9b::a9fe:a9fe]/"}, "webhook_url"),
        ({**OK, "webhook_url": "https://[2002:a9fe:a9fe::]/"}, "webhook_url"),
        ({**OK, "webhook_url": "https://[::a00:1]/"}, "webhook_url"),
        ({**OK, "webhook_url": "http://hooks.example.com/"}, "webhook_url"),
        ({**OK, "webhook_url": "http://127.0.0.1:9/"}, "webhook_url"),
        ({**OK, "webhook_url": "https://u:p@hooks.example.com/"}, "webhook_url"),
        ({**OK, "webhook_url": "x" * 3000}, "webhook_url"),
        ({**OK, "anomalies": "sometimes"}, "anomalies"),
        ({**OK, "owner": "me"}, "owner"),
    ],
)
def test_a_bad_budget_is_refused_naming_the_field_and_nothing_is_stored(
    api: FlaskClient,
    team: Team,
    state_of: Callable[[str], State],
    body: dict[str, Any],
    field: str,
) -> None:
    ws = team.workspace_id
    before = state_of(ws)
    # json.dumps writes Infinity and NaN, which Python's JSON reader (the function's) takes.
    response = api.post(
        f"/{ws}/budgets",
        data=json.dumps(body),
        headers={**as_(team, "admin"), "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.get_json()
    code, message = error_of(response)
    assert code == "validation_failed"
    assert message.startswith(field) or f"; {field}" in message, message
    assert state_of(ws) == before
    assert before.budgets == []
    assert before.secret is None
    assert not before.indexed


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "at least one field"),
        ({"monthly_usd": None}, "monthly_usd cannot be null"),
        ({"thresholds": None}, "thresholds cannot be null"),
        ({"monthly_usd": 0}, "monthly_usd"),
        ({"thresholds": [20]}, "thresholds.0"),
        ({"scope": {"region": "eu"}}, "scope.region"),
        ({"webhook_url": "http://10.0.0.1/"}, "webhook_url"),
        ({"webhook_url": "https://[::ffff:192.168.0.1]/"}, "webhook_url"),
        ({"budget_id": "other"}, "budget_id"),
    ],
)
def test_a_bad_change_is_refused_and_the_budget_stays(
    api: FlaskClient,
    team: Team,
    state_of: Callable[[str], State],
    budget: Any,
    body: dict[str, Any],
    field: str,
) -> None:
    ws = team.workspace_id
    before = state_of(ws)
    response = api.patch(
        f"/{ws}/budgets/{budget['budget_id']}", json=body, headers=as_(team, "admin")
    )
    assert response.status_code == 422, response.get_json()
    assert field in error_of(response)[1]
    assert state_of(ws) == before


# --- who may --------------------------------------------------------------------------------------


def test_members_and_viewers_cannot_change_budgets(
    api: FlaskClient,
    team: Team,
    state_of: Callable[[str], State],
    budget: Any,
) -> None:
    ws = team.workspace_id
    path = f"/{ws}/budgets/{budget['budget_id']}"
    before = state_of(ws)
    for role in ("member", "viewer"):
        headers = as_(team, role)
        for response in (
            api.post(f"/{ws}/budgets", json=OK, headers=headers),
            api.post(f"/{ws}/budgets", json={**OK, "webhook_url": HOOK}, headers=headers),
            api.patch(path, json={"monthly_usd": 1}, headers=headers),
            api.delete(path, headers=headers),
        ):
            assert response.status_code == 403, response.get_json()
            assert error_of(response)[0] == "forbidden"
    assert state_of(ws) == before


def test_another_workspaces_budget_is_not_found(
    api: FlaskClient,
    team: Team,
    state_of: Callable[[str], State],
    auth_emulator: AuthEmulator,
    sign_up: Callable[..., SignedIn],
    budget: Any,
) -> None:
    ours = budget
    other = make_team(api, auth_emulator, {"owner": sign_up(), "admin": sign_up()})
    theirs = api.post(
        f"/{other.workspace_id}/budgets", json=OK, headers=bearer(other.users["admin"])
    ).get_json()
    before = (state_of(team.workspace_id), state_of(other.workspace_id))
    admin = as_(team, "admin")
    for response in (
        # Their budget under our workspace's path: no such budget here.
        api.patch(
            f"/{team.workspace_id}/budgets/{theirs['budget_id']}",
            json={"monthly_usd": 1},
            headers=admin,
        ),
        api.delete(f"/{team.workspace_id}/budgets/{theirs['budget_id']}", headers=admin),
        # Their workspace: we are not members (existence not revealed).
        api.get(f"/{other.workspace_id}/budgets", headers=admin),
        api.post(f"/{other.workspace_id}/budgets", json=OK, headers=admin),
        api.patch(
            f"/{other.workspace_id}/budgets/{theirs['budget_id']}",
            json={"monthly_usd": 1},
            headers=admin,
        ),
        api.delete(f"/{other.workspace_id}/budgets/{ours['budget_id']}", headers=admin),
        api.get(f"/{other.workspace_id}/notifications", headers=admin),
        api.post(f"/{other.workspace_id}/webhook_secret", headers=admin),
    ):
        assert response.status_code == 404, response.get_json()
        assert error_of(response)[0] == "not_found"
    assert (state_of(team.workspace_id), state_of(other.workspace_id)) == before


# --- notifications --------------------------------------------------------------------------------


@pytest.fixture
def stored_notifications(team: Team, budgets: FirestoreBudgetStore) -> list[NotificationDoc]:
    now = datetime.now(UTC)
    docs = [
        NotificationDoc(
            notification_id=f"b_0123456789abcdef_{now:%Y%m}_{t}",
            workspace_id=team.workspace_id,
            kind="budget",
            text=f"Budget “b” crossed {t / 100:g}%",
            created_at=now - timedelta(minutes=10 - i),
            period=Period(start="2026-05-01", end="2026-05-31"),
            spend_usd=1.0 * i,
        )
        for i, t in enumerate((5000, 8000, 10000))
    ]
    for doc in docs:
        assert budgets.create_notification(doc)
    return docs


def test_notifications_are_listed_newest_first_with_each_members_unread_state(
    api: FlaskClient, team: Team, stored_notifications: list[NotificationDoc]
) -> None:
    ws = team.workspace_id
    ids = [d.notification_id for d in reversed(stored_notifications)]

    def listing(role: str) -> dict[str, Any]:
        response = api.get(f"/{ws}/notifications", headers=as_(team, role))
        assert response.status_code == 200, response.get_json()
        body: dict[str, Any] = response.get_json()
        return body

    first = listing("viewer")
    assert [n["notification_id"] for n in first["notifications"]] == ids
    assert first["unread"] == 3
    assert all(n["unread"] for n in first["notifications"])
    # The viewer reads up to the middle one: the newest stays unread, for them only.
    marked = api.post(
        f"/{ws}/notifications/read", json={"notification_id": ids[1]}, headers=as_(team, "viewer")
    )
    assert marked.status_code == 200, marked.get_json()
    after = listing("viewer")
    assert after["unread"] == 1
    assert [n["unread"] for n in after["notifications"]] == [True, False, False]
    assert listing("member")["unread"] == 3
    # Marking all read (no body) for the member; an older mark never moves the viewer's back.
    assert api.post(f"/{ws}/notifications/read", headers=as_(team, "member")).status_code == 200
    assert listing("member")["unread"] == 0
    api.post(
        f"/{ws}/notifications/read", json={"notification_id": ids[2]}, headers=as_(team, "viewer")
    )
    assert listing("viewer")["unread"] == 1
    assert listing("member")["notifications"][0]["text"] == stored_notifications[-1].text
    # Bad input: an unknown notification 404, a limit out of range 422.
    unknown = api.post(
        f"/{ws}/notifications/read", json={"notification_id": "nope"}, headers=as_(team, "viewer")
    )
    assert unknown.status_code == 404
    assert api.get(f"/{ws}/notifications?limit=0", headers=as_(team, "viewer")).status_code == 422
    one = api.get(f"/{ws}/notifications?limit=1", headers=as_(team, "viewer")).get_json()
    assert [n["notification_id"] for n in one["notifications"]] == ids[:1]


def test_past_the_budget_limit_a_new_budget_is_a_conflict(
    api: FlaskClient,
    team: Team,
    state_of: Callable[[str], State],
    budgets: FirestoreBudgetStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("shared.budgets.limits.MAX_BUDGETS", 2)
    create(api, team, OK)
    create(api, team, OK)
    before = state_of(team.workspace_id)
    refused = api.post(f"/{team.workspace_id}/budgets", json=OK, headers=as_(team, "admin"))
    assert refused.status_code == 409
    assert error_of(refused) == ("conflict", f"workspace {team.workspace_id} has 2 budgets already")
    assert state_of(team.workspace_id) == before
