"""What the rest of Apex may ask of its stores: one protocol per store, the unit of work
that commits writes of several stores together, and the one storage error callers handle.

Agents, the pipeline, the submitter, the endpoints and the relay depend on these protocols
only; the Firestore implementations (``FirestoreRunStore`` in ``runs.py`` and so on, built
in ``shared.services``) are the only ones. Nothing here imports a storage client.

A write that must be atomic with writes of other stores is *staged* into a ``UnitOfWork``
by the store's ``*_in`` method and happens when the unit commits: all of it, or none of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from shared.models.api import MessageView, ThreadSummary
from shared.models.context import ThreadContext
from shared.models.events import PendingEvent, RunEvent
from shared.models.messages import Step
from shared.models.usage import UsageRecord
from shared.store.documents import (
    ApiKeyDoc,
    AuditEntry,
    Catalogue,
    Committed,
    InviteDoc,
    LimitKind,
    MemberDoc,
    MessageDoc,
    MyWorkspace,
    RunDoc,
    StepMarker,
    ThreadDoc,
    WorkspaceDoc,
    WorkspaceSettingsDoc,
)
from shared.usage.rollups import DailyRollup, UserDailyRollup


class CreateConflict(Exception):
    """A create-if-absent write found its document already there. When a unit of work
    raises it, nothing the unit staged was written (a duplicate, or a racing writer won)."""


class UnitOfWork(Protocol):
    """Writes staged by the stores' ``*_in`` methods, committed together: what a step or
    a chat submission writes. A unit commits once."""

    def commit(self) -> None:
        """Apply every staged write atomically; ``CreateConflict`` (and nothing written) if
        a staged create finds its document."""
        ...


class Storage(Protocol):
    """The database behind the stores: where units of work begin, and whether it answers."""

    def begin(self) -> UnitOfWork: ...

    def probe(self, timeout_s: float) -> None:
        """Return if the storage answers a read within ``timeout_s``; raise what it said
        otherwise (readiness checks, DESIGN §7)."""
        ...


class RunStore(Protocol):
    """Runs, their numbered events, their step claims, the one-run-per-thread lock, and each
    thread's context (what its latest completed run was asked and found, DESIGN §13)."""

    def get(self, run_id: str) -> RunDoc | None: ...

    def get_owned(self, run_id: str, uid: str, workspace_id: str) -> RunDoc:
        """The run if ``uid`` owns it in ``workspace_id``; else ``NotFound`` (existence is
        not revealed)."""
        ...

    def create_in(self, work: UnitOfWork, run: RunDoc) -> None: ...

    def events_after(self, run_id: str, after_seq: int) -> list[RunEvent]:
        """Every event with ``seq > after_seq``, in order."""
        ...

    def get_with_markers(
        self, run_id: str, names: Sequence[str]
    ) -> tuple[RunDoc | None, dict[str, StepMarker | None]]:
        """The run and its named step claims, in one round trip."""
        ...

    def marker(self, run_id: str, name: str) -> StepMarker | None: ...

    def commit_in(
        self,
        work: UnitOfWork,
        run: RunDoc,
        marker_name: str,
        pending: Sequence[PendingEvent],
        run_fields: dict[str, Any],
        *,
        next_step: Step | None = None,
        terminal: bool = False,
        result: dict[str, Any] | None = None,
        handoff: str | None = None,
        context: dict[str, Any] | None = None,
    ) -> Committed:
        """Stage a step's commit: its claim ``marker_name`` (with its result, hand-off and
        context findings) and its events (both created, so a second commit of the step
        conflicts), numbered after the run's ``last_seq``, and the run's new fields. Returns
        what it will be once ``work`` commits."""
        ...

    def commit(
        self,
        run: RunDoc,
        marker_name: str,
        pending: Sequence[PendingEvent],
        run_fields: dict[str, Any],
        *,
        next_step: Step | None = None,
        terminal: bool = False,
        result: dict[str, Any] | None = None,
        handoff: str | None = None,
        context: dict[str, Any] | None = None,
    ) -> Committed | None:
        """``commit_in`` a unit of its own, committed; None if another delivery or writer
        got there first (nothing was written)."""
        ...

    def mark_published(self, run_id: str, marker_name: str) -> None: ...

    def update(self, run_id: str, fields: dict[str, Any]) -> None: ...

    def try_lock(self, thread_id: str, run_id: str) -> bool:
        """Whether ``run_id`` holds the thread's lock (taking it if it is free)."""
        ...

    def lock_holder(self, thread_id: str) -> str | None: ...

    def release_lock(self, thread_id: str, run_id: str) -> None:
        """Free the lock if ``run_id`` holds it."""
        ...

    def oldest_queued(self, thread_id: str) -> RunDoc | None: ...

    def thread_context(self, thread_id: str) -> ThreadContext | None:
        """The thread's context, as its latest completed run left it; None before that."""
        ...

    def save_context_in(self, work: UnitOfWork, thread_id: str, context: ThreadContext) -> None:
        """Stage the thread's new context (written with the run's answer, or not at all)."""
        ...


class ThreadStore(Protocol):
    """Threads and their messages."""

    def get(self, thread_id: str) -> ThreadDoc | None: ...

    def get_owned(self, thread_id: str, uid: str, workspace_id: str) -> ThreadDoc:
        """The thread if ``uid`` owns it in ``workspace_id``; else ``NotFound`` (existence
        is not revealed)."""
        ...

    def list_for(self, uid: str, workspace_id: str) -> list[ThreadSummary]: ...

    def messages(self, thread_id: str) -> list[MessageView]: ...

    def create_in(self, work: UnitOfWork, thread: ThreadDoc) -> None: ...

    def touch_in(self, work: UnitOfWork, thread_id: str, when: datetime) -> None: ...

    def add_message_in(self, work: UnitOfWork, thread_id: str, message: MessageDoc) -> None:
        """Stage the message's creation (a second one with its id conflicts)."""
        ...


class UsageStore(Protocol):
    """A workspace's usage rollups, its catalogue, and kept dead-lettered batches."""

    def catalogue(self, workspace_id: str) -> Catalogue: ...

    def daily(self, workspace_id: str, first_day: str, last_day: str) -> list[DailyRollup]: ...

    def users(self, workspace_id: str, first_day: str, last_day: str) -> list[UserDailyRollup]: ...

    def apply(self, workspace_id: str, records: Sequence[UsageRecord]) -> int:
        """Add the records to the rollups, each at most once; how many were new."""
        ...

    def keep_dead_batch(self, message_id: str, content: dict[str, Any]) -> None: ...


class DedupStore(Protocol):
    """Idempotency keys (ids from ``documents.dedup_key``) with an expiry."""

    def create_in(
        self, work: UnitOfWork, key: str, value: dict[str, Any], expires_at: datetime
    ) -> None: ...

    def get(self, key: str, now: datetime) -> dict[str, Any] | None:
        """The value held under ``key``, unless absent or expired."""
        ...

    def claim(
        self, key: str, value: dict[str, Any], now: datetime, ttl: timedelta
    ) -> dict[str, Any] | None:
        """Create the key with ``value``; None if this call created it, else the value held."""
        ...

    def update(self, key: str, value: dict[str, Any]) -> None: ...

    def release(self, key: str) -> None: ...


@dataclass(frozen=True, slots=True)
class WorkspaceChange:
    """One accepted change of a workspace, written in one batch: its audit entry and the
    documents it sets or deletes (their top-level mirrors with them).

    The entry's ``seq`` is the workspace's ``audit_seq`` + 1 as the change read it, and the
    entry is *created*: a change built from a snapshot another change has since moved on
    from conflicts (``CreateConflict``, nothing written), so every change of a workspace is
    serialized through its audit sequence and each accepted one has its entry.
    """

    entry: AuditEntry
    # The workspace's name, for the ``users/{uid}/workspaces/{ws}`` mirrors of ``members``.
    name: str
    # A new workspace (its entry is seq 1); else the workspace's ``audit_seq`` moves on.
    created: WorkspaceDoc | None = None
    members: tuple[MemberDoc, ...] = ()  # added or changed
    removed_members: tuple[str, ...] = ()  # uids
    invites: tuple[InviteDoc, ...] = ()  # new ones
    removed_invites: tuple[str, ...] = ()  # invite ids, deleted
    # An invite accepted (``accepted_by`` set): its consumption document is created (so a
    # second accept conflicts), it leaves the workspace's pending ones, and its top-level
    # mirror keeps it as accepted (a replay is told so).
    consumed_invite: InviteDoc | None = None
    keys: tuple[ApiKeyDoc, ...] = ()  # new ones
    revoked_keys: tuple[ApiKeyDoc, ...] = ()  # ``revoked_at`` set; only that field is written
    # The workspace's prices and settings, replaced whole.
    settings: WorkspaceSettingsDoc | None = None


class WorkspaceStore(Protocol):
    """Workspaces, their members, invites, API keys and audit log (DESIGN §9).

    The access checks read ``member`` and ``api_key`` (and cache them for at most the
    bound §9 allows); every request first makes sure of its user's personal workspace. Every
    other change is a ``WorkspaceChange`` (``shared.workspaces.service`` makes them).
    """

    def member(self, workspace_id: str, uid: str) -> MemberDoc | None: ...

    def api_key(self, key_id: str) -> ApiKeyDoc | None:
        """The key by id (its top-level mirror), whatever workspace it belongs to."""
        ...

    def touch_key(self, key: ApiKeyDoc, now: datetime) -> None:
        """Set the key's ``last_used_at`` (callers write it at most once a minute)."""
        ...

    def workspace(self, workspace_id: str) -> WorkspaceDoc | None:
        """The workspace, or None if there is none (a document holding only usage is none)."""
        ...

    def members(self, workspace_id: str) -> list[MemberDoc]:
        """Every member, by uid."""
        ...

    def workspaces_of(self, uid: str) -> list[MyWorkspace]:
        """The user's workspaces with their role (``users/{uid}/workspaces``), by id."""
        ...

    def invite(self, invite_id: str) -> InviteDoc | None:
        """The invite by id (its top-level mirror), whatever workspace it is for."""
        ...

    def pending_invites(self, workspace_id: str, now: datetime) -> list[InviteDoc]:
        """The workspace's invites neither accepted, deleted nor expired at ``now``, soonest
        to expire first."""
        ...

    def api_keys(self, workspace_id: str, limit: int) -> list[ApiKeyDoc]:
        """The workspace's keys (revoked ones too), newest first, at most ``limit``."""
        ...

    def audit(self, workspace_id: str, limit: int, before_seq: int | None) -> list[AuditEntry]:
        """The newest ``limit`` audit entries (below ``before_seq`` if given), newest first."""
        ...

    def settings(self, workspace_id: str) -> WorkspaceSettingsDoc:
        """The workspace's prices and settings (the defaults if it never set any)."""
        ...

    def commit(self, change: WorkspaceChange) -> None:
        """Write the change in one batch; ``CreateConflict`` (nothing written) if its audit
        entry, its new workspace or its invite's consumption already exists."""
        ...


class RateLimiter(Protocol):
    """Per-user (and per-workspace) call counts shared by every instance."""

    def hit(self, kind: LimitKind, uid: str, limit: int, now: datetime) -> None:
        """Count one call; ``RateLimited`` (with its Retry-After) past ``limit`` a minute."""
        ...
