"""``budget_worker`` and ``notify_worker`` (DESIGN §2, §11): push workers like the others
(``shared.edge.serve_push``: 204 acks, an error status makes Pub/Sub retry and then
dead-letter)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

from shared.budgets import notify, tick
from shared.edge import PushWorker
from shared.models.budgets import BudgetTick, NotifyRequested
from shared.models.messages import PushEnvelope

if TYPE_CHECKING:
    from shared.services import Services

# Pub/Sub's publish times carry nanoseconds; datetime reads at most microseconds.
_FRACTION: Final = re.compile(r"(\.\d{6})\d+")


def published_at(envelope: PushEnvelope) -> datetime | None:
    """When Pub/Sub accepted the message (the same on every redelivery)."""
    text = envelope.message.publish_time
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(_FRACTION.sub(r"\1", text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _tick(services: Services, message: BudgetTick, envelope: PushEnvelope) -> str:
    at = message.at or published_at(envelope) or datetime.now(UTC)
    if message.workspace_id is None:
        count = tick.fan_out(services.budgets, services.bus, at)
        return f"budget tick: {count} workspaces to check"
    checked = tick.check_workspace(
        services.budgets,
        services.usage,
        services.bus,
        message.workspace_id,
        at,
        workspaces=services.workspaces,
    )
    return checked.summary()


def _notify(services: Services, message: NotifyRequested, envelope: PushEnvelope) -> str:
    return notify.deliver(
        services.budgets,
        message,
        envelope.delivery_attempt or 1,
        datetime.now(UTC),
        allow_loopback=services.settings.webhooks_allow_loopback,
    )


BUDGET_WORKER: Final = PushWorker(lambda envelope: envelope.decode(BudgetTick), _tick)
NOTIFY_WORKER: Final = PushWorker(lambda envelope: envelope.decode(NotifyRequested), _notify)
