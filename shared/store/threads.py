"""Threads and their messages: ``threads/{thread}``, ``threads/{thread}/messages/{msg}``."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final, Literal

from google.cloud import firestore
from google.cloud.firestore_v1 import FieldFilter, WriteBatch
from pydantic import BaseModel, ConfigDict

from shared.errors import NotFound
from shared.models.api import MessageView, ThreadSummary
from shared.models.findings import Recommendation

THREADS: Final = "threads"
MESSAGES: Final = "messages"
THREAD_LIST_LIMIT: Final = 100
MESSAGE_LIMIT: Final = 1000
TITLE_CHARS: Final = 80


class ThreadDoc(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    thread_id: str
    owner_uid: str
    workspace_id: str
    title: str
    created_at: datetime
    updated_at: datetime

    def summary(self) -> ThreadSummary:
        return ThreadSummary(thread_id=self.thread_id, title=self.title, updated_at=self.updated_at)


class MessageDoc(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    message_id: str
    role: Literal["user", "assistant"]
    text: str
    ts: datetime
    run_id: str | None = None
    client_msg_id: str | None = None
    recommendations: list[Recommendation] = []

    def view(self) -> MessageView:
        return MessageView(
            message_id=self.message_id,
            role=self.role,
            text=self.text,
            ts=self.ts,
            run_id=self.run_id,
            recommendations=self.recommendations,
        )


def title_of(text: str) -> str:
    """The thread's title: its first message, on one line, cut at a word."""
    line = " ".join(text.split())
    if len(line) <= TITLE_CHARS:
        return line
    cut = line[: TITLE_CHARS - 1].rsplit(" ", 1)[0]
    return cut + "…"


class ThreadStore:
    def __init__(self, client: firestore.Client) -> None:
        self._db = client

    def _thread(self, thread_id: str) -> firestore.DocumentReference:
        return self._db.collection(THREADS).document(thread_id)

    def get(self, thread_id: str) -> ThreadDoc | None:
        snap = self._thread(thread_id).get()
        return ThreadDoc.model_validate(snap.to_dict()) if snap.exists else None

    def get_owned(self, thread_id: str, uid: str) -> ThreadDoc:
        """The thread if ``uid`` owns it; another user's thread is "not found" (DESIGN §2)."""
        thread = self.get(thread_id)
        if thread is None or thread.owner_uid != uid:
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

    def create_in(self, batch: WriteBatch, thread: ThreadDoc) -> None:
        batch.create(self._thread(thread.thread_id), thread.model_dump())

    def touch_in(self, batch: WriteBatch, thread_id: str, when: datetime) -> None:
        batch.update(self._thread(thread_id), {"updated_at": when})

    def add_message_in(self, batch: WriteBatch, thread_id: str, message: MessageDoc) -> None:
        ref = self._thread(thread_id).collection(MESSAGES).document(message.message_id)
        batch.create(ref, _message_doc(message))


def _message_doc(message: MessageDoc) -> dict[str, Any]:
    doc = message.model_dump()
    doc["recommendations"] = [r.model_dump(mode="json") for r in message.recommendations]
    return doc
