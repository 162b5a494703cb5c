"""The rules of teams (DESIGN §9), over a ``WorkspaceStore`` and free of any transport.

Who may do what: any member reads the member list; ``admin`` and above (``manage``) invite,
change roles and remove members below owner, make and revoke API keys and read the audit
log; only an ``owner`` grants or takes away ``owner``. An invite never grants more than the
inviter has. A workspace keeps at least one owner, and a personal workspace its own (the
user whose id it is). Not a member of the workspace (or no such workspace): ``NotFound``;
a member whose role lacks the action: ``Forbidden``.

Every change is serialized through the workspace's audit sequence: read the workspace
(``audit_seq`` = N) first, then what the rule needs, decide, and commit one
``WorkspaceChange`` that creates audit entry N+1. A change that raced another built from
the same N conflicts and is decided again from what is there now (``ATTEMPTS`` times), so
two admins removing each other end with one removed and the other refused, and the audit
log holds every accepted change.

Ids: a team workspace is ``t`` + 19 lower-case hex digits (76 random bits, 20 characters:
never a Firebase uid, which are 28 characters, so never anybody's personal workspace); an
invite is 32 hex digits (128 random bits).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final, Generic, TypeVar

from shared import pricing
from shared.errors import Conflict, Forbidden, Gone, NotFound, Unavailable, ValidationFailed
from shared.models.events import iso_utc
from shared.price_book import PriceBook, table_name
from shared.store.documents import (
    ApiKeyDoc,
    AuditEntry,
    InviteDoc,
    MemberDoc,
    ModelRefDoc,
    MyWorkspace,
    PriceEntryDoc,
    WorkspaceDoc,
    WorkspaceSettingsDoc,
)
from shared.store.interfaces import CreateConflict, WorkspaceChange, WorkspaceStore
from shared.workspaces import keys
from shared.workspaces.keys import KeyScope
from shared.workspaces.roles import Action, Role, allows, at_least

TEAM_ID_PREFIX: Final = "t"
TEAM_ID_HEX: Final = 19
INVITE_ID_BYTES: Final = 16
PERSONAL_NAME: Final = "Personal"
INVITE_TTL: Final = timedelta(days=7)
MAX_KEY_LIFETIME: Final = timedelta(days=730)  # two years
# Bounds that keep every listing small: pending invites of a workspace, keys listed.
MAX_PENDING_INVITES: Final = 100
MAX_LISTED_KEYS: Final = 500
# Changes decided again after a racing change won; each round one change commits, so this
# many concurrent changes of one workspace all get through.
ATTEMPTS: Final = 10
RETRY_AFTER_S: Final = 1
# A price may take effect from this day (the first usage records Apex accepts) to a year ahead.
EARLIEST_PRICE_DAY: Final = date(2020, 1, 1)
PRICE_DAYS_AHEAD: Final = timedelta(days=366)

_T = TypeVar("_T")


def new_workspace_id() -> str:
    return TEAM_ID_PREFIX + secrets.token_hex((TEAM_ID_HEX + 1) // 2)[:TEAM_ID_HEX]


# --- the serialization of changes -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Plan(Generic[_T]):
    """What a change returns, and what it writes (None: nothing changes)."""

    result: _T
    change: WorkspaceChange | None


def _serialized(
    store: WorkspaceStore, workspace_id: str, decide: Callable[[WorkspaceDoc], _Plan[_T]]
) -> _T:
    """Decide from the workspace as it is now, commit, and decide again if a racing change
    committed first."""
    for _ in range(ATTEMPTS):
        # The workspace first: whatever ``decide`` reads after it is at least as new, so a
        # change committed in between moves ``audit_seq`` and this one conflicts.
        workspace = store.workspace(workspace_id)
        if workspace is None:
            raise NotFound(f"no workspace {workspace_id}")
        plan = decide(workspace)
        if plan.change is None:
            return plan.result
        try:
            store.commit(plan.change)
        except CreateConflict:
            continue
        return plan.result
    raise Unavailable(
        f"workspace {workspace_id} is being changed by others; retry",
        retry_after_s=RETRY_AFTER_S,
    )


def _entry(
    workspace: WorkspaceDoc,
    actor: str,
    action: str,
    target: str | None,
    detail: dict[str, Any],
    now: datetime,
) -> AuditEntry:
    return AuditEntry(
        seq=workspace.audit_seq + 1,
        workspace_id=workspace.workspace_id,
        actor=actor,
        action=action,
        target=target,
        detail=detail,
        at=now,
    )


def _acting(store: WorkspaceStore, workspace_id: str, uid: str, action: Action) -> MemberDoc:
    """The caller's membership, read now; 404 if none, 403 if its role lacks ``action``."""
    member = store.member(workspace_id, uid)
    if member is None:
        raise NotFound(f"no workspace {workspace_id}")
    if not allows(member.role, action):
        raise Forbidden(
            f"your role in workspace {workspace_id} ({member.role}) does not allow this"
        )
    return member


def _target(store: WorkspaceStore, workspace_id: str, uid: str) -> MemberDoc:
    member = store.member(workspace_id, uid)
    if member is None:
        raise NotFound(f"no member {uid} in workspace {workspace_id}")
    return member


def _keeps_its_owners(store: WorkspaceStore, workspace: WorkspaceDoc, target: MemberDoc) -> None:
    """409 if ``target`` ceasing to be an owner would leave the workspace without one, or
    is the owner whose personal workspace it is."""
    if target.role != "owner":
        return
    if workspace.personal and target.uid == workspace.workspace_id:
        raise Conflict("the owner of a personal workspace cannot be removed or demoted")
    owners = sum(1 for m in store.members(workspace.workspace_id) if m.role == "owner")
    if owners <= 1:
        raise Conflict("a workspace keeps at least one owner; make another owner first")


# --- workspaces -------------------------------------------------------------------------------


def create_workspace(
    store: WorkspaceStore,
    uid: str,
    email: str | None,
    name: str,
    now: datetime,
    workspace_id: str | None = None,
    *,
    personal: bool = False,
) -> WorkspaceDoc:
    """A team workspace, ``uid`` its owner. ``workspace_id`` is chosen only by the local
    stack (``demo``); otherwise a new random one. 409 if that id is taken."""
    ws = workspace_id or new_workspace_id()
    workspace = WorkspaceDoc(
        workspace_id=ws, name=name, created_by=uid, created_at=now, personal=personal, audit_seq=1
    )
    owner = MemberDoc(
        workspace_id=ws, uid=uid, role="owner", email=email, added_by=uid, added_at=now
    )
    entry = AuditEntry(
        seq=1,
        workspace_id=ws,
        actor=uid,
        action="workspace.created",
        target=ws,
        detail={"name": name, "personal": True} if personal else {"name": name},
        at=now,
    )
    try:
        store.commit(WorkspaceChange(entry=entry, name=name, created=workspace, members=(owner,)))
    except CreateConflict as e:
        raise Conflict(f"workspace {ws} already exists") from e
    return workspace


def ensure_personal(store: WorkspaceStore, uid: str, email: str | None, now: datetime) -> bool:
    """The user's personal workspace (id = uid, they its owner) unless it exists; whether
    this call made it. Its first audit entry is the create-if-absent key, so of two first
    requests at once one makes it and the other finds it."""
    try:
        create_workspace(store, uid, email, PERSONAL_NAME, now, workspace_id=uid, personal=True)
    except Conflict:
        return False
    return True


def workspaces_of(store: WorkspaceStore, uid: str) -> list[MyWorkspace]:
    return store.workspaces_of(uid)


# --- members ----------------------------------------------------------------------------------


def members(store: WorkspaceStore, workspace_id: str, uid: str) -> list[MemberDoc]:
    _acting(store, workspace_id, uid, "read")
    return store.members(workspace_id)


def change_role(
    store: WorkspaceStore,
    workspace_id: str,
    actor_uid: str,
    target_uid: str,
    role: Role,
    now: datetime,
) -> MemberDoc:
    """The member with the new role (unchanged if it was theirs already: no entry)."""

    def decide(workspace: WorkspaceDoc) -> _Plan[MemberDoc]:
        actor = _acting(store, workspace_id, actor_uid, "manage")
        target = _target(store, workspace_id, target_uid)
        if "owner" in (target.role, role) and actor.role != "owner":
            raise Forbidden("only an owner may grant or take away the owner role")
        if target.role == role:
            return _Plan(target, None)
        _keeps_its_owners(store, workspace, target)
        changed = target.model_copy(update={"role": role})
        entry = _entry(
            workspace,
            actor_uid,
            "member.role_changed",
            target_uid,
            {"from": target.role, "to": role},
            now,
        )
        return _Plan(changed, WorkspaceChange(entry=entry, name=workspace.name, members=(changed,)))

    return _serialized(store, workspace_id, decide)


def remove_member(
    store: WorkspaceStore, workspace_id: str, actor_uid: str, target_uid: str, now: datetime
) -> MemberDoc:
    """Remove ``target_uid`` (admins remove others below owner, owners anyone; any member
    may remove themselves: leave). The member removed."""

    def decide(workspace: WorkspaceDoc) -> _Plan[MemberDoc]:
        leaving = target_uid == actor_uid
        actor = _acting(store, workspace_id, actor_uid, "read" if leaving else "manage")
        target = actor if leaving else _target(store, workspace_id, target_uid)
        if target.role == "owner" and actor.role != "owner":
            raise Forbidden("only an owner may remove an owner")
        _keeps_its_owners(store, workspace, target)
        entry = _entry(
            workspace,
            actor_uid,
            "member.left" if leaving else "member.removed",
            target_uid,
            {"role": target.role, "email": target.email},
            now,
        )
        change = WorkspaceChange(entry=entry, name=workspace.name, removed_members=(target_uid,))
        return _Plan(target, change)

    return _serialized(store, workspace_id, decide)


# --- invites ----------------------------------------------------------------------------------


def invite(
    store: WorkspaceStore,
    workspace_id: str,
    actor_uid: str,
    email: str,
    role: Role,
    now: datetime,
) -> InviteDoc:
    """An invite for ``email`` (compared lower-cased) to join as ``role``, for 7 days."""
    address = email.lower()

    def decide(workspace: WorkspaceDoc) -> _Plan[InviteDoc]:
        actor = _acting(store, workspace_id, actor_uid, "manage")
        if not at_least(actor.role, role):
            raise Forbidden(f"an invite cannot grant more than your role ({actor.role})")
        everyone = store.members(workspace_id)
        if any(m.email is not None and m.email.lower() == address for m in everyone):
            raise Conflict(f"{address} is already a member of workspace {workspace_id}")
        # Another pending invite for the address may stand (sent again, or by another
        # admin): the first accepted joins, and the rest then find a member (409).
        pending = store.pending_invites(workspace_id, now)
        if len(pending) >= MAX_PENDING_INVITES:
            raise Conflict(f"workspace {workspace_id} has {len(pending)} pending invites already")
        new = InviteDoc(
            invite_id=secrets.token_hex(INVITE_ID_BYTES),
            workspace_id=workspace_id,
            email=address,
            role=role,
            invited_by=actor_uid,
            created_at=now,
            expires_at=now + INVITE_TTL,
        )
        entry = _entry(
            workspace,
            actor_uid,
            "invite.created",
            new.invite_id,
            {"email": address, "role": role, "expires_at": iso_utc(new.expires_at)},
            now,
        )
        return _Plan(new, WorkspaceChange(entry=entry, name=workspace.name, invites=(new,)))

    return _serialized(store, workspace_id, decide)


def pending_invites(
    store: WorkspaceStore, workspace_id: str, uid: str, now: datetime
) -> list[InviteDoc]:
    _acting(store, workspace_id, uid, "manage")
    return store.pending_invites(workspace_id, now)


def delete_invite(
    store: WorkspaceStore, workspace_id: str, actor_uid: str, invite_id: str, now: datetime
) -> InviteDoc:
    """Withdraw an invite not yet accepted (expired ones too)."""

    def decide(workspace: WorkspaceDoc) -> _Plan[InviteDoc]:
        _acting(store, workspace_id, actor_uid, "manage")
        found = store.invite(invite_id)
        if found is None or found.workspace_id != workspace_id or found.accepted_by is not None:
            raise NotFound(f"no pending invite {invite_id} in workspace {workspace_id}")
        entry = _entry(
            workspace,
            actor_uid,
            "invite.deleted",
            invite_id,
            {"email": found.email, "role": found.role},
            now,
        )
        change = WorkspaceChange(entry=entry, name=workspace.name, removed_invites=(invite_id,))
        return _Plan(found, change)

    return _serialized(store, workspace_id, decide)


def accept_invite(
    store: WorkspaceStore,
    invite_id: str,
    uid: str,
    email: str | None,
    email_verified: bool,
    now: datetime,
) -> tuple[WorkspaceDoc, MemberDoc]:
    """Join the invite's workspace as its role. The caller's email must be the invite's
    (case-insensitively) and verified (403); an accepted invite, or one for somebody who
    is a member already, is 409; an expired one 410. The invite is consumed with a
    create-if-absent document, so of two accepts one joins and the other is 409."""
    first = store.invite(invite_id)
    if first is None:
        raise NotFound(f"no invite {invite_id}")
    if email is None or email.lower() != first.email:
        raise Forbidden("this invite is addressed to another email address")
    if not email_verified:
        raise Forbidden("verify your email address to accept an invite")
    ws = first.workspace_id

    def decide(workspace: WorkspaceDoc) -> _Plan[tuple[WorkspaceDoc, MemberDoc]]:
        found = store.invite(invite_id)
        if found is None or found.workspace_id != ws:
            raise NotFound(f"no invite {invite_id}")
        if found.accepted_by is not None:
            raise Conflict("this invite has been accepted already")
        if found.expires_at <= now:
            raise Gone("this invite has expired; ask for a new one")
        if store.member(ws, uid) is not None:
            raise Conflict(f"you are a member of workspace {ws} already")
        member = MemberDoc(
            workspace_id=ws,
            uid=uid,
            role=found.role,
            email=found.email,
            added_by=found.invited_by,
            added_at=now,
        )
        consumed = found.model_copy(update={"accepted_by": uid, "accepted_at": now})
        entry = _entry(
            workspace,
            uid,
            "invite.accepted",
            uid,
            {"invite_id": invite_id, "email": found.email, "role": found.role},
            now,
        )
        change = WorkspaceChange(
            entry=entry, name=workspace.name, members=(member,), consumed_invite=consumed
        )
        return _Plan((workspace, member), change)

    return _serialized(store, ws, decide)


# --- API keys ---------------------------------------------------------------------------------


def create_api_key(
    store: WorkspaceStore,
    pepper: bytes,
    workspace_id: str,
    actor_uid: str,
    name: str,
    scope: KeyScope,
    expires_at: datetime | None,
    now: datetime,
) -> tuple[ApiKeyDoc, str]:
    """A new key and its credential (``apx_…``: shown this once, only its hash is kept).
    ``expires_at``, if given, must be in the future and within two years (422)."""
    if expires_at is not None and expires_at <= now:
        raise ValidationFailed("expires_at: must be in the future")
    if expires_at is not None and expires_at > now + MAX_KEY_LIFETIME:
        raise ValidationFailed("expires_at: must be within two years from now")

    def decide(workspace: WorkspaceDoc) -> _Plan[tuple[ApiKeyDoc, str]]:
        _acting(store, workspace_id, actor_uid, "manage")
        made = keys.new_key(pepper)
        doc = ApiKeyDoc(
            key_id=made.key_id,
            workspace_id=workspace_id,
            name=name,
            scope=scope,
            prefix=made.prefix,
            secret_hash=made.secret_hash,
            created_by=actor_uid,
            created_at=now,
            expires_at=expires_at,
        )
        detail: dict[str, Any] = {
            "name": name,
            "scope": scope,
            "expires_at": None if expires_at is None else iso_utc(expires_at),
        }
        entry = _entry(workspace, actor_uid, "key.created", made.key_id, detail, now)
        change = WorkspaceChange(entry=entry, name=workspace.name, keys=(doc,))
        return _Plan((doc, made.credential), change)

    return _serialized(store, workspace_id, decide)


def api_keys(store: WorkspaceStore, workspace_id: str, uid: str) -> list[ApiKeyDoc]:
    """The newest ``MAX_LISTED_KEYS`` keys, revoked ones too."""
    _acting(store, workspace_id, uid, "manage")
    return store.api_keys(workspace_id, MAX_LISTED_KEYS)


def revoke_api_key(
    store: WorkspaceStore, workspace_id: str, actor_uid: str, key_id: str, now: datetime
) -> ApiKeyDoc:
    """The key, revoked (a key revoked already stays as it was: no entry)."""

    def decide(workspace: WorkspaceDoc) -> _Plan[ApiKeyDoc]:
        _acting(store, workspace_id, actor_uid, "manage")
        found = store.api_key(key_id)
        if found is None or found.workspace_id != workspace_id:
            raise NotFound(f"no API key {key_id} in workspace {workspace_id}")
        if found.revoked_at is not None:
            return _Plan(found, None)
        revoked = found.model_copy(update={"revoked_at": now})
        entry = _entry(workspace, actor_uid, "key.revoked", key_id, {"name": found.name}, now)
        change = WorkspaceChange(entry=entry, name=workspace.name, revoked_keys=(revoked,))
        return _Plan(revoked, change)

    return _serialized(store, workspace_id, decide)


# --- the audit log ----------------------------------------------------------------------------


def audit_log(
    store: WorkspaceStore, workspace_id: str, uid: str, limit: int, before_seq: int | None
) -> list[AuditEntry]:
    _acting(store, workspace_id, uid, "manage")
    return store.audit(workspace_id, limit, before_seq)


# --- prices and settings (DESIGN §8, docs/prices.md) ------------------------------------------


def settings(store: WorkspaceStore, workspace_id: str, uid: str) -> WorkspaceSettingsDoc:
    """The workspace's prices and settings (any member)."""
    _acting(store, workspace_id, uid, "read")
    return store.settings(workspace_id)


def price_book(store: WorkspaceStore, workspace_id: str) -> PriceBook:
    """The workspace's book, for a reader already let into the workspace (no role check)."""
    return store.settings(workspace_id).price_book()


def _check_prices(entries: Sequence[PriceEntryDoc], now: datetime) -> None:
    """422 naming the entry: a duplicate (provider, model, from), as the table names models;
    a date out of range; a model the table cannot price without both its prices."""
    seen: dict[tuple[str | None, str, date | None], int] = {}
    latest = (now + PRICE_DAYS_AHEAD).date()
    for i, entry in enumerate(entries):
        where = f"prices.{i}"
        if entry.from_ is not None and not EARLIEST_PRICE_DAY <= entry.from_ <= latest:
            raise ValidationFailed(
                f"{where}.from: must be from {EARLIEST_PRICE_DAY.isoformat()} to "
                f"{latest.isoformat()}"
            )
        provider, model = table_name(entry.provider, entry.model, now)
        key = (provider, model, entry.from_)
        if key in seen:
            raise ValidationFailed(
                f"{where}: prices {entry.provider}/{entry.model} from "
                f"{entry.from_ or 'the start'} again (as prices.{seen[key]} does)"
            )
        seen[key] = i
        try:
            pricing.model_prices(entry.provider, entry.model, now)
        except pricing.UnknownModelError:
            if entry.input_mtok is None or entry.output_mtok is None:
                raise ValidationFailed(
                    f"{where}: the price table does not know {entry.provider}/{entry.model}; "
                    "give its input_mtok and output_mtok"
                ) from None


def set_prices(
    store: WorkspaceStore,
    workspace_id: str,
    actor_uid: str,
    entries: Sequence[PriceEntryDoc],
    now: datetime,
) -> WorkspaceSettingsDoc:
    """Replace the workspace's prices (admin); unchanged: no audit entry."""
    _check_prices(entries, now)

    def decide(workspace: WorkspaceDoc) -> _Plan[WorkspaceSettingsDoc]:
        _acting(store, workspace_id, actor_uid, "manage")
        current = store.settings(workspace_id)
        changed = current.model_copy(update={"prices": tuple(entries)})
        if changed == current:
            return _Plan(current, None)
        detail = {"prices": [p.model_dump(mode="json", by_alias=True) for p in entries]}
        entry = _entry(workspace, actor_uid, "prices.replaced", None, detail, now)
        change = WorkspaceChange(entry=entry, name=workspace.name, settings=changed)
        return _Plan(changed, change)

    return _serialized(store, workspace_id, decide)


def set_allowed_models(
    store: WorkspaceStore,
    workspace_id: str,
    actor_uid: str,
    allowed: Sequence[ModelRefDoc] | None,
    now: datetime,
) -> WorkspaceSettingsDoc:
    """Set the models recommendations may propose (admin; None: any). Each must be one the
    workspace's book prices (422 naming it); unchanged: no audit entry."""

    def decide(workspace: WorkspaceDoc) -> _Plan[WorkspaceSettingsDoc]:
        _acting(store, workspace_id, actor_uid, "manage")
        current = store.settings(workspace_id)
        book = current.price_book()
        for i, ref in enumerate(allowed or ()):
            try:
                book.model_prices(ref.provider, ref.model, now.astimezone(UTC))
            except pricing.UnknownModelError as e:
                raise ValidationFailed(f"allowed_models.{i}: {e}; price it first") from None
        changed = current.model_copy(
            update={"allowed_models": None if allowed is None else tuple(allowed)}
        )
        if changed == current:
            return _Plan(current, None)
        detail = {
            "allowed_models": None
            if allowed is None
            else [m.model_dump(mode="json") for m in allowed]
        }
        entry = _entry(workspace, actor_uid, "settings.changed", None, detail, now)
        change = WorkspaceChange(entry=entry, name=workspace.name, settings=changed)
        return _Plan(changed, change)

    return _serialized(store, workspace_id, decide)
