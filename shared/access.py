"""Who may act where (DESIGN §9): a request's credential and active workspace → ``Principal``.

- An ID token: verified (``shared.auth``), the user's personal workspace made sure of, then
  their membership of the active workspace read (not a member, or no such workspace: 404)
  and their role checked against the action (403).
- An API key (``apx_…``): its keyed hash compared in constant time, then revocation,
  expiry, its workspace and its scope checked (each 401, as §9 says for keys).

Membership and key documents are cached per process for at most ``access_cache_s``
(≤ 10 s), so a removed member or a revoked key is refused within that bound of the change;
only positive answers are cached, so someone just added gets in at once. Changes made by
this process drop their entries at once (``forget``, ``forget_key``).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Generic, TypeVar

from shared.auth import Identity, Principal, TokenVerifier
from shared.config import ConfigError, Settings
from shared.errors import BadRequest, Forbidden, NotFound, Unauthenticated
from shared.store.documents import ApiKeyDoc
from shared.store.interfaces import WorkspaceStore
from shared.workspaces import keys, service
from shared.workspaces.keys import KeyScope
from shared.workspaces.roles import Action, Role, allows

WORKSPACE_HEADER: Final = "x-apex-workspace"
WORKSPACE_ID: Final = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
# DESIGN §9 / §10: `last_used_at` is written at most once a minute.
TOUCH_EVERY: Final = timedelta(minutes=1)
# A bound on each cache, so a flood of distinct ids cannot grow a process without limit.
MAX_CACHED: Final = 10_000
# What a key's scope amounts to, as a role (the role is what the rest of Apex reads).
KEY_ROLE: Final[dict[KeyScope, Role]] = {"ingest": "member", "read": "viewer"}

_V = TypeVar("_V")


def workspace_of_header(value: str | None) -> str | None:
    """The ``X-Apex-Workspace`` value, checked (a malformed id is a client error: 400)."""
    if value is None or value == "":
        return None
    if not WORKSPACE_ID.fullmatch(value):
        raise BadRequest("X-Apex-Workspace must be 1..128 letters, digits, `_` or `-`")
    return value


@dataclass(frozen=True, slots=True)
class _Entry(Generic[_V]):
    value: _V
    read_at: float


class _Cache(Generic[_V]):
    """Values read at most ``ttl_s`` ago (by the monotonic clock)."""

    def __init__(self, ttl_s: float, clock: Callable[[], float], bound: int) -> None:
        self._ttl_s = ttl_s
        self._clock = clock
        self._bound = bound
        self._entries: dict[object, _Entry[_V]] = {}
        self._lock = threading.Lock()

    def get(self, key: object) -> _V | None:
        entry = self._entries.get(key)
        if entry is None or self._clock() - entry.read_at >= self._ttl_s:
            return None
        return entry.value

    def put(self, key: object, value: _V, read_at: float) -> None:
        if self._ttl_s <= 0:
            return
        with self._lock:
            if len(self._entries) >= self._bound:
                self._entries.clear()
            self._entries[key] = _Entry(value, read_at)

    def drop(self, key: object) -> None:
        self._entries.pop(key, None)


class Access:
    def __init__(
        self,
        settings: Settings,
        verifier: TokenVerifier,
        workspaces: WorkspaceStore,
        clock: Callable[[], float] = time.monotonic,
        max_cached: int = MAX_CACHED,
    ) -> None:
        self._settings = settings
        self._verifier = verifier
        self._workspaces = workspaces
        self._clock = clock
        self._max_cached = max_cached
        self._roles: _Cache[Role] = _Cache(settings.access_cache_s, clock, max_cached)
        self._keys: _Cache[ApiKeyDoc] = _Cache(settings.access_cache_s, clock, max_cached)
        # Users whose personal workspace this process has seen (it is never deleted), and
        # when this process last wrote each key's `last_used_at`: both bounded like the
        # caches, so a flood of distinct users or keys cannot grow a process without limit.
        self._personal: set[str] = set()
        self._touched: dict[str, float] = {}

    # --- ID tokens ------------------------------------------------------------------------------

    def identify(self, token: str) -> Identity:
        """The token's user, their personal workspace made sure of. API keys are refused."""
        if keys.is_api_key(token):
            raise Unauthenticated("an API key is not accepted here; send a Firebase ID token")
        identity = self._verifier.verify(token)
        self._ensure_personal(identity)
        return identity

    def enter(self, identity: Identity, workspace_id: str | None, action: Action) -> Principal:
        """``identity`` acting in ``workspace_id`` (default: their personal one)."""
        workspace = workspace_id or identity.uid
        role = self.role_of(workspace, identity.uid)
        if role is None:
            raise NotFound(f"no workspace {workspace}")
        if not allows(role, action):
            raise Forbidden(f"your role in workspace {workspace} ({role}) does not allow {action}")
        return Principal(
            uid=identity.uid,
            workspace_id=workspace,
            role=role,
            email=identity.email,
            email_verified=identity.email_verified,
            expires_at=identity.expires_at,
        )

    def role_of(self, workspace_id: str, uid: str) -> Role | None:
        """The user's role in the workspace (None: not a member), cached within the bound."""
        cached = self._roles.get((workspace_id, uid))
        if cached is not None:
            return cached
        read_at = self._clock()
        member = self._workspaces.member(workspace_id, uid)
        if member is None:
            return None
        self._roles.put((workspace_id, uid), member.role, read_at)
        return member.role

    def recheck(self, principal: Principal, action: Action) -> Principal:
        """The principal as its membership stands now (within the bound); 404 if removed."""
        identity = Identity(
            uid=principal.uid,
            email=principal.email,
            email_verified=principal.email_verified,
            expires_at=principal.expires_at or 0,
        )
        return self.enter(identity, principal.workspace_id, action)

    def _ensure_personal(self, identity: Identity) -> None:
        if identity.uid in self._personal:
            return
        if self.role_of(identity.uid, identity.uid) is None:
            service.ensure_personal(
                self._workspaces, identity.uid, identity.email, datetime.now(UTC)
            )
        if len(self._personal) >= self._max_cached:
            self._personal.clear()
        self._personal.add(identity.uid)

    # --- API keys ------------------------------------------------------------------------------

    def key(self, token: str, workspace_id: str | None, scope: KeyScope) -> Principal:
        """The key's principal if it is genuine, live, of ``workspace_id`` (when named) and
        of ``scope``; 401 otherwise (the message says which, never the key)."""
        presented = keys.parse(token)
        doc = self._key_doc(presented.key_id)
        if doc is None or not keys.matches(self._pepper(), presented, doc.secret_hash):
            raise Unauthenticated("the API key is not valid")
        now = datetime.now(UTC)
        if doc.revoked_at is not None:
            raise Unauthenticated("the API key has been revoked")
        if doc.expires_at is not None and doc.expires_at <= now:
            raise Unauthenticated("the API key has expired")
        if workspace_id is not None and workspace_id != doc.workspace_id:
            raise Unauthenticated("the API key belongs to another workspace")
        if doc.scope != scope:
            raise Unauthenticated(
                f"the API key's scope is {doc.scope!r}; this function needs {scope!r}"
            )
        self._touch(doc, now)
        return Principal(
            uid=f"key:{doc.key_id}",
            workspace_id=doc.workspace_id,
            role=KEY_ROLE[doc.scope],
            key_id=doc.key_id,
        )

    def _key_doc(self, key_id: str) -> ApiKeyDoc | None:
        cached = self._keys.get(key_id)
        if cached is not None:
            return cached
        read_at = self._clock()
        doc = self._workspaces.api_key(key_id)
        if doc is not None:
            self._keys.put(key_id, doc, read_at)
        return doc

    def _touch(self, doc: ApiKeyDoc, now: datetime) -> None:
        """``last_used_at`` at most once a minute, by the stored value and this process's."""
        if doc.last_used_at is not None and now - doc.last_used_at < TOUCH_EVERY:
            return
        last = self._touched.get(doc.key_id)
        if last is not None and self._clock() - last < TOUCH_EVERY.total_seconds():
            return
        if len(self._touched) >= self._max_cached:
            self._touched.clear()
        self._touched[doc.key_id] = self._clock()
        self._workspaces.touch_key(doc, now)

    def pepper(self) -> bytes:
        """The API keys' pepper; a configuration fault (500, logged) when it is not set."""
        return self._pepper()

    def _pepper(self) -> bytes:
        pepper = self._settings.key_pepper
        if pepper is None:
            raise ConfigError("APEX_KEY_PEPPER is not set: API keys cannot be checked or made")
        return pepper.get_secret_value().encode()

    # --- changes made here ------------------------------------------------------------------------

    def forget(self, workspace_id: str, uid: str) -> None:
        self._roles.drop((workspace_id, uid))

    def forget_key(self, key_id: str) -> None:
        self._keys.drop(key_id)
