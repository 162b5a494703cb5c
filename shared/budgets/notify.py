"""Delivering a notification to a budget's webhook (DESIGN §11), once per delivery request.

``notify_worker`` reads the stored notification, the budget (its webhook URL as it is now:
a webhook removed meanwhile is skipped) and the workspace's signing secret, and POSTs the
body built from the stored notification alone (the same bytes on every attempt), signed
``X-Apex-Signature: sha256=…``. A 2xx records the delivery; anything else (a non-2xx, a
timeout, an address refused) records the attempt and its reason and fails the push, so
Pub/Sub retries; after the subscription's attempts the dead letter reaches
``deadletter_worker``, which records the delivery as undelivered (``dead_letter``).

A delivery request for what was delivered already (a duplicate publish or a redelivery) is
acknowledged without sending again. Nothing here logs the URL's path or query (a Slack
webhook URL is itself a credential) or the secret.
"""

from __future__ import annotations

import json
import logging
import ssl
from datetime import datetime

from shared.budgets.addresses import UnsafeWebhook
from shared.budgets.delivery import DeliveryFailed, post
from shared.budgets.rules import webhook_body
from shared.budgets.service import webhook_host
from shared.budgets.signing import SIGNATURE_HEADER, signature
from shared.errors import Unavailable
from shared.models.budgets import Delivery, NotifyRequested
from shared.store.budget_interface import BudgetStore

log = logging.getLogger(__name__)

DONE = ("delivered", "undelivered", "skipped")


def body_bytes(body: dict[str, object]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def deliver(
    budgets: BudgetStore,
    message: NotifyRequested,
    attempt: int,
    now: datetime,
    *,
    allow_loopback: bool,
    context: ssl.SSLContext | None = None,
) -> str:
    """Deliver once; what happened (raises ``Unavailable`` for Pub/Sub to retry)."""
    ws, nid, budget_id = message.workspace_id, message.notification_id, message.budget_id
    doc = budgets.notification(ws, nid)
    if doc is None:
        log.error("a delivery request names no notification", extra={"fields": {"id": nid}})
        return f"no notification {nid}: nothing to deliver"
    held = doc.deliveries.get(budget_id, Delivery())
    if held.status in DONE:
        return f"notification {nid} to budget {budget_id}: {held.status} already"
    budget = budgets.budget(ws, budget_id)
    if budget is None or budget.webhook_url is None:
        budgets.record_delivery(ws, nid, budget_id, held.model_copy(update={"status": "skipped"}))
        return f"budget {budget_id} has no webhook now: skipped"
    secret = budgets.webhook_secret(ws)
    if secret is None:
        # Made with the first budget that had a webhook and never deleted: a fault.
        raise RuntimeError(f"workspace {ws} has a webhook but no signing secret")
    body = body_bytes(webhook_body(doc))
    headers = {
        SIGNATURE_HEADER: signature(body, secret.secret),
        "X-Apex-Notification": nid,
        "X-Apex-Delivery-Attempt": str(attempt),
    }
    host = webhook_host(budget.webhook_url)
    try:
        delivered = post(
            budget.webhook_url, body, headers, allow_loopback=allow_loopback, context=context
        )
    except (UnsafeWebhook, DeliveryFailed) as e:
        reason = str(e)[:500]
        failed = Delivery(status="pending", attempts=attempt, last_error=reason, at=now, host=host)
        budgets.record_delivery(ws, nid, budget_id, failed)
        log.warning(
            "a webhook delivery failed",
            extra={
                "fields": {"notification": nid, "host": host, "attempt": attempt, "error": reason}
            },
        )
        raise Unavailable(f"webhook delivery to {host} failed: {reason}") from e
    budgets.record_delivery(
        ws, nid, budget_id, Delivery(status="delivered", attempts=attempt, at=now, host=host)
    )
    log.info(
        "a webhook was delivered",
        extra={
            "fields": {
                "notification": nid,
                "host": host,
                "status": delivered.status,
                "elapsed_ms": round(delivered.elapsed_s * 1000),
            }
        },
    )
    return f"delivered {nid} to {host} ({delivered.status})"


def dead_letter(budgets: BudgetStore, message: NotifyRequested, now: datetime) -> str:
    """Every attempt failed: record the delivery as undelivered, with the last reason."""
    ws, nid, budget_id = message.workspace_id, message.notification_id, message.budget_id
    doc = budgets.notification(ws, nid)
    if doc is None:
        return f"no notification {nid}: nothing to record"
    held = doc.deliveries.get(budget_id, Delivery())
    if held.status == "delivered":
        return f"notification {nid} to budget {budget_id}: delivered already"
    undelivered = held.model_copy(
        update={
            "status": "undelivered",
            "at": now,
            "last_error": held.last_error or "dead-lettered",
        }
    )
    budgets.record_delivery(ws, nid, budget_id, undelivered)
    log.error(
        "a notification was not delivered",
        extra={
            "fields": {
                "notification": nid,
                "host": held.host,
                "attempts": held.attempts,
                "error": undelivered.last_error,
            }
        },
    )
    return f"recorded {nid} to budget {budget_id} as undelivered"
