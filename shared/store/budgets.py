"""The budget store in Firestore (``BudgetStore``, DESIGN §11).

Layout, below ``workspaces/{ws}``: ``budgets/{budget_id}`` (one per budget, for point
reads); ``budget_pages/{nn}`` (every budget again, ``PAGE`` to a document as one JSON string,
rewritten with each change: a listing or a tick reads a few documents, not 1,000);
``secrets/webhook`` (the signing secret); ``notifications/{id}`` (the id is the alert's
once-only key, created if absent); ``alert_months/{YYYYMM}`` (the alerts known fired: a
steady tick reads one document instead of every alert it judges crossed);
``notification_reads/{uid}`` (until when each member has read them). Top-level:
``budget_workspaces/{ws}``, the index of workspaces with budgets that the tick walks
(written in the same batch as the budgets: no collection-group queries, DESIGN §9).

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
from pydantic import TypeAdapter

from shared.budgets.limits import MAX_BUDGETS
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
PAGES: Final = "budget_pages"
FIRED: Final = "alert_months"
# Budgets a page document holds: the largest budget (a 2 KiB webhook URL, three 128-character
# scope names, a 100-character name, all 4-byte characters) is under 5 KiB, so a page stays
# well under Firestore's 1 MiB a document.
PAGE: Final = 100
MAX_PAGES: Final = -(-MAX_BUDGETS // PAGE)
# A page's budgets as one JSON string: read back without the client copying every nested
# value of the document (a snapshot's to_dict() deep-copies it).
_PAGE: Final = TypeAdapter(list[BudgetDoc])


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

    def _pages(self, workspace_id: str) -> list[firestore.DocumentReference]:
        return [self._below(workspace_id, PAGES, f"{n:02d}") for n in range(MAX_PAGES)]

    def budgets(self, workspace_id: str) -> list[BudgetDoc]:
        return self.tick_view(workspace_id, None)[0]

    def tick_view(self, workspace_id: str, month: str | None) -> tuple[list[BudgetDoc], set[str]]:
        # The pages have fixed ids: they and the month's fired set are one batched read.
        refs = self._pages(workspace_id)
        if month is not None:
            refs.append(self._below(workspace_id, FIRED, month))
        found: list[BudgetDoc] = []
        fired: set[str] = set()
        for snap in self._db.get_all(refs):
            if not snap.exists:
                continue
            data = snap.to_dict() or {}
            if snap.reference.parent.id == FIRED:
                fired = set(data.get("fired", []))
            else:
                found += _PAGE.validate_json(data["budgets"])
        return sorted(found, key=lambda b: b.budget_id), fired

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
        if change.all_budgets is not None:
            ordered = sorted(change.all_budgets, key=lambda b: b.budget_id)
            pages = [ordered[i : i + PAGE] for i in range(0, len(ordered), PAGE)]
            for number, ref in enumerate(self._pages(ws)):
                if number < len(pages):
                    batch.set(ref, {"budgets": _PAGE.dump_json(pages[number]).decode()})
                else:
                    batch.delete(ref)
            index = self._db.collection(INDEX).document(ws)
            if ordered:
                batch.set(index, {"workspace_id": ws})
            else:
                batch.delete(index)
        if change.webhook_secret is not None:
            batch.set(self._below(ws, SECRETS, SIGNING_DOC), change.webhook_secret.model_dump())
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

    def fired(self, workspace_id: str, month: str) -> set[str]:
        snap = self._below(workspace_id, FIRED, month).get()
        return set((snap.to_dict() or {}).get("fired", [])) if snap.exists else set()

    def mark_fired(self, workspace_id: str, month: str, ids: Sequence[str]) -> None:
        if ids:
            self._below(workspace_id, FIRED, month).set(
                {"fired": firestore.ArrayUnion(list(ids))}, merge=True
            )

    def create_notification(self, doc: NotificationDoc) -> bool:
        try:
            self._below(doc.workspace_id, NOTIFICATIONS, doc.notification_id).create(
                doc.model_dump()
            )
        except AlreadyExists:
            return False
        return True

    def mark_published(self, workspace_id: str, notification_ids: Sequence[str]) -> None:
        batch = self._db.batch()
        for notification_id in notification_ids:
            batch.update(
                self._below(workspace_id, NOTIFICATIONS, notification_id), {"published": True}
            )
        batch.commit()

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
