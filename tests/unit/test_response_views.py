"""The ``workspaces`` function's views are built from the store's documents by name
(``View.model_validate(doc)``): each shows what it declares, with the same values, and
never a document's secret (an API key's hash, a webhook's signing secret)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from shared.models import budgets, workspaces
from shared.models.budgets import Delivery, NotificationDoc, NotificationView, Period
from shared.models.workspaces import (
    AuditView,
    InviteView,
    KeyView,
    MemberView,
    PriceEntryIn,
    PriceList,
    SettingsView,
)
from shared.store.documents import (
    ApiKeyDoc,
    AuditEntry,
    InviteDoc,
    MemberDoc,
    ModelRefDoc,
    WorkspaceSettingsDoc,
)

AT = datetime(2026, 3, 4, 5, 6, 7, 890000, tzinfo=UTC)
LATER = datetime(2026, 3, 5, tzinfo=UTC)
HASH = "9f2c1e0d7b6a5948372615f4e3d2c1b0a9f8e7d6c5b4a39281706f5e4d3c2b1a"


def _key() -> ApiKeyDoc:
    return ApiKeyDoc(
        key_id="k0123456789abcdef",
        workspace_id="ws1",
        name="ci",
        scope="read",
        prefix="apx_k0123456789abcdef_AbC",
        secret_hash=HASH,
        created_by="u1",
        created_at=AT,
        expires_at=LATER,
    )


@pytest.mark.parametrize("source", ["document", "its fields"])
def test_a_listed_key_never_carries_its_hash(source: str) -> None:
    key = _key()
    view = KeyView.model_validate(key if source == "document" else key.model_dump())
    shown = view.model_dump(mode="json")
    assert set(shown) == {
        "key_id", "name", "scope", "prefix", "created_by", "created_at", "expires_at",
        "revoked_at", "last_used_at",
    }  # fmt: skip
    assert HASH not in view.model_dump_json()
    assert (shown["key_id"], shown["prefix"], shown["created_at"], shown["expires_at"]) == (
        key.key_id,
        key.prefix,
        "2026-03-04T05:06:07.890Z",
        "2026-03-05T00:00:00.000Z",
    )


def test_no_view_built_from_a_document_has_a_field_for_a_secret() -> None:
    # Only the responses that create a credential show it (KeyCreated, BudgetCreated,
    # WebhookSecretView), once; every other response model declares no secret at all.
    creating = {"KeyCreated", "BudgetCreated", "WebhookSecretView"}
    responses = (workspaces._Response, budgets._Response, workspaces.PriceEntryView)
    seen = set()
    for module in (workspaces, budgets):
        for name, model in vars(module).items():
            if not (isinstance(model, type) and issubclass(model, responses)):
                continue
            seen.add(name)
            if name in creating:
                continue
            secretive = [f for f in model.model_fields if "secret" in f or "hash" in f]
            assert secretive == [], f"{name} declares {secretive}"
    assert {"KeyView", "BudgetView", "NotificationView", "PriceEntryView"} <= seen


def test_member_invite_and_audit_views_copy_their_documents() -> None:
    member = MemberDoc(
        workspace_id="ws1",
        uid="u2",
        role="admin",
        email="a@example.com",
        added_by="u1",
        added_at=AT,
    )
    assert MemberView.model_validate(member).model_dump() == {
        "uid": "u2",
        "email": "a@example.com",
        "role": "admin",
        "added_by": "u1",
        "added_at": AT,
    }
    invite = InviteDoc(
        invite_id="i1",
        workspace_id="ws1",
        email="b@example.com",
        role="member",
        invited_by="u1",
        created_at=AT,
        expires_at=LATER,
        accepted_by="u3",
    )
    assert InviteView.model_validate(invite).model_dump() == {
        "invite_id": "i1",
        "email": "b@example.com",
        "role": "member",
        "expires_at": LATER,
        "invited_by": "u1",
        "created_at": AT,
    }
    entry = AuditEntry(
        seq=7,
        workspace_id="ws1",
        actor="u1",
        action="key.created",
        target="k1",
        detail={"a": 1},
        at=AT,
    )
    assert AuditView.model_validate(entry).model_dump() == {
        "seq": 7,
        "actor": "u1",
        "action": "key.created",
        "target": "k1",
        "detail": {"a": 1},
        "at": AT,
    }


def test_prices_and_settings_read_back_as_they_were_set() -> None:
    entry = PriceEntryIn.model_validate(
        {"provider": "openai", "model": "gpt-4o", "input_mtok": "2.5", "from": "2026-01-01"}
    )
    stored = entry.doc()
    assert (stored.input_mtok, stored.output_mtok, stored.from_) == (
        Decimal("2.5"),
        None,
        date(2026, 1, 1),
    )
    settings = WorkspaceSettingsDoc(
        prices=(stored,), allowed_models=(ModelRefDoc(provider="openai", model="gpt-4o-mini"),)
    )
    assert PriceList.model_validate(settings).model_dump(mode="json") == {
        "prices": [
            {
                "provider": "openai",
                "model": "gpt-4o",
                "input_mtok": 2.5,
                "cached_input_mtok": None,
                "output_mtok": None,
                "discount_pct": None,
                "from": "2026-01-01",
            }
        ]
    }
    assert SettingsView.model_validate(settings).model_dump(mode="json") == {
        "allowed_models": [{"provider": "openai", "model": "gpt-4o-mini"}]
    }
    assert SettingsView.model_validate(WorkspaceSettingsDoc()).model_dump(mode="json") == {
        "allowed_models": None
    }


def test_a_notification_is_named_for_the_wire_and_unread_against_the_readers_mark() -> None:
    doc = NotificationDoc(
        notification_id="b_bud1_202603_8000",
        workspace_id="ws1",
        kind="budget",
        text="Summaries is at 80%",
        created_at=AT,
        period=Period(start="2026-03-01", end="2026-03-31"),
        spend_usd=80.0,
        budget_id="bud1",
        budget_name="Summaries",
        threshold=0.8,
        crossed_by="actual",
        forecast_usd=120.0,
        monthly_usd=100.0,
        deliveries={
            "bud2": Delivery(status="pending"),
            "bud1": Delivery(status="delivered", attempts=2, host="hooks.example.com", at=LATER),
        },
        published=True,
    )
    shown = NotificationView.of(doc, None).model_dump(mode="json")
    assert shown == {
        "notification_id": "b_bud1_202603_8000",
        "kind": "budget",
        "text": "Summaries is at 80%",
        "ts": "2026-03-04T05:06:07.890Z",
        "period": {"start": "2026-03-01", "end": "2026-03-31"},
        "spend_usd": 80.0,
        "budget_id": "bud1",
        "budget_name": "Summaries",
        "threshold": 0.8,
        "crossed_by": "actual",
        "forecast_usd": 120.0,
        "monthly_usd": 100.0,
        "detail": {},
        "deliveries": {
            "bud1": {
                "status": "delivered",
                "attempts": 2,
                "host": "hooks.example.com",
                "last_error": None,
                "at": "2026-03-05T00:00:00.000Z",
            },
            "bud2": {
                "status": "pending",
                "attempts": 0,
                "host": None,
                "last_error": None,
                "at": None,
            },
        },
        "unread": True,
    }
    assert list(shown["deliveries"]) == ["bud1", "bud2"]  # in budget order
    assert NotificationView.of(doc, AT).unread is False
    assert NotificationView.of(doc, datetime(2026, 3, 4, tzinfo=UTC)).unread is True
