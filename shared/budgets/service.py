"""The rules of budgets and notifications (DESIGN §11, §9), over the stores and free of any
transport.

Who may do what: any member (``read``) lists budgets, with this month's spend and forecast,
and the notifications, and marks them read for themselves; ``admin`` and above (``manage``)
create, change and delete budgets and rotate the webhook signing secret, and only they see a
budget's whole webhook URL (others its host: a Slack URL is itself a credential). Not a
member (or no such workspace): ``NotFound``; a budget of another workspace: ``NotFound``.

Every change is serialized through the workspace's audit sequence, as the rules of teams
are (``shared.workspaces.service``): read the workspace, decide, commit one ``BudgetChange``
creating the next audit entry; a change that raced another is decided again. A bad webhook
URL (not https, an IP literal that is not public) is refused before anything is written.

The signing secret is created with the workspace's first budget that has a webhook and
returned only in that response (a PATCH that adds the first webhook returns it too); after
that only ``POST /{ws}/webhook_secret`` shows one, the new one it makes.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Generic, TypeVar

from shared.budgets import limits
from shared.budgets.addresses import UnsafeWebhook, parse_url
from shared.budgets.rules import Month, Standing, group_totals, standing
from shared.budgets.signing import new_secret
from shared.errors import Conflict, NotFound, Unavailable, ValidationFailed
from shared.models.budgets import (
    BudgetChangeRequest,
    BudgetDoc,
    BudgetRequest,
    NotificationDoc,
    WebhookSecretDoc,
)
from shared.store.budget_interface import BudgetChange, BudgetStore
from shared.store.documents import WorkspaceDoc
from shared.store.interfaces import CreateConflict, UsageStore, WorkspaceStore
from shared.usage.repricing import reprice
from shared.usage.rollups import DailyRollup
from shared.workspaces.roles import allows
from shared.workspaces.service import ATTEMPTS, RETRY_AFTER_S, _acting, _entry

BUDGET_ID_BYTES: Final = 8  # 16 lower-case hex digits: also a plain Firestore field path

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Stores:
    workspaces: WorkspaceStore
    budgets: BudgetStore
    usage: UsageStore


@dataclass(frozen=True, slots=True)
class _Plan(Generic[_T]):
    """What a change returns, and what it writes (None: nothing changes)."""

    result: _T
    change: BudgetChange | None


def _serialized(
    stores: Stores, workspace_id: str, decide: Callable[[WorkspaceDoc], _Plan[_T]]
) -> _T:
    """As ``shared.workspaces.service``: decide from the workspace as it is now, commit, and
    decide again if a racing change of the workspace committed first."""
    for _ in range(ATTEMPTS):
        workspace = stores.workspaces.workspace(workspace_id)
        if workspace is None:
            raise NotFound(f"no workspace {workspace_id}")
        plan = decide(workspace)
        if plan.change is None:
            return plan.result
        try:
            stores.budgets.commit(plan.change)
        except CreateConflict:
            continue
        return plan.result
    raise Unavailable(
        f"workspace {workspace_id} is being changed by others; retry",
        retry_after_s=RETRY_AFTER_S,
    )


def webhook_host(url: str | None) -> str | None:
    """The host of a stored webhook URL (what logs, audit entries and non-admins see)."""
    if url is None:
        return None
    return parse_url(url, allow_loopback=True).host


def _check_webhook(url: str | None, allow_loopback: bool) -> None:
    if url is None:
        return
    try:
        parse_url(url, allow_loopback=allow_loopback)
    except UnsafeWebhook as e:
        raise ValidationFailed(f"webhook_url: {e}") from e


def _detail(budget: BudgetDoc) -> dict[str, Any]:
    """What the audit log keeps of a budget: never the webhook URL, only its host."""
    return {
        "name": budget.name,
        "monthly_usd": budget.monthly_usd,
        "scope": budget.scope.model_dump(exclude_none=True),
        "thresholds": budget.thresholds,
        "webhook_host": webhook_host(budget.webhook_url),
        "anomalies": budget.anomalies,
    }


def _secret_for(
    stores: Stores, budget: BudgetDoc, actor: str, now: datetime
) -> WebhookSecretDoc | None:
    """A new signing secret if ``budget`` has a webhook and the workspace has none yet."""
    if budget.webhook_url is None or stores.budgets.webhook_secret(budget.workspace_id):
        return None
    return WebhookSecretDoc(
        workspace_id=budget.workspace_id, secret=new_secret(), created_at=now, created_by=actor
    )


# --- budgets ----------------------------------------------------------------------------------


def create_budget(
    stores: Stores,
    workspace_id: str,
    actor: str,
    request: BudgetRequest,
    now: datetime,
    *,
    allow_loopback: bool,
) -> tuple[BudgetDoc, str | None]:
    """The new budget, and the workspace's signing secret if this call created it."""

    def decide(workspace: WorkspaceDoc) -> _Plan[tuple[BudgetDoc, str | None]]:
        _acting(stores.workspaces, workspace_id, actor, "manage")
        _check_webhook(request.webhook_url, allow_loopback)
        existing = stores.budgets.budgets(workspace_id)
        if len(existing) >= limits.MAX_BUDGETS:
            raise Conflict(f"workspace {workspace_id} has {len(existing)} budgets already")
        budget = BudgetDoc(
            budget_id=secrets.token_hex(BUDGET_ID_BYTES),
            workspace_id=workspace_id,
            name=request.name,
            monthly_usd=request.monthly_usd,
            scope=request.scope,
            thresholds=request.thresholds,
            webhook_url=request.webhook_url,
            anomalies=request.anomalies,
            created_by=actor,
            created_at=now,
            updated_at=now,
        )
        secret = _secret_for(stores, budget, actor, now)
        detail = {**_detail(budget), "webhook_secret_created": secret is not None}
        entry = _entry(workspace, actor, "budget.created", budget.budget_id, detail, now)
        change = BudgetChange(
            entry=entry,
            budgets=(budget,),
            all_budgets=(*existing, budget),
            webhook_secret=secret,
        )
        return _Plan((budget, None if secret is None else secret.secret), change)

    return _serialized(stores, workspace_id, decide)


def update_budget(
    stores: Stores,
    workspace_id: str,
    actor: str,
    budget_id: str,
    patch: BudgetChangeRequest,
    now: datetime,
    *,
    allow_loopback: bool,
) -> tuple[BudgetDoc, str | None]:
    """The budget changed (unchanged if the patch changes nothing: no entry), and the
    signing secret if the patch gave the workspace its first webhook."""
    fields = {name: getattr(patch, name) for name in patch.model_fields_set}

    def decide(workspace: WorkspaceDoc) -> _Plan[tuple[BudgetDoc, str | None]]:
        _acting(stores.workspaces, workspace_id, actor, "manage")
        _check_webhook(fields.get("webhook_url"), allow_loopback)
        found = _budget(stores, workspace_id, budget_id)
        changed = {k: v for k, v in fields.items() if getattr(found, k) != v}
        if not changed:
            return _Plan((found, None), None)
        budget = found.model_copy(update={**changed, "updated_at": now})
        secret = _secret_for(stores, budget, actor, now)
        detail = {
            **_detail(budget),
            "changed": sorted(changed),
            "webhook_secret_created": secret is not None,
        }
        entry = _entry(workspace, actor, "budget.changed", budget_id, detail, now)
        others = [b for b in stores.budgets.budgets(workspace_id) if b.budget_id != budget_id]
        change = BudgetChange(
            entry=entry, budgets=(budget,), all_budgets=(*others, budget), webhook_secret=secret
        )
        return _Plan((budget, None if secret is None else secret.secret), change)

    return _serialized(stores, workspace_id, decide)


def delete_budget(
    stores: Stores, workspace_id: str, actor: str, budget_id: str, now: datetime
) -> BudgetDoc:
    """Delete it (its notifications stay); the workspace leaves the tick's index with its
    last budget."""

    def decide(workspace: WorkspaceDoc) -> _Plan[BudgetDoc]:
        _acting(stores.workspaces, workspace_id, actor, "manage")
        found = _budget(stores, workspace_id, budget_id)
        others = [b for b in stores.budgets.budgets(workspace_id) if b.budget_id != budget_id]
        entry = _entry(workspace, actor, "budget.deleted", budget_id, _detail(found), now)
        change = BudgetChange(entry=entry, removed_budgets=(budget_id,), all_budgets=tuple(others))
        return _Plan(found, change)

    return _serialized(stores, workspace_id, decide)


def rotate_secret(stores: Stores, workspace_id: str, actor: str, now: datetime) -> str:
    """A new signing secret (the old one stops at once); the only time it is shown."""

    def decide(workspace: WorkspaceDoc) -> _Plan[str]:
        _acting(stores.workspaces, workspace_id, actor, "manage")
        secret = WebhookSecretDoc(
            workspace_id=workspace_id, secret=new_secret(), created_at=now, created_by=actor
        )
        entry = _entry(workspace, actor, "webhook_secret.rotated", workspace_id, {}, now)
        return _Plan(secret.secret, BudgetChange(entry=entry, webhook_secret=secret))

    return _serialized(stores, workspace_id, decide)


def _budget(stores: Stores, workspace_id: str, budget_id: str) -> BudgetDoc:
    found = stores.budgets.budget(workspace_id, budget_id)
    if found is None:
        raise NotFound(f"no budget {budget_id} in workspace {workspace_id}")
    return found


@dataclass(frozen=True, slots=True)
class Listed:
    budget: BudgetDoc
    standing: Standing
    month: Month
    # Whether the caller may see the webhook URL (admins and owners).
    sees_url: bool


def list_budgets(stores: Stores, workspace_id: str, uid: str, now: datetime) -> list[Listed]:
    """Every budget with this month's spend and forecast (one read of the rollups)."""
    member = _acting(stores.workspaces, workspace_id, uid, "read")
    found = stores.budgets.budgets(workspace_id)
    month = Month(now)
    rows = _month_rows(stores, workspace_id, month) if found else []
    totals = group_totals(rows, month)
    admin = allows(member.role, "manage")
    return [Listed(b, standing(b, totals, month), month, admin) for b in found]


def standing_of(stores: Stores, budget: BudgetDoc, now: datetime) -> Standing:
    month = Month(now)
    rows = _month_rows(stores, budget.workspace_id, month)
    return standing(budget, group_totals(rows, month), month)


def _month_rows(stores: Stores, workspace_id: str, month: Month) -> list[DailyRollup]:
    """The month's daily rollups at the workspace's prices (docs/prices.md)."""
    book = stores.workspaces.settings(workspace_id).price_book()
    return reprice(stores.usage.daily(workspace_id, *month.read_range()), book)


# --- notifications ----------------------------------------------------------------------------


def notifications(
    stores: Stores, workspace_id: str, uid: str, limit: int
) -> tuple[list[NotificationDoc], datetime | None]:
    """The newest ``limit`` notifications and until when ``uid`` has read them."""
    _acting(stores.workspaces, workspace_id, uid, "read")
    return (
        stores.budgets.notifications(workspace_id, limit),
        stores.budgets.read_up_to(workspace_id, uid),
    )


def mark_read(
    stores: Stores, workspace_id: str, uid: str, notification_id: str | None, now: datetime
) -> datetime:
    """Mark read, for ``uid``, every notification up to ``notification_id`` (None: all so
    far); the read mark now."""
    _acting(stores.workspaces, workspace_id, uid, "read")
    up_to = now
    if notification_id is not None:
        found = stores.budgets.notification(workspace_id, notification_id)
        if found is None:
            raise NotFound(f"no notification {notification_id} in workspace {workspace_id}")
        up_to = found.created_at
    return stores.budgets.mark_read(workspace_id, uid, up_to)
