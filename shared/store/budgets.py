"""The budget store in Firestore (``BudgetStore``, DESIGN §11).

Layout, below ``workspaces/{ws}``: ``budgets/{budget_id}``, ``secrets/webhook`` (the signing
secret), ``notifications/{id}`` (the id is the alert's once-only key, created if absent),
``notification_reads/{uid}`` (until when each member has read them); top-level
``budget_workspaces/{ws}``, the index of workspaces with budgets that the tick walks (written
in the same batch as the budgets: no collection-group queries, DESIGN §9).

A budget change is one batch that creates the workspace's next audit entry and moves its
``audit_seq``, exactly as ``FirestoreWorkspaceStore.commit`` does: both kinds of change are
serialized through the same sequence.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final

from google.api_core.exceptions import AlreadyExists
from google.cloud import firestore

from shared.models.budgets import BudgetDoc, Delivery, NotificationDoc, WebhookSecretDoc
from shared.store.budget_interface import BudgetChange
from shared.store.interfaces import CreateConflict
from shared.store.workspaces import AUDIT, WORKSPACES, audit_id

BUDGETS: Final = "budgets"
SECRETS: Final = "secrets"
SIGNING_DOC: Final = "webhook"
NOTIFICATIONS: Final = "notifications"
READS: Final = "notification_reads"
INDEX: Final = "budget_workspaces"


class FirestoreBudgetStore:
    def __init__(self, client: firestore.Client) -> None:
        self._db = client

    def _workspace(self, workspace_id: str) -> firestore.DocumentReference:
        return self._db.collection(WORKSPACES).document(workspace_id)

    def _below(self, workspace_id: str, collection: str, doc: str) -> firestore.DocumentReference:
        ref: firestore.DocumentReference = (
            self._workspace(workspace_id).collection(collection).document(doc)
        )
        return ref

    # --- budgets and the secret ----------------------------------------------------------------

    def budgets(self, workspace_id: str) -> list[BudgetDoc]:
        found = [
            BudgetDoc.model_validate(snap.to_dict())
            for snap in self._workspace(workspace_id).collection(BUDGETS).stream()
        ]
        return sorted(found, key=lambda b: b.budget_id)

    def budget(self, workspace_id: str, budget_id: str) -> BudgetDoc | None:
        snap = self._below(workspace_id, BUDGETS, budget_id).get()
        return BudgetDoc.model_validate(snap.to_dict()) if snap.exists else None

    def webhook_secret(self, workspace_id: str) -> WebhookSecretDoc | None:
        snap = self._below(workspace_id, SECRETS, SIGNING_DOC).get()
        return WebhookSecretDoc.model_validate(snap.to_dict()) if snap.exists else None

    def commit(self, change: BudgetChange) -> None:
        ws = change.entry.workspace_id
        batch = self._db.batch()
        batch.create(self._below(ws, AUDIT, audit_id(change.entry.seq)), change.entry.model_dump())
        batch.update(self._workspace(ws), {"audit_seq": change.entry.seq})
        for budget in change.budgets:
            batch.set(self._below(ws, BUDGETS, budget.budget_id), budget.model_dump())
        for budget_id in change.removed_budgets:
            batch.delete(self._below(ws, BUDGETS, budget_id))
        if change.webhook_secret is not None:
            batch.set(self._below(ws, SECRETS, SIGNING_DOC), change.webhook_secret.model_dump())
        if change.indexed is True:
            batch.set(self._db.collection(INDEX).document(ws), {"workspace_id": ws})
        elif change.indexed is False:
            batch.delete(self._db.collection(INDEX).document(ws))
        try:
            batch.commit()
        except AlreadyExists as e:
            raise CreateConflict(str(e)) from e

    def workspaces_with_budgets(self) -> list[str]:
        return sorted(snap.id for snap in self._db.collection(INDEX).stream())

    # --- notifications -------------------------------------------------------------------------

    def notifications(self, workspace_id: str, limit: int) -> list[NotificationDoc]:
        query = (
            self._workspace(workspace_id)
            .collection(NOTIFICATIONS)
            .order_by("created_at", direction=firestore.Query.DESCENDING)
            .limit(limit)
        )
        return [NotificationDoc.model_validate(snap.to_dict()) for snap in query.stream()]

    def notification(self, workspace_id: str, notification_id: str) -> NotificationDoc | None:
        snap = self._below(workspace_id, NOTIFICATIONS, notification_id).get()
        return NotificationDoc.model_validate(snap.to_dict()) if snap.exists else None

    def existing(self, workspace_id: str, ids: Sequence[str]) -> dict[str, NotificationDoc]:
        if not ids:
            return {}
        refs = [self._below(workspace_id, NOTIFICATIONS, i) for i in ids]
        return {
            snap.id: NotificationDoc.model_validate(snap.to_dict())
            for snap in self._db.get_all(refs)
            if snap.exists
        }

    def create_notification(self, doc: NotificationDoc) -> bool:
        try:
            self._below(doc.workspace_id, NOTIFICATIONS, doc.notification_id).create(
                doc.model_dump()
            )
        except AlreadyExists:
            return False
        return True

    def mark_published(self, workspace_id: str, notification_id: str) -> None:
        self._below(workspace_id, NOTIFICATIONS, notification_id).update({"published": True})

    def record_delivery(
        self, workspace_id: str, notification_id: str, budget_id: str, delivery: Delivery
    ) -> None:
        # Budget ids are lower-case hex: a plain field path.
        self._below(workspace_id, NOTIFICATIONS, notification_id).update(
            {f"deliveries.{budget_id}": delivery.model_dump()}
        )

    def read_up_to(self, workspace_id: str, uid: str) -> datetime | None:
        snap = self._below(workspace_id, READS, uid).get()
        if not snap.exists:
            return None
        up_to: datetime = snap.get("up_to")
        return up_to

    def mark_read(self, workspace_id: str, uid: str, up_to: datetime) -> datetime:
        held = self.read_up_to(workspace_id, uid)
        if held is not None and held >= up_to:
            return held
        self._below(workspace_id, READS, uid).set({"uid": uid, "up_to": up_to})
        return up_to
