"""What the stores keep (DESIGN §4), as the rest of Apex reads and writes it: runs, their
step claims, threads and messages, a workspace's catalogue, idempotency keys.

Plain models with no storage client: the store interfaces (``shared.store.interfaces``)
speak in them, and each implementation maps them onto its own layout.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.models.api import TERMINAL_STATUSES, MessageView, RunStatus, RunView, ThreadSummary
from shared.models.events import RunEvent
from shared.models.findings import Recommendation
from shared.models.messages import Step
from shared.price_book import PriceBook, PriceEntry
from shared.workspaces.keys import KeyScope
from shared.workspaces.roles import Role

TITLE_CHARS = 80
# Per user (uid, or an API key's workspace for `workspace_calls`) and per workspace.
LimitKind = Literal["function_calls", "chat_messages", "workspace_calls"]


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
    # What the step found for the thread's context (DESIGN §13) that its result does not
    # hold (the data step: its anomalies' drivers on their days); the last step keeps it.
    context: dict[str, Any] | None = None


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


# --- workspaces (DESIGN §9) -------------------------------------------------------------------


class WorkspaceDoc(BaseModel):
    """``workspaces/{ws}`` (the same document also holds the usage ``Catalogue``)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    workspace_id: str
    name: str
    created_by: str
    created_at: datetime
    personal: bool = False
    # The sequence number of the last audit entry: every change creates the next one, so
    # two changes made from the same snapshot cannot both commit (create-if-absent).
    audit_seq: int = 0


class MemberDoc(BaseModel):
    """``workspaces/{ws}/members/{uid}``."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    workspace_id: str
    uid: str
    role: Role
    email: str | None
    added_by: str
    added_at: datetime


class MyWorkspace(BaseModel):
    """``users/{uid}/workspaces/{ws}``: a workspace of the user's, with their role."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    workspace_id: str
    name: str
    role: Role


class InviteDoc(BaseModel):
    """``workspaces/{ws}/invites/{id}``, mirrored at ``invites/{id}``."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    invite_id: str
    workspace_id: str
    email: str  # lower-cased
    role: Role
    invited_by: str
    created_at: datetime
    expires_at: datetime
    accepted_by: str | None = None
    accepted_at: datetime | None = None


class ApiKeyDoc(BaseModel):
    """``workspaces/{ws}/api_keys/{key_id}``, mirrored at ``api_keys/{key_id}``; never the
    secret, only its keyed hash."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    key_id: str
    workspace_id: str
    name: str
    scope: KeyScope
    prefix: str
    secret_hash: str
    created_by: str
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None


class AuditEntry(BaseModel):
    """``workspaces/{ws}/audit/{seq}``: who changed what, when."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    seq: int
    workspace_id: str
    actor: str  # a uid
    action: str  # e.g. "member.role_changed"
    target: str | None = None
    detail: dict[str, Any] = {}
    at: datetime


class PriceEntryDoc(BaseModel):
    """A negotiated price (``shared.price_book.PriceEntry``), USD per million tokens; kept as
    decimal strings, so a price reads back exactly as it was set."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    provider: str
    model: str
    input_mtok: Decimal | None = None
    cached_input_mtok: Decimal | None = None
    output_mtok: Decimal | None = None
    discount_pct: Decimal | None = None
    from_: date | None = Field(default=None, alias="from")

    def entry(self) -> PriceEntry:
        return PriceEntry(
            provider=self.provider,
            model=self.model,
            input_mtok=self.input_mtok,
            cached_input_mtok=self.cached_input_mtok,
            output_mtok=self.output_mtok,
            discount_pct=self.discount_pct,
            from_=self.from_,
        )


class ModelRefDoc(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    provider: str
    model: str


class WorkspaceSettingsDoc(BaseModel):
    """``workspaces/{ws}/config/settings``: the workspace's prices (``PUT /{ws}/prices``)
    and its allowed models (``PUT /{ws}/settings``; None: every model)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    prices: tuple[PriceEntryDoc, ...] = ()
    allowed_models: tuple[ModelRefDoc, ...] | None = None

    def price_book(self) -> PriceBook:
        if not self.prices and self.allowed_models is None:
            return PriceBook.LIST
        allowed = (
            None
            if self.allowed_models is None
            else [(m.provider, m.model) for m in self.allowed_models]
        )
        return PriceBook.of([p.entry() for p in self.prices], allowed)
