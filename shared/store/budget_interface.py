"""What the budget rules, the tick and delivery may ask of the budget store (DESIGN §11), and
the one change of a workspace's budgets written in one batch. Nothing here imports a storage
client; ``shared.store.budgets`` is the Firestore implementation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from shared.models.budgets import BudgetDoc, Delivery, NotificationDoc, WebhookSecretDoc
from shared.store.documents import AuditEntry


@dataclass(frozen=True, slots=True)
class BudgetChange:
    """One accepted change of a workspace's budgets or webhook secret, with its audit entry
    (created at the workspace's next sequence number, as every workspace change is: a change
    decided from a snapshot another change moved on from conflicts, ``CreateConflict``)."""

    entry: AuditEntry
    budgets: tuple[BudgetDoc, ...] = ()  # created or replaced
    removed_budgets: tuple[str, ...] = ()
    # Every budget of the workspace once the change is made (None: the budgets do not
    # change): what listings and the tick read, and whether the workspace stays in the
    # tick's index (none left: it leaves it).
    all_budgets: tuple[BudgetDoc, ...] | None = None
    # The signing secret: created (its first budget with a webhook) or replaced (rotated).
    webhook_secret: WebhookSecretDoc | None = None


class BudgetStore(Protocol):
    # --- budgets and the secret ----------------------------------------------------------------

    def budgets(self, workspace_id: str) -> list[BudgetDoc]:
        """Every budget of the workspace, by id (a few page documents, not one per budget)."""
        ...

    def budget(self, workspace_id: str, budget_id: str) -> BudgetDoc | None: ...

    def webhook_secret(self, workspace_id: str) -> WebhookSecretDoc | None: ...

    def commit(self, change: BudgetChange) -> None:
        """Write the change in one batch; ``CreateConflict`` (nothing written) if its audit
        entry exists already."""
        ...

    def workspaces_with_budgets(self) -> list[str]:
        """The index the tick walks (no collection-group queries: DESIGN §9)."""
        ...

    # --- notifications -------------------------------------------------------------------------

    def notifications(self, workspace_id: str, limit: int) -> list[NotificationDoc]:
        """The newest ``limit``, newest first."""
        ...

    def notification(self, workspace_id: str, notification_id: str) -> NotificationDoc | None: ...

    def existing(self, workspace_id: str, ids: Sequence[str]) -> dict[str, NotificationDoc]:
        """Those of ``ids`` that exist, in one read."""
        ...

    def fired(self, workspace_id: str, month: str) -> set[str]:
        """The alerts of ``month`` (YYYYMM, the tick's) known created and published: a
        tick looks up only the others."""
        ...

    def tick_view(self, workspace_id: str, month: str) -> tuple[list[BudgetDoc], set[str]]:
        """``budgets`` and ``fired`` together, in one read: what every tick starts with."""
        ...

    def mark_fired(self, workspace_id: str, month: str, ids: Sequence[str]) -> None: ...

    def create_notification(self, doc: NotificationDoc) -> bool:
        """Create it unless its id exists (the alert's once-only key); whether this call did."""
        ...

    def mark_published(self, workspace_id: str, notification_ids: Sequence[str]) -> None:
        """Mark them published, in one write."""
        ...

    def record_delivery(
        self, workspace_id: str, notification_id: str, budget_id: str, delivery: Delivery
    ) -> None:
        """Set one webhook's delivery state (only that field of the notification)."""
        ...

    def read_up_to(self, workspace_id: str, uid: str) -> datetime | None:
        """Until when the user has read the workspace's notifications."""
        ...

    def mark_read(self, workspace_id: str, uid: str, up_to: datetime) -> datetime:
        """Move the user's read mark to ``up_to`` (never back); the mark now."""
        ...
