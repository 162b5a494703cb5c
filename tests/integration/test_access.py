"""The access checks against the emulators (DESIGN §9): personal workspaces on first use,
404/403 by membership and role, API keys, and the cache bound: a process may keep a
membership or key check for at most ``APEX_ACCESS_CACHE_S`` (≤ 10 s) — measured here on an
injected clock, and end to end in real time in tests/functions/test_cache_bound.py."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import firebase_admin
import pytest
from google.cloud import firestore

from devstack.auth_emulator import SignedIn
from shared.access import Access
from shared.auth import TokenVerifier
from shared.config import Settings
from shared.errors import Forbidden, NotFound, Unauthenticated
from shared.store.documents import ApiKeyDoc, MemberDoc
from shared.store.workspaces import API_KEYS, MEMBERS, WORKSPACES, FirestoreWorkspaceStore
from shared.workspaces import keys, service

PEPPER = "access-test-pepper-" + "x" * 32


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True)
class Setup:
    access: Access
    clock: Clock
    db: firestore.Client
    store: FirestoreWorkspaceStore


@pytest.fixture
def setup(project_id: str, firestore_client: firestore.Client) -> Iterator[Setup]:
    settings = Settings.from_env({"GOOGLE_CLOUD_PROJECT": project_id, "APEX_KEY_PEPPER": PEPPER})
    app = firebase_admin.initialize_app(options={"projectId": project_id}, name=project_id)
    clock = Clock()
    store = FirestoreWorkspaceStore(firestore_client)
    yield Setup(Access(settings, TokenVerifier(app), store, clock), clock, firestore_client, store)
    firebase_admin.delete_app(app)


def _add_member(db: firestore.Client, ws: str, uid: str, role: str) -> None:
    member = MemberDoc(
        workspace_id=ws,
        uid=uid,
        role=role,
        email=None,
        added_by="t",
        added_at=datetime.now(UTC),
    )
    db.collection(WORKSPACES).document(ws).collection(MEMBERS).document(uid).set(
        member.model_dump()
    )


def _remove_member(db: firestore.Client, ws: str, uid: str) -> None:
    db.collection(WORKSPACES).document(ws).collection(MEMBERS).document(uid).delete()


def test_the_first_request_makes_the_personal_workspace(
    setup: Setup, sign_up: Callable[..., SignedIn]
) -> None:
    user = sign_up()
    identity = setup.access.identify(user.id_token)
    owner = setup.store.member(user.uid, user.uid)
    assert owner is not None
    assert owner.role == "owner"
    principal = setup.access.enter(identity, None, "manage")
    assert (principal.workspace_id, principal.role) == (user.uid, "owner")
    # A second process (a fresh Access) finds it and creates nothing new.
    made = service.ensure_personal(setup.store, user.uid, user.email, datetime.now(UTC))
    assert made is False


class _CountingStore(FirestoreWorkspaceStore):
    """The real store, counting its membership reads."""

    member_reads = 0

    def member(self, workspace_id: str, uid: str) -> MemberDoc | None:
        self.member_reads += 1
        return super().member(workspace_id, uid)


def test_what_a_process_remembers_is_bounded(
    setup: Setup, sign_up: Callable[..., SignedIn], project_id: str
) -> None:
    """Past its bound a process forgets whose personal workspace it has seen, so a flood of
    distinct users cannot grow it without limit: a forgotten user's is checked again."""
    settings = Settings.from_env({"GOOGLE_CLOUD_PROJECT": project_id, "APEX_KEY_PEPPER": PEPPER})
    store = _CountingStore(setup.db)
    app = firebase_admin.get_app(project_id)
    access = Access(settings, TokenVerifier(app), store, setup.clock, max_cached=1)
    first, second = sign_up(), sign_up()
    access.identify(first.id_token)
    setup.clock.now += settings.access_cache_s + 1
    reads = store.member_reads
    access.identify(first.id_token)
    assert store.member_reads == reads  # remembered: not checked again
    access.identify(second.id_token)  # past the bound of 1: the first one is forgotten
    reads = store.member_reads
    access.identify(first.id_token)
    assert store.member_reads == reads + 1


def test_not_a_member_is_not_found_and_a_lesser_role_forbidden(
    setup: Setup, sign_up: Callable[..., SignedIn]
) -> None:
    user = sign_up()
    identity = setup.access.identify(user.id_token)
    team = f"t{uuid.uuid4().hex[:19]}"
    with pytest.raises(NotFound):
        setup.access.enter(identity, team, "read")
    _add_member(setup.db, team, user.uid, "viewer")
    assert setup.access.enter(identity, team, "read").role == "viewer"
    with pytest.raises(Forbidden):
        setup.access.enter(identity, team, "ingest")


def test_a_removed_member_is_refused_once_the_cache_bound_has_passed(
    setup: Setup, sign_up: Callable[..., SignedIn]
) -> None:
    user = sign_up()
    identity = setup.access.identify(user.id_token)
    team = f"t{uuid.uuid4().hex[:19]}"
    _add_member(setup.db, team, user.uid, "member")
    assert setup.access.enter(identity, team, "ingest").role == "member"
    _remove_member(setup.db, team, user.uid)
    # Within the bound a process may still answer from its cache ...
    setup.clock.now += 9.9
    assert setup.access.enter(identity, team, "ingest").role == "member"
    # ... and not a moment after it.
    setup.clock.now += 0.1
    with pytest.raises(NotFound):
        setup.access.enter(identity, team, "ingest")


def test_a_role_change_applies_once_the_bound_has_passed(
    setup: Setup, sign_up: Callable[..., SignedIn]
) -> None:
    user = sign_up()
    identity = setup.access.identify(user.id_token)
    team = f"t{uuid.uuid4().hex[:19]}"
    _add_member(setup.db, team, user.uid, "admin")
    assert setup.access.enter(identity, team, "manage").role == "admin"
    _add_member(setup.db, team, user.uid, "viewer")
    setup.clock.now += 10
    with pytest.raises(Forbidden):
        setup.access.enter(identity, team, "manage")


def _store_key(db: firestore.Client, ws: str, scope: str, **fields: object) -> str:
    made = keys.new_key(PEPPER.encode())
    doc = ApiKeyDoc(
        key_id=made.key_id,
        workspace_id=ws,
        name="ci",
        scope=scope,
        prefix=made.prefix,
        secret_hash=made.secret_hash,
        created_by="t",
        created_at=datetime.now(UTC),
        **fields,
    )
    # The key and its top-level mirror, as the store writes them (DESIGN §9).
    db.collection(API_KEYS).document(made.key_id).set(doc.model_dump())
    db.collection(WORKSPACES).document(ws).collection(API_KEYS).document(made.key_id).set(
        doc.model_dump()
    )
    return made.credential


def test_a_revoked_key_is_refused_once_the_cache_bound_has_passed(setup: Setup) -> None:
    credential = _store_key(setup.db, "acme", "ingest")
    principal = setup.access.key(credential, None, "ingest")
    assert (principal.workspace_id, principal.role, principal.is_key) == ("acme", "member", True)
    key_id = keys.parse(credential).key_id
    setup.db.collection(API_KEYS).document(key_id).update({"revoked_at": datetime.now(UTC)})
    setup.clock.now += 9.9
    assert setup.access.key(credential, "acme", "ingest").workspace_id == "acme"
    setup.clock.now += 0.1
    with pytest.raises(Unauthenticated, match="revoked"):
        setup.access.key(credential, "acme", "ingest")


@pytest.mark.parametrize(
    ("case", "check"),
    [
        ("forged secret", lambda c: c[:-4] + ("AAAA" if not c.endswith("AAAA") else "BBBB")),
        ("truncated", lambda c: c[:-1]),
        ("unknown key id", lambda c: "apx_" + "0" * 16 + c[20:]),
    ],
)
def test_a_forged_or_truncated_key_is_unauthenticated(
    setup: Setup, case: str, check: Callable[[str], str]
) -> None:
    credential = _store_key(setup.db, "acme", "ingest")
    with pytest.raises(Unauthenticated):
        setup.access.key(check(credential), None, "ingest")


def test_expired_other_workspace_and_wrong_scope_keys_are_unauthenticated(setup: Setup) -> None:
    expired = _store_key(
        setup.db, "acme", "ingest", expires_at=datetime.now(UTC) - timedelta(seconds=1)
    )
    with pytest.raises(Unauthenticated, match="expired"):
        setup.access.key(expired, None, "ingest")
    live = _store_key(setup.db, "acme", "ingest")
    with pytest.raises(Unauthenticated, match="another workspace"):
        setup.access.key(live, "globex", "ingest")
    with pytest.raises(Unauthenticated, match="scope"):
        setup.access.key(live, "acme", "read")


def test_last_used_at_is_written_at_most_once_a_minute(setup: Setup) -> None:
    credential = _store_key(setup.db, "acme", "read")
    key_id = keys.parse(credential).key_id
    setup.access.key(credential, None, "read")
    first = setup.db.collection(API_KEYS).document(key_id).get().get("last_used_at")
    assert first is not None
    setup.clock.now += 30
    setup.access.key(credential, None, "read")
    assert setup.db.collection(API_KEYS).document(key_id).get().get("last_used_at") == first
    # A minute on (the cached document is re-read after the bound, as it must be).
    setup.clock.now += 31
    key_doc = setup.db.collection(API_KEYS).document(key_id)
    key_doc.update({"last_used_at": datetime.now(UTC) - timedelta(minutes=2)})
    setup.access.key(credential, None, "read")
    assert key_doc.get().get("last_used_at") > first


def test_an_api_key_is_not_an_identity(setup: Setup) -> None:
    credential = _store_key(setup.db, "acme", "read")
    with pytest.raises(Unauthenticated, match="API key"):
        setup.access.identify(credential)
