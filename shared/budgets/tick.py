"""The budget tick (DESIGN §11): Cloud Scheduler (locally the devstack) publishes a tick on
``apex-budget-tick`` every minute; ``budget_worker`` fans it out, one tick per workspace
with budgets (the top-level index, no collection-group query), and checks each workspace:
this month's spend and forecast per budget, each threshold crossed, yesterday's anomaly.

Idempotent under duplicate ticks and duplicate deliveries: an alert is a notification whose
id is its once-only key (budget, month, threshold; or the anomaly's day), *created* if
absent, so of two checks racing only one creates it and only that one publishes it. What a
check publishes for a new notification: one ``NotifyRequested`` per webhook on
``apex-notify`` and the relay's frame on ``apex-events``; then the notification is marked
published, and its id added to the month's fired set (``alert_months/{YYYYMM}``), which the
next ticks read instead of every notification they judge crossed. A check that died between
the create and the mark leaves it unpublished (and not in the fired set): a later tick that
finds it so (and older than ``REPUBLISH_AFTER``, so as not to race the check that is about
to publish it) publishes it again; delivery drops what it has delivered already.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from shared.budgets.rules import (
    Month,
    anomaly_alert,
    budget_alert,
    budget_notification_id,
    crossings,
    group_totals,
    standing,
    yesterdays_anomaly,
)
from shared.budgets.service import webhook_host
from shared.bus import Bus, Outgoing, outgoing
from shared.models.budgets import (
    BudgetDoc,
    BudgetTick,
    Delivery,
    NotificationDoc,
    NotificationFrame,
    NotificationView,
    NotifyRequested,
)
from shared.models.messages import EVENTS_TOPIC
from shared.store.budget_interface import BudgetStore
from shared.store.interfaces import UsageStore, WorkspaceStore
from shared.topology import NOTIFICATION_KIND
from shared.usage.repricing import reprice
from shared.usage.rollups import DailyRollup

TICK_TOPIC: Final = "apex-budget-tick"
NOTIFY_TOPIC: Final = "apex-notify"
REPUBLISH_AFTER: Final = timedelta(minutes=2)


def fan_out(budgets: BudgetStore, bus: Bus, at: datetime) -> int:
    """One tick per workspace with budgets, all judging the moment ``at``; how many."""
    workspaces = budgets.workspaces_with_budgets()
    bus.publish_all([outgoing(TICK_TOPIC, BudgetTick(workspace_id=ws, at=at)) for ws in workspaces])
    return len(workspaces)


@dataclass(frozen=True, slots=True)
class Checked:
    budgets: int
    alerts: int  # thresholds crossed and anomalies found (new or not)
    published: list[str]  # notification ids published by this check

    def summary(self) -> str:
        return (
            f"checked {self.budgets} budgets: {self.alerts} alerts, {len(self.published)} published"
        )


def check_workspace(
    budgets: BudgetStore,
    usage: UsageStore,
    bus: Bus,
    workspace_id: str,
    at: datetime,
    *,
    workspaces: WorkspaceStore,
) -> Checked:
    """Judge the workspace's budgets at ``at`` and publish each alert not published yet.
    Spend is at the workspace's prices (its book, read only when it has budgets)."""
    month = Month(at)
    # A steady tick: every alert it judges crossed is in the fired set (read with them).
    found, fired = budgets.tick_view(workspace_id, month.key)
    if not found:
        return Checked(0, 0, [])
    book = workspaces.settings(workspace_id).price_book()
    rows = reprice(usage.daily(workspace_id, *month.read_range()), book)
    candidates, unknown = alerts_of(found, rows, month, at, fired, custom_prices=book.custom)
    held = budgets.existing(workspace_id, [c.notification_id for c in unknown])
    to_publish: list[NotificationDoc] = []
    known: list[str] = []
    for candidate in unknown:
        stored = held.get(candidate.notification_id)
        if stored is None:
            if budgets.create_notification(candidate):
                to_publish.append(candidate)
        elif stored.published:
            known.append(stored.notification_id)
        elif at - stored.created_at >= REPUBLISH_AFTER:
            to_publish.append(stored)
    if to_publish:
        bus.publish_all([m for doc in to_publish for m in messages_of(doc)])
        budgets.mark_published(workspace_id, [d.notification_id for d in to_publish])
    budgets.mark_fired(workspace_id, month.key, [*known, *(d.notification_id for d in to_publish)])
    return Checked(len(found), candidates, [d.notification_id for d in to_publish])


def alerts_of(
    found: Sequence[BudgetDoc],
    daily: Sequence[DailyRollup],
    month: Month,
    at: datetime,
    fired: Collection[str] = (),
    *,
    custom_prices: bool = False,
) -> tuple[int, list[NotificationDoc]]:
    """How many alerts the budgets call for at ``at``, and those not in ``fired`` (the
    fired ones are counted, not built: a steady tick builds nothing). ``custom_prices``:
    ``daily`` is at the workspace's own prices (the texts say "at your prices")."""
    count = 0
    out: list[NotificationDoc] = []
    totals = group_totals(daily, month)
    for budget in found:
        now = standing(budget, totals, month)
        for crossing in crossings(budget, now):
            count += 1
            if budget_notification_id(budget.budget_id, month, crossing.threshold) in fired:
                continue
            doc = budget_alert(budget, month, crossing, now, at, custom_prices=custom_prices)
            out.append(doc.model_copy(update={"deliveries": _deliveries([budget])}))
    anomaly = yesterdays_anomaly(daily, month)
    if anomaly is not None and found:
        count += 1
        doc = anomaly_alert(found[0].workspace_id, anomaly, at, custom_prices=custom_prices)
        if doc.notification_id not in fired:
            watching = [b for b in found if b.anomalies]
            out.append(doc.model_copy(update={"deliveries": _deliveries(watching)}))
    return count, out


def _deliveries(budgets: Sequence[BudgetDoc]) -> dict[str, Delivery]:
    """A pending delivery per webhook URL (two budgets with the same URL: sent once)."""
    seen: set[str] = set()
    out: dict[str, Delivery] = {}
    for budget in budgets:
        if budget.webhook_url is None or budget.webhook_url in seen:
            continue
        seen.add(budget.webhook_url)
        out[budget.budget_id] = Delivery(host=webhook_host(budget.webhook_url))
    return out


def messages_of(doc: NotificationDoc) -> list[Outgoing]:
    """What publishing a notification means: a delivery request per webhook, and the
    frame for the relays (every instance gets it; each sends it to its sockets of the
    workspace)."""
    out = [
        outgoing(
            NOTIFY_TOPIC,
            NotifyRequested(
                workspace_id=doc.workspace_id,
                notification_id=doc.notification_id,
                budget_id=budget_id,
            ),
        )
        for budget_id in sorted(doc.deliveries)
    ]
    frame = NotificationFrame(
        workspace_id=doc.workspace_id, notification=NotificationView.of(doc, None)
    )
    out.append(
        (
            EVENTS_TOPIC,
            frame.model_dump_json().encode(),
            {"kind": NOTIFICATION_KIND, "workspace_id": doc.workspace_id},
        )
    )
    return out
