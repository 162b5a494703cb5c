"""What the stores keep (DESIGN §4), as the rest of Apex reads and writes it: runs, their
step claims, threads and messages, a workspace's catalogue, idempotency keys.

Plain models with no storage client: the store interfaces (``shared.store.interfaces``)
speak in them, and each implementation maps them onto its own layout.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from shared.models.api import TERMINAL_STATUSES, MessageView, RunStatus, RunView, ThreadSummary
from shared.models.events import RunEvent
from shared.models.findings import Recommendation
from shared.models.messages import Step

TITLE_CHARS = 80
LimitKind = Literal["function_calls", "chat_messages"]


class RunDoc(BaseModel):
    """``runs/{run}``."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    run_id: str
    thread_id: str
    uid: str
    workspace_id: str
    message_id: str
    question: str
    status: RunStatus
    step: str | None = None
    reason: str | None = None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    last_seq: int = 0
    relay: str = ""
    cancel_requested: bool = False
    last_error: str | None = None
    attempt: int = 0

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def view(self) -> RunView:
        return RunView(
            run_id=self.run_id,
            thread_id=self.thread_id,
            status=self.status,
            reason=self.reason,
            created_at=self.created_at,
            updated_at=self.updated_at,
        )


class StepMarker(BaseModel):
    """``runs/{run}/steps/{marker}``: a committed step and what remains to do after it."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    step: str
    first_seq: int
    last_seq: int
    # The step to hand the run to (None: the run ended, or waits for nothing).
    next_step: Step | None = None
    terminal: bool = False
    published: bool = False
    result: dict[str, Any] | None = None
    # What the step hands on besides its result, as the JSON text it is stored as (the data
    # step: the rollups it read; serialized once, by the step, which checks its size).
    handoff: str | None = None


class Committed(BaseModel):
    """A step's commit: its numbered events and its claim (what remains to publish)."""

    model_config = ConfigDict(frozen=True)

    events: list[RunEvent]
    marker: StepMarker


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


class Catalogue(BaseModel):
    """``workspaces/{ws}``: the names seen in its usage (triage matches mentions to them)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    records: int = 0
    models: list[str] = []
    features: list[str] = []
    providers: list[str] = []
    first_day: int | None = None  # YYYYMMDD
    last_day: int | None = None

    @property
    def has_data(self) -> bool:
        return self.records > 0


def dedup_key(scope: str, uid: str, key: str) -> str:
    """The id an idempotency key is kept under: hashed, so any client string is a valid id."""
    return hashlib.sha256(f"{scope}\x00{uid}\x00{key}".encode()).hexdigest()
