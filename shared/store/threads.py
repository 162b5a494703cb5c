"""The thread store in Firestore (``ThreadStore``): ``threads/{thread}``,
``threads/{thread}/messages/{msg}``."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from google.cloud import firestore
from google.cloud.firestore_v1 import FieldFilter

from shared.errors import NotFound
from shared.models.api import MessageView, ThreadSummary
from shared.store.documents import MessageDoc, ThreadDoc
from shared.store.interfaces import UnitOfWork
from shared.store.storage import batch_of

THREADS: Final = "threads"
MESSAGES: Final = "messages"
THREAD_LIST_LIMIT: Final = 100
MESSAGE_LIMIT: Final = 1000


class FirestoreThreadStore:
    def __init__(self, client: firestore.Client) -> None:
        self._db = client

    def _thread(self, thread_id: str) -> firestore.DocumentReference:
        return self._db.collection(THREADS).document(thread_id)

    def get(self, thread_id: str) -> ThreadDoc | None:
        snap = self._thread(thread_id).get()
        return ThreadDoc.model_validate(snap.to_dict()) if snap.exists else None

    def get_owned(self, thread_id: str, uid: str, workspace_id: str) -> ThreadDoc:
        """The thread if ``uid`` owns it in ``workspace_id``; another user's thread, or one of
        another workspace, is "not found" (DESIGN §2, §9)."""
        thread = self.get(thread_id)
        if thread is None or thread.owner_uid != uid or thread.workspace_id != workspace_id:
            raise NotFound(f"no thread {thread_id}")
        return thread

    def list_for(self, uid: str, workspace_id: str) -> list[ThreadSummary]:
        query = (
            self._db.collection(THREADS)
            .where(filter=FieldFilter("owner_uid", "==", uid))
            .where(filter=FieldFilter("workspace_id", "==", workspace_id))
            .order_by("updated_at", direction=firestore.Query.DESCENDING)
            .limit(THREAD_LIST_LIMIT)
        )
        return [ThreadDoc.model_validate(s.to_dict()).summary() for s in query.stream()]

    def messages(self, thread_id: str) -> list[MessageView]:
        query = self._thread(thread_id).collection(MESSAGES).order_by("ts").limit(MESSAGE_LIMIT)
        return [MessageDoc.model_validate(s.to_dict()).view() for s in query.stream()]

    def create_in(self, work: UnitOfWork, thread: ThreadDoc) -> None:
        batch_of(work).create(self._thread(thread.thread_id), thread.model_dump())

    def touch_in(self, work: UnitOfWork, thread_id: str, when: datetime) -> None:
        batch_of(work).update(self._thread(thread_id), {"updated_at": when})

    def add_message_in(self, work: UnitOfWork, thread_id: str, message: MessageDoc) -> None:
        ref = self._thread(thread_id).collection(MESSAGES).document(message.message_id)
        batch_of(work).create(ref, _message_doc(message))


def _message_doc(message: MessageDoc) -> dict[str, Any]:
    doc = message.model_dump()
    doc["recommendations"] = [r.model_dump(mode="json") for r in message.recommendations]
    return doc
