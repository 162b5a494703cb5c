"""The budget and notification paths of the ``workspaces`` function (DESIGN §11), routed by
``shared.workspaces.api``: each a rule of ``shared.budgets.service``."""

from __future__ import annotations

from typing import Final

from shared.budgets import service
from shared.budgets.rules import Month
from shared.budgets.service import Listed, Stores, webhook_host
from shared.edge import HttpResponse
from shared.http import Context, ok
from shared.models.budgets import (
    BudgetChangeRequest,
    BudgetCreated,
    BudgetList,
    BudgetRequest,
    BudgetView,
    NotificationList,
    NotificationsQuery,
    NotificationView,
    ReadMarked,
    ReadRequest,
    WebhookSecretView,
)
from shared.models.workspaces import NoQuery

_NO_CONTENT: Final = HttpResponse(204, None)


def _stores(ctx: Context) -> Stores:
    return Stores(ctx.services.workspaces, ctx.services.budgets, ctx.services.usage)


def _view(listed: Listed) -> BudgetView:
    budget = listed.budget
    # The budget's fields by name, but the webhook's: its URL is an admin's only (a Slack
    # URL is itself a credential), others see its host; and the month's standing.
    return BudgetView.model_validate(
        {
            **budget.model_dump(),
            "webhook_url": budget.webhook_url if listed.sees_url else None,
            "webhook_host": webhook_host(budget.webhook_url),
            "month": listed.month.label,
            "spend_usd": listed.standing.spend_usd,
            "forecast_usd": listed.standing.forecast_usd,
        }
    )


def _changed(listed: Listed, secret: str | None, status: int) -> HttpResponse:
    view = _view(listed)
    return ok(BudgetCreated(**view.model_dump(), webhook_secret=secret), status)


def create_budget(ctx: Context, params: list[str]) -> HttpResponse:
    request = ctx.parse(BudgetRequest)
    stores = _stores(ctx)
    budget, secret = service.create_budget(
        stores,
        params[0],
        ctx.principal.uid,
        request,
        ctx.now,
        allow_loopback=ctx.services.settings.webhooks_allow_loopback,
    )
    now = service.standing_of(stores, budget, ctx.now)
    return _changed(Listed(budget, now, Month(ctx.now), sees_url=True), secret, 201)


def list_budgets(ctx: Context, params: list[str]) -> HttpResponse:
    ctx.query(NoQuery)
    found = service.list_budgets(_stores(ctx), params[0], ctx.principal.uid, ctx.now)
    return ok(BudgetList(budgets=[_view(b) for b in found]))


def change_budget(ctx: Context, params: list[str]) -> HttpResponse:
    ws, budget_id = params
    patch = ctx.parse(BudgetChangeRequest)
    stores = _stores(ctx)
    budget, secret = service.update_budget(
        stores,
        ws,
        ctx.principal.uid,
        budget_id,
        patch,
        ctx.now,
        allow_loopback=ctx.services.settings.webhooks_allow_loopback,
    )
    now = service.standing_of(stores, budget, ctx.now)
    return _changed(Listed(budget, now, Month(ctx.now), sees_url=True), secret, 200)


def delete_budget(ctx: Context, params: list[str]) -> HttpResponse:
    ws, budget_id = params
    service.delete_budget(_stores(ctx), ws, ctx.principal.uid, budget_id, ctx.now)
    return _NO_CONTENT


def rotate_secret(ctx: Context, params: list[str]) -> HttpResponse:
    if ctx.request.body.strip():
        ctx.parse(NoQuery)  # no fields: an empty body or {}
    secret = service.rotate_secret(_stores(ctx), params[0], ctx.principal.uid, ctx.now)
    return ok(WebhookSecretView(webhook_secret=secret))


def list_notifications(ctx: Context, params: list[str]) -> HttpResponse:
    query = ctx.query(NotificationsQuery)
    found, read_up_to = service.notifications(
        _stores(ctx), params[0], ctx.principal.uid, query.limit
    )
    views = [NotificationView.of(doc, read_up_to) for doc in found]
    return ok(NotificationList(notifications=views, unread=sum(v.unread for v in views)))


def mark_read(ctx: Context, params: list[str]) -> HttpResponse:
    request = ctx.parse(ReadRequest) if ctx.request.body.strip() else ReadRequest()
    up_to = service.mark_read(
        _stores(ctx), params[0], ctx.principal.uid, request.notification_id, ctx.now
    )
    return ok(ReadMarked(read_up_to=up_to))
