"""A workspace's prices and settings through the `workspaces` function (DESIGN §8, §9;
docs/prices.md): who may read and change them, what a bad book is refused with (422 naming
the entry), that a change is audited once and a repeat of it not at all, and that the book
read back prices as the workspace said."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from flask.testing import FlaskClient
from google.cloud import firestore

from devstack.auth_emulator import AuthEmulator, SignedIn
from shared import pricing
from shared.models.workspaces import MAX_PRICE_ENTRIES
from shared.store.workspaces import FirestoreWorkspaceStore
from shared.workspaces import service
from tests.support.membership import Team, bearer, make_team

Fn = Callable[[str], FlaskClient]
PRIVATE = "ft:gpt-4o-mini:acme:support:1"
BOOK: list[dict[str, Any]] = [
    {"provider": "openai", "model": "gpt-4o", "discount_pct": 20, "from": "2026-01-01"},
    {"provider": "openai", "model": "gpt-4o", "output_mtok": 7.5, "from": "2026-06-01"},
    {"provider": "openai", "model": PRIVATE, "input_mtok": 0.3, "output_mtok": 1.2},
]


@pytest.fixture
def team(function: Fn, auth_emulator: AuthEmulator, sign_up: Callable[..., SignedIn]) -> Team:
    users = {role: sign_up() for role in ("owner", "admin", "member", "viewer")}
    return make_team(function("workspaces"), auth_emulator, users)  # type: ignore[arg-type]


def _audit(api: FlaskClient, team: Team) -> list[dict[str, Any]]:
    response = api.get(f"/{team.workspace_id}/audit", headers=team.headers("admin"))
    assert response.status_code == 200, response.get_json()
    entries: list[dict[str, Any]] = response.get_json()["entries"]
    return entries


def _error(response: Any) -> str:
    body = response.get_json()
    assert response.status_code == 422, body
    assert body["error"]["code"] == "validation_failed"
    return str(body["error"]["message"])


def test_an_admin_sets_the_book_every_member_reads_it_and_the_change_is_audited_once(
    function: Fn, team: Team, firestore_client: firestore.Client
) -> None:
    api = function("workspaces")
    ws = team.workspace_id
    empty = api.get(f"/{ws}/prices", headers=team.headers("viewer"))
    assert empty.status_code == 200
    assert empty.get_json() == {"prices": []}

    put = api.put(f"/{ws}/prices", json=BOOK, headers=team.headers("admin"))
    assert put.status_code == 200, put.get_json()
    shown = api.get(f"/{ws}/prices", headers=team.headers("viewer")).get_json()["prices"]
    assert shown == put.get_json()["prices"]
    assert [(p["model"], p["from"], p["discount_pct"], p["output_mtok"]) for p in shown] == [
        ("gpt-4o", "2026-01-01", 20.0, None),
        ("gpt-4o", "2026-06-01", None, 7.5),
        (PRIVATE, None, None, 1.2),
    ]
    entries = [e for e in _audit(api, team) if e["action"] == "prices.replaced"]
    assert len(entries) == 1
    assert entries[0]["actor"] == team.users["admin"].uid
    assert [p["model"] for p in entries[0]["detail"]["prices"]] == ["gpt-4o", "gpt-4o", PRIVATE]

    # The same book again changes nothing: no second entry.
    again = api.put(f"/{ws}/prices", json=BOOK, headers=team.headers("owner"))
    assert again.status_code == 200
    assert len([e for e in _audit(api, team) if e["action"] == "prices.replaced"]) == 1

    # The book as the readers get it, from Firestore, prices exactly as set.
    book = service.price_book(FirestoreWorkspaceStore(firestore_client), ws)
    assert book.custom
    may = datetime(2026, 5, 31, 12, tzinfo=UTC)
    june = datetime(2026, 6, 1, tzinfo=UTC)
    listed = pricing.model_prices("openai", "gpt-4o", may)
    assert book.model_prices("openai", "gpt-4o", may).output_mtok == listed.output_mtok * Decimal(
        "0.8"
    )
    assert book.model_prices("openai", "gpt-4o", june).output_mtok == Decimal("7.5")
    assert book.model_prices("openai", PRIVATE, june).input_mtok == Decimal("0.3")

    # An empty list clears it: list prices again, and that is audited too.
    cleared = api.put(f"/{ws}/prices", json=[], headers=team.headers("admin"))
    assert cleared.get_json() == {"prices": []}
    assert not service.price_book(FirestoreWorkspaceStore(firestore_client), ws).custom
    assert len([e for e in _audit(api, team) if e["action"] == "prices.replaced"]) == 2


def test_only_admins_change_prices_and_settings_and_outsiders_see_no_workspace(
    function: Fn, team: Team, sign_up: Callable[..., SignedIn]
) -> None:
    api = function("workspaces")
    ws = team.workspace_id
    outsider = sign_up()
    for path, body in (("prices", BOOK), ("settings", {"allowed_models": None})):
        member = api.put(f"/{ws}/{path}", json=body, headers=team.headers("member"))
        assert member.status_code == 403, member.get_json()
        assert member.get_json()["error"]["code"] == "forbidden"
        viewer = api.get(f"/{ws}/{path}", headers=team.headers("viewer"))
        assert viewer.status_code == 200
        for method in ("GET", "PUT"):
            response = api.open(
                f"/{ws}/{path}",
                method=method,
                json=body if method == "PUT" else None,
                headers=bearer(outsider, ws),
            )
            assert response.status_code == 404, response.get_json()
    # Nothing changed: still the list.
    assert api.get(f"/{ws}/prices", headers=team.headers("admin")).get_json() == {"prices": []}
    assert not [e for e in _audit(api, team) if e["action"] in ("prices.replaced",)]


@pytest.mark.parametrize(
    ("book", "names"),
    [
        ([{"provider": "openai", "model": "gpt-4o"}], "0: Value error, give at least one"),
        ([{"provider": "openai", "model": "gpt-4o", "discount_pct": 100}], "0.discount_pct"),
        ([{"provider": "openai", "model": "gpt-4o", "input_mtok": -1}], "0.input_mtok"),
        ([{"provider": "openai", "model": "gpt-4o", "output_mtok": 10001}], "0.output_mtok"),
        ([{"provider": "openai", "model": "gpt-4o", "input_mtok": 1, "tier": 2}], "0.tier"),
        ([{"provider": "openai", "model": "", "input_mtok": 1}], "0.model"),
        ([{"provider": "openai", "model": "gpt-4o", "input_mtok": 1, "from": "soon"}], "0.from"),
        (
            [{"provider": "openai", "model": "gpt-4o", "input_mtok": 1, "from": "2019-12-31"}],
            "prices.0.from",
        ),
        (
            [
                {"provider": "openai", "model": "gpt-4o", "discount_pct": 10},
                {"provider": "openai", "model": "gpt-4o-2024-08-06", "discount_pct": 5},
            ],
            "prices.1: prices openai/gpt-4o-2024-08-06 from the start again",
        ),
        (
            [{"provider": "openai", "model": PRIVATE, "input_mtok": 0.3}],
            f"prices.0: the price table does not know openai/{PRIVATE}",
        ),
        (
            {"provider": "openai", "model": "gpt-4o", "discount_pct": 5},
            "Input should be a valid list",
        ),
        (
            [{"provider": "openai", "model": f"m{i}", "input_mtok": 1, "output_mtok": 1}
             for i in range(MAX_PRICE_ENTRIES + 1)],
            f"at most {MAX_PRICE_ENTRIES} items",
        ),
    ],
)  # fmt: skip
def test_a_bad_book_is_refused_naming_the_entry_and_nothing_changes(
    function: Fn, team: Team, book: Any, names: str
) -> None:
    api = function("workspaces")
    ws = team.workspace_id
    response = api.put(f"/{ws}/prices", json=book, headers=team.headers("admin"))
    assert names in _error(response)
    assert api.get(f"/{ws}/prices", headers=team.headers("admin")).get_json() == {"prices": []}


def test_allowed_models_must_be_priced_and_are_audited(
    function: Fn, team: Team, firestore_client: firestore.Client
) -> None:
    api = function("workspaces")
    ws = team.workspace_id
    assert api.get(f"/{ws}/settings", headers=team.headers("viewer")).get_json() == {
        "allowed_models": None
    }
    unknown = api.put(
        f"/{ws}/settings",
        json={"allowed_models": [{"provider": "openai", "model": PRIVATE}]},
        headers=team.headers("admin"),
    )
    assert f"allowed_models.0: model '{PRIVATE}'" in _error(unknown)
    missing = api.put(f"/{ws}/settings", json={}, headers=team.headers("admin"))
    assert "allowed_models: Field required" in _error(missing)

    # Priced by the workspace first, the private model may be allowed.
    assert api.put(f"/{ws}/prices", json=BOOK, headers=team.headers("admin")).status_code == 200
    allowed = [
        {"provider": "openai", "model": "gpt-4o-mini"},
        {"provider": "openai", "model": PRIVATE},
    ]
    put = api.put(
        f"/{ws}/settings", json={"allowed_models": allowed}, headers=team.headers("admin")
    )
    assert put.status_code == 200, put.get_json()
    assert put.get_json() == {"allowed_models": allowed}
    assert api.get(f"/{ws}/settings", headers=team.headers("viewer")).get_json() == put.get_json()
    book = service.price_book(FirestoreWorkspaceStore(firestore_client), ws)
    assert book.allows("openai", "gpt-4o-mini")
    assert book.allows("openai", PRIVATE)
    assert not book.allows("openai", "gpt-4o")
    # Setting the prices again keeps the allowed models (one document, each field its own PUT).
    assert api.put(f"/{ws}/prices", json=BOOK[:2], headers=team.headers("admin")).status_code == 200
    assert api.get(f"/{ws}/settings", headers=team.headers("admin")).get_json() == put.get_json()

    back = api.put(f"/{ws}/settings", json={"allowed_models": None}, headers=team.headers("admin"))
    assert back.get_json() == {"allowed_models": None}
    changes = [e for e in _audit(api, team) if e["action"] == "settings.changed"]
    assert [e["detail"]["allowed_models"] for e in changes] == [None, allowed]  # newest first
