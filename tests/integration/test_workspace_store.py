"""The workspace store and the rules over it (``shared.workspaces.service``), against the
Firestore emulator: each change is one batch (mirrors and audit entry with it, or nothing),
changes of a workspace are serialized through its audit sequence so racing ones end
consistently with every accepted change in the log, and each escalation is refused with its
code and leaves everything as it was.

The races are made to happen, not hoped for: ``Interleaved`` is the real store whose first
commit in each thread waits at a barrier until every racer has decided from the same
snapshot, so all of them but one conflict and must decide again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

import pytest
from google.cloud import firestore

from shared.errors import (
    ApexError,
    Conflict,
    Forbidden,
    Gone,
    NotFound,
    Unavailable,
    ValidationFailed,
)
from shared.store.documents import ApiKeyDoc, AuditEntry, InviteDoc, MemberDoc, WorkspaceDoc
from shared.store.interfaces import CreateConflict, WorkspaceChange, WorkspaceStore
from shared.store.workspaces import FirestoreWorkspaceStore
from shared.workspaces import keys, service
from shared.workspaces.roles import Role

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
PEPPER = b"p" * 32
_T = TypeVar("_T")


@pytest.fixture
def store(firestore_client: firestore.Client) -> FirestoreWorkspaceStore:
    return FirestoreWorkspaceStore(firestore_client)


def doc(client: firestore.Client, path: str) -> dict[str, Any] | None:
    snap = client.document(path).get()
    return snap.to_dict() if snap.exists else None


@dataclass(frozen=True)
class State:
    """Everything a workspace change could touch, to prove a refused one touched nothing."""

    workspace: WorkspaceDoc | None
    members: list[MemberDoc]
    invites: list[InviteDoc]
    keys: list[ApiKeyDoc]
    audit: list[AuditEntry]
    mirrors: dict[str, list[str]]


def state(store: WorkspaceStore, ws: str, uids: list[str]) -> State:
    return State(
        workspace=store.workspace(ws),
        members=store.members(ws),
        invites=store.pending_invites(ws, NOW),
        keys=store.api_keys(ws, 100),
        audit=store.audit(ws, 200, None),
        mirrors={uid: [w.workspace_id for w in store.workspaces_of(uid)] for uid in uids},
    )


def audit_actions(store: WorkspaceStore, ws: str) -> list[tuple[int, str, str | None]]:
    """Oldest first; the sequence has no gap."""
    entries = list(reversed(store.audit(ws, 200, None)))
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    return [(e.seq, e.action, e.target) for e in entries]


def team(store: WorkspaceStore, roles: dict[str, Role]) -> str:
    """A workspace owned by ``owner`` with a member per ``roles`` entry (uid → role), each
    joined by an accepted invite, as people join."""
    ws = service.create_workspace(store, "owner", "owner@apex.test", "Acme", NOW).workspace_id
    for uid, role in roles.items():
        made = service.invite(store, ws, "owner", f"{uid}@Apex.test", role, NOW)
        service.accept_invite(store, made.invite_id, uid, f"{uid}@apex.test", True, NOW)
    return ws


class Interleaved(FirestoreWorkspaceStore):
    """The real store; each thread's first commit waits until ``parties`` threads are
    about to commit, so all of them decided from the same snapshot."""

    def __init__(self, client: firestore.Client, parties: int) -> None:
        super().__init__(client)
        self._barrier = threading.Barrier(parties, timeout=20)
        self._waited: set[int] = set()
        self.conflicts = 0
        self._lock = threading.Lock()

    def commit(self, change: WorkspaceChange) -> None:
        me = threading.get_ident()
        if me not in self._waited:
            self._waited.add(me)
            self._barrier.wait()
        try:
            super().commit(change)
        except CreateConflict:
            with self._lock:
                self.conflicts += 1
            raise


def race(calls: list[Callable[[], _T]]) -> list[_T | ApexError]:
    """Run the calls at once; each one's result, or the ``ApexError`` it raised."""

    def run(call: Callable[[], _T]) -> _T | ApexError:
        try:
            return call()
        except ApexError as e:
            return e

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


# --- the store: one batch each ------------------------------------------------------------------


def test_a_new_workspace_is_written_with_its_owner_mirror_and_first_entry(
    store: FirestoreWorkspaceStore, firestore_client: firestore.Client
) -> None:
    created = service.create_workspace(store, "u1", "u1@apex.test", "Acme", NOW)
    ws = created.workspace_id
    assert ws.startswith("t")
    assert len(ws) == 20
    assert ws[1:].isalnum()
    assert ws == ws.lower()
    assert store.workspace(ws) == created
    assert store.members(ws) == [
        MemberDoc(
            workspace_id=ws,
            uid="u1",
            role="owner",
            email="u1@apex.test",
            added_by="u1",
            added_at=NOW,
        )
    ]
    assert doc(firestore_client, f"users/u1/workspaces/{ws}") == {
        "workspace_id": ws,
        "name": "Acme",
        "role": "owner",
    }
    assert audit_actions(store, ws) == [(1, "workspace.created", ws)]
    # The same id again (only the local stack chooses one): 409, the first one untouched.
    with pytest.raises(Conflict):
        service.create_workspace(store, "u2", None, "Other", NOW, workspace_id=ws)
    assert store.workspace(ws) == created
    assert [m.uid for m in store.members(ws)] == ["u1"]
    assert store.workspaces_of("u2") == []


def test_a_chosen_id_keeps_the_usage_already_there(
    store: FirestoreWorkspaceStore, firestore_client: firestore.Client
) -> None:
    # The local stack may load usage into `demo` before it creates the workspace.
    firestore_client.document("workspaces/demo").set({"records": 42})
    assert store.workspace("demo") is None
    service.create_workspace(store, "u1", None, "Demo", NOW, workspace_id="demo")
    assert doc(firestore_client, "workspaces/demo") is not None
    assert (doc(firestore_client, "workspaces/demo") or {})["records"] == 42
    assert store.workspace("demo") is not None


def test_a_change_from_a_stale_snapshot_writes_nothing_not_even_its_mirrors(
    store: FirestoreWorkspaceStore, firestore_client: firestore.Client
) -> None:
    ws = team(store, {})
    stale = store.workspace(ws)
    assert stale is not None
    service.create_api_key(store, PEPPER, ws, "owner", "ci", "ingest", None, NOW)  # seq 2
    before = state(store, ws, ["owner", "x"])
    member = MemberDoc(
        workspace_id=ws, uid="x", role="admin", email=None, added_by="owner", added_at=NOW
    )
    made = keys.new_key(PEPPER)
    key = ApiKeyDoc(
        key_id=made.key_id,
        workspace_id=ws,
        name="k",
        scope="read",
        prefix=made.prefix,
        secret_hash=made.secret_hash,
        created_by="owner",
        created_at=NOW,
    )
    entry = AuditEntry(seq=stale.audit_seq + 1, workspace_id=ws, actor="owner", action="x", at=NOW)
    with pytest.raises(CreateConflict):
        store.commit(WorkspaceChange(entry=entry, name="Acme", members=(member,), keys=(key,)))
    assert state(store, ws, ["owner", "x"]) == before
    assert doc(firestore_client, f"users/x/workspaces/{ws}") is None
    assert doc(firestore_client, f"api_keys/{made.key_id}") is None


def test_workspaces_of_lists_each_with_the_users_role(store: FirestoreWorkspaceStore) -> None:
    assert service.ensure_personal(store, "bob", "bob@apex.test", NOW)
    ws = team(store, {"bob": "viewer"})
    mine = {w.workspace_id: (w.name, w.role) for w in store.workspaces_of("bob")}
    assert mine == {"bob": ("Personal", "owner"), ws: ("Acme", "viewer")}
    service.change_role(store, ws, "owner", "bob", "admin", NOW)
    assert {w.workspace_id: w.role for w in store.workspaces_of("bob")}[ws] == "admin"
    service.remove_member(store, ws, "owner", "bob", NOW)
    assert [w.workspace_id for w in store.workspaces_of("bob")] == ["bob"]


def test_the_audit_log_is_newest_first_bounded_and_pages_by_seq(
    store: FirestoreWorkspaceStore,
) -> None:
    ws = team(store, {})
    for n in range(6):
        service.create_api_key(store, PEPPER, ws, "owner", f"k{n}", "read", None, NOW)
    assert [e.seq for e in store.audit(ws, 3, None)] == [7, 6, 5]
    assert [e.seq for e in store.audit(ws, 3, 5)] == [4, 3, 2]
    assert [e.seq for e in store.audit(ws, 10, 3)] == [2, 1]
    assert store.audit(ws, 10, 3)[0].action == "key.created"


# --- invites ------------------------------------------------------------------------------------


def test_accepting_an_invite_adds_the_member_and_consumes_it(
    store: FirestoreWorkspaceStore, firestore_client: firestore.Client
) -> None:
    ws = team(store, {})
    made = service.invite(store, ws, "owner", "Carol@Apex.Test", "member", NOW)
    assert (made.email, made.role, made.expires_at) == (
        "carol@apex.test",
        "member",
        NOW + timedelta(days=7),
    )
    assert store.pending_invites(ws, NOW) == [made]
    assert store.invite(made.invite_id) == made
    joined, member = service.accept_invite(
        store, made.invite_id, "carol", "CAROL@apex.test", True, NOW
    )
    assert joined.workspace_id == ws
    assert (member.role, member.email, member.added_by) == ("member", "carol@apex.test", "owner")
    assert store.member(ws, "carol") == member
    assert store.pending_invites(ws, NOW) == []
    consumed = store.invite(made.invite_id)
    assert consumed is not None
    assert consumed.accepted_by == "carol"
    assert doc(firestore_client, f"invite_acceptances/{made.invite_id}") is not None
    assert audit_actions(store, ws)[-2:] == [
        (2, "invite.created", made.invite_id),
        (3, "invite.accepted", "carol"),
    ]


def test_an_expired_invite_is_no_longer_pending_and_cannot_be_accepted(
    store: FirestoreWorkspaceStore,
) -> None:
    ws = team(store, {})
    # Written as it would be after its seven days: expiry in the past, through the store.
    old = service.invite(store, ws, "owner", "dan@apex.test", "member", NOW - timedelta(days=8))
    assert old.expires_at < NOW
    assert store.pending_invites(ws, NOW) == []
    before = state(store, ws, ["dan"])
    with pytest.raises(Gone):
        service.accept_invite(store, old.invite_id, "dan", "dan@apex.test", True, NOW)
    assert state(store, ws, ["dan"]) == before
    # An admin may still withdraw it.
    service.delete_invite(store, ws, "owner", old.invite_id, NOW)
    assert store.invite(old.invite_id) is None


def test_inviting_a_member_is_a_conflict_and_a_second_invite_is_spent_by_the_first(
    store: FirestoreWorkspaceStore,
) -> None:
    ws = team(store, {"eve": "member"})
    with pytest.raises(Conflict):
        service.invite(store, ws, "owner", "EVE@apex.test", "admin", NOW)
    first = service.invite(store, ws, "owner", "fay@apex.test", "viewer", NOW)
    again = service.invite(store, ws, "owner", "FAY@apex.test", "member", NOW)
    assert {i.invite_id for i in store.pending_invites(ws, NOW)} == {
        first.invite_id,
        again.invite_id,
    }
    service.accept_invite(store, again.invite_id, "fay", "fay@apex.test", True, NOW)
    with pytest.raises(Conflict):
        service.accept_invite(store, first.invite_id, "fay", "fay@apex.test", True, NOW)
    assert store.member(ws, "fay") is not None
    assert store.member(ws, "fay").role == "member"  # type: ignore[union-attr]
    with pytest.raises(Conflict):
        service.invite(store, ws, "owner", "fay@apex.test", "viewer", NOW)


def test_pending_invites_are_bounded(store: FirestoreWorkspaceStore) -> None:
    ws = team(store, {})
    # The invites the bound allows, written through the store in one change (faster).
    invites = tuple(
        InviteDoc(
            invite_id=f"i{n}",
            workspace_id=ws,
            email=f"p{n}@apex.test",
            role="viewer",
            invited_by="owner",
            created_at=NOW,
            expires_at=NOW + service.INVITE_TTL,
        )
        for n in range(service.MAX_PENDING_INVITES)
    )
    entry = AuditEntry(seq=2, workspace_id=ws, actor="owner", action="invite.created", at=NOW)
    store.commit(WorkspaceChange(entry=entry, name="Acme", invites=invites))
    assert len(store.pending_invites(ws, NOW)) == service.MAX_PENDING_INVITES
    before = state(store, ws, [])
    with pytest.raises(Conflict):
        service.invite(store, ws, "owner", "one.more@apex.test", "viewer", NOW)
    assert state(store, ws, []) == before


# --- escalation: refused with its code, nothing changed ----------------------------------------


@pytest.mark.parametrize(
    ("attack", "error"),
    [
        # A member inviting an admin, or anyone at all.
        (lambda s, ws: service.invite(s, ws, "mem", "x@apex.test", "admin", NOW), Forbidden),
        (lambda s, ws: service.invite(s, ws, "mem", "x@apex.test", "viewer", NOW), Forbidden),
        # An admin inviting an owner, promoting to owner, demoting or removing an owner.
        (lambda s, ws: service.invite(s, ws, "adm", "x@apex.test", "owner", NOW), Forbidden),
        (lambda s, ws: service.change_role(s, ws, "adm", "mem", "owner", NOW), Forbidden),
        (lambda s, ws: service.change_role(s, ws, "adm", "adm", "owner", NOW), Forbidden),
        (lambda s, ws: service.change_role(s, ws, "adm", "owner", "admin", NOW), Forbidden),
        (lambda s, ws: service.remove_member(s, ws, "adm", "owner", NOW), Forbidden),
        # A viewer or member managing anything.
        (lambda s, ws: service.change_role(s, ws, "view", "view", "member", NOW), Forbidden),
        (lambda s, ws: service.remove_member(s, ws, "mem", "view", NOW), Forbidden),
        (
            lambda s, ws: service.create_api_key(s, PEPPER, ws, "mem", "k", "read", None, NOW),
            Forbidden,
        ),
        (lambda s, ws: service.api_keys(s, ws, "mem"), Forbidden),
        (lambda s, ws: service.audit_log(s, ws, "view", 10, None), Forbidden),
        (lambda s, ws: service.pending_invites(s, ws, "mem", NOW), Forbidden),
        # The last owner demoted, or leaving.
        (lambda s, ws: service.change_role(s, ws, "owner", "owner", "admin", NOW), Conflict),
        (lambda s, ws: service.remove_member(s, ws, "owner", "owner", NOW), Conflict),
        # An outsider, for every operation: the workspace is not revealed.
        (lambda s, ws: service.members(s, ws, "out"), NotFound),
        (lambda s, ws: service.invite(s, ws, "out", "x@apex.test", "viewer", NOW), NotFound),
        (lambda s, ws: service.change_role(s, ws, "out", "mem", "viewer", NOW), NotFound),
        (lambda s, ws: service.remove_member(s, ws, "out", "mem", NOW), NotFound),
        (lambda s, ws: service.remove_member(s, ws, "out", "out", NOW), NotFound),
        (
            lambda s, ws: service.create_api_key(s, PEPPER, ws, "out", "k", "read", None, NOW),
            NotFound,
        ),
        (lambda s, ws: service.audit_log(s, ws, "out", 10, None), NotFound),
        # A member that is not there.
        (lambda s, ws: service.change_role(s, ws, "owner", "nobody", "viewer", NOW), NotFound),
        (lambda s, ws: service.remove_member(s, ws, "owner", "nobody", NOW), NotFound),
        # Keys: expiry in the past or beyond two years.
        (
            lambda s, ws: service.create_api_key(
                s, PEPPER, ws, "owner", "k", "read", NOW - timedelta(seconds=1), NOW
            ),
            ValidationFailed,
        ),
        (
            lambda s, ws: service.create_api_key(
                s, PEPPER, ws, "owner", "k", "read", NOW + timedelta(days=731), NOW
            ),
            ValidationFailed,
        ),
    ],
)
def test_each_escalation_is_refused_and_changes_nothing(
    store: FirestoreWorkspaceStore,
    attack: Callable[[WorkspaceStore, str], object],
    error: type[ApexError],
) -> None:
    ws = team(store, {"adm": "admin", "mem": "member", "view": "viewer"})
    uids = ["owner", "adm", "mem", "view", "out", "x"]
    before = state(store, ws, uids)
    with pytest.raises(error):
        attack(store, ws)
    assert state(store, ws, uids) == before


def test_an_invite_for_another_email_or_an_unverified_one_is_refused(
    store: FirestoreWorkspaceStore,
) -> None:
    ws = team(store, {})
    made = service.invite(store, ws, "owner", "gus@apex.test", "admin", NOW)
    before = state(store, ws, ["mallory", "gus"])
    for email, verified in [
        ("mallory@apex.test", True),
        ("gus@apex.test.evil", True),
        (None, True),
        ("gus@apex.test", False),
    ]:
        with pytest.raises(Forbidden):
            service.accept_invite(store, made.invite_id, "mallory", email, verified, NOW)
    assert state(store, ws, ["mallory", "gus"]) == before
    assert store.invite(made.invite_id) == made


def test_a_replayed_invite_or_one_for_a_member_is_a_conflict(
    store: FirestoreWorkspaceStore,
) -> None:
    ws = team(store, {"hal": "viewer"})
    made = service.invite(store, ws, "owner", "ivy@apex.test", "member", NOW)
    service.accept_invite(store, made.invite_id, "ivy", "ivy@apex.test", True, NOW)
    before = state(store, ws, ["ivy"])
    with pytest.raises(Conflict):
        service.accept_invite(store, made.invite_id, "ivy", "ivy@apex.test", True, NOW)
    # Removed since, the accepted invite still cannot bring them back.
    service.remove_member(store, ws, "owner", "ivy", NOW)
    after_removal = state(store, ws, ["ivy"])
    with pytest.raises(Conflict):
        service.accept_invite(store, made.invite_id, "ivy", "ivy@apex.test", True, NOW)
    assert state(store, ws, ["ivy"]) == after_removal
    assert before != after_removal
    # An invite to an address whose owner is a member under another email on file.
    other = service.invite(store, ws, "owner", "hal.work@apex.test", "admin", NOW)
    with pytest.raises(Conflict):
        service.accept_invite(store, other.invite_id, "hal", "hal.work@apex.test", True, NOW)
    assert store.member(ws, "hal") is not None
    assert store.member(ws, "hal").role == "viewer"  # type: ignore[union-attr]


def test_a_personal_workspaces_owner_stays_its_owner(store: FirestoreWorkspaceStore) -> None:
    assert service.ensure_personal(store, "jo", "jo@apex.test", NOW)
    made = service.invite(store, "jo", "jo", "kim@apex.test", "owner", NOW)
    service.accept_invite(store, made.invite_id, "kim", "kim@apex.test", True, NOW)
    before = state(store, "jo", ["jo", "kim"])
    # Two owners, yet the one whose workspace it is cannot be demoted, removed or leave.
    with pytest.raises(Conflict):
        service.change_role(store, "jo", "kim", "jo", "admin", NOW)
    with pytest.raises(Conflict):
        service.remove_member(store, "jo", "kim", "jo", NOW)
    with pytest.raises(Conflict):
        service.remove_member(store, "jo", "jo", "jo", NOW)
    assert state(store, "jo", ["jo", "kim"]) == before
    # The other owner may leave.
    service.remove_member(store, "jo", "kim", "kim", NOW)
    assert [m.uid for m in store.members("jo")] == ["jo"]


def test_what_admins_and_owners_may_do(store: FirestoreWorkspaceStore) -> None:
    ws = team(store, {"adm": "admin", "mem": "member", "view": "viewer", "o2": "owner"})
    assert service.change_role(store, ws, "adm", "view", "member", NOW).role == "member"
    assert service.change_role(store, ws, "adm", "mem", "admin", NOW).role == "admin"
    # The same role again changes nothing and logs nothing.
    seq = audit_actions(store, ws)[-1][0]
    assert service.change_role(store, ws, "adm", "mem", "admin", NOW).role == "admin"
    assert audit_actions(store, ws)[-1][0] == seq
    service.remove_member(store, ws, "adm", "view", NOW)
    service.remove_member(store, ws, "mem", "mem", NOW)  # leaving needs no role
    # An owner demotes another owner while one stays.
    assert service.change_role(store, ws, "owner", "o2", "admin", NOW).role == "admin"
    assert {m.uid: m.role for m in store.members(ws)} == {
        "owner": "owner",
        "adm": "admin",
        "o2": "admin",
    }
    assert [a for _, a, _ in audit_actions(store, ws)][-5:] == [
        "member.role_changed",
        "member.role_changed",
        "member.removed",
        "member.left",
        "member.role_changed",
    ]


def test_keys_are_listed_without_secrets_and_revoked_keys_stay_listed(
    store: FirestoreWorkspaceStore, firestore_client: firestore.Client
) -> None:
    ws = team(store, {"adm": "admin"})
    key, credential = service.create_api_key(
        store, PEPPER, ws, "adm", "ci", "ingest", NOW + timedelta(days=30), NOW
    )
    presented = keys.parse(credential)
    assert presented.key_id == key.key_id
    assert keys.matches(PEPPER, presented, key.secret_hash)
    assert store.api_key(key.key_id) == key
    stored = doc(firestore_client, f"workspaces/{ws}/api_keys/{key.key_id}") or {}
    assert presented.secret not in str(stored)
    assert credential not in str(stored)
    # A use recorded between the revoker's read and its commit is kept.
    store.touch_key(key, NOW + timedelta(minutes=5))
    revoked = service.revoke_api_key(store, ws, "owner", key.key_id, NOW + timedelta(hours=1))
    assert revoked.revoked_at == NOW + timedelta(hours=1)
    for mirror in (store.api_key(key.key_id), store.api_keys(ws, 10)[0]):
        assert mirror is not None
        assert mirror.revoked_at == NOW + timedelta(hours=1)
        assert mirror.last_used_at == NOW + timedelta(minutes=5)
    # Revoking again changes nothing; another workspace's key is not found here.
    seq = audit_actions(store, ws)[-1][0]
    service.revoke_api_key(store, ws, "owner", key.key_id, NOW + timedelta(hours=2))
    assert audit_actions(store, ws)[-1] == (seq, "key.revoked", key.key_id)
    other = team(store, {})
    with pytest.raises(NotFound):
        service.revoke_api_key(store, other, "owner", key.key_id, NOW)


# --- races --------------------------------------------------------------------------------------


def test_two_admins_removing_each_other_at_once_end_with_one_removed(
    firestore_client: firestore.Client,
) -> None:
    store = Interleaved(firestore_client, parties=2)
    ws = team(FirestoreWorkspaceStore(firestore_client), {"a1": "admin", "a2": "admin"})
    results = race(
        [
            lambda: service.remove_member(store, ws, "a1", "a2", NOW),
            lambda: service.remove_member(store, ws, "a2", "a1", NOW),
        ]
    )
    assert store.conflicts == 1  # both decided from one snapshot; the loser decided again
    removed = [r for r in results if isinstance(r, MemberDoc)]
    refused = [r for r in results if isinstance(r, ApexError)]
    assert len(removed) == 1
    assert len(refused) == 1
    # The loser is no longer a member, so the workspace is not theirs to see: 404.
    assert isinstance(refused[0], NotFound)
    survivors = {m.uid for m in store.members(ws)}
    assert survivors == {"owner", "a1", "a2"} - {removed[0].uid}
    assert audit_actions(store, ws)[-1] == (6, "member.removed", removed[0].uid)
    assert [a for _, a, _ in audit_actions(store, ws)].count("member.removed") == 1


def test_two_owners_demoting_each_other_at_once_keep_an_owner(
    firestore_client: firestore.Client,
) -> None:
    store = Interleaved(firestore_client, parties=2)
    plain = FirestoreWorkspaceStore(firestore_client)
    ws = team(plain, {"o2": "owner"})
    results = race(
        [
            lambda: service.change_role(store, ws, "owner", "o2", "member", NOW),
            lambda: service.change_role(store, ws, "o2", "owner", "member", NOW),
        ]
    )
    assert store.conflicts == 1
    # The loser is no longer an admin: refused (403) by the rules decided again.
    assert sorted(type(r).__name__ for r in results) == ["Forbidden", "MemberDoc"]
    assert sorted(m.role for m in store.members(ws)) == ["member", "owner"]
    assert [a for _, a, _ in audit_actions(store, ws)].count("member.role_changed") == 1


def test_two_accepts_of_one_invite_at_once_join_once(firestore_client: firestore.Client) -> None:
    plain = FirestoreWorkspaceStore(firestore_client)
    ws = team(plain, {})
    made = service.invite(plain, ws, "owner", "liz@apex.test", "member", NOW)
    store = Interleaved(firestore_client, parties=2)
    results = race(
        [
            lambda: service.accept_invite(store, made.invite_id, "liz", "liz@apex.test", True, NOW)
            for _ in range(2)
        ]
    )
    assert store.conflicts == 1
    assert sorted(type(r).__name__ for r in results) == ["Conflict", "tuple"]
    assert [m.uid for m in store.members(ws)] == ["liz", "owner"]
    assert [a for _, a, _ in audit_actions(store, ws)] == [
        "workspace.created",
        "invite.created",
        "invite.accepted",
    ]


def test_many_concurrent_changes_all_commit_with_a_complete_audit_log(
    firestore_client: firestore.Client,
) -> None:
    plain = FirestoreWorkspaceStore(firestore_client)
    ws = team(plain, {})
    store = Interleaved(firestore_client, parties=6)
    results = race(
        [
            partial(service.create_api_key, store, PEPPER, ws, "owner", f"k{n}", "read", None, NOW)
            for n in range(6)
        ]
    )
    made = [r for r in results if isinstance(r, tuple)]
    assert len(made) == 6
    assert store.conflicts >= 5
    listed = {k.key_id for k in store.api_keys(ws, 100)}
    assert listed == {key.key_id for key, _ in made}
    logged = [target for _, action, target in audit_actions(store, ws) if action == "key.created"]
    assert set(logged) == listed
    assert len(logged) == 6


class Contended(FirestoreWorkspaceStore):
    """The real store, where another change of the workspace commits just before each of
    this caller's commits (a workspace changed faster than a change can be decided)."""

    def commit(self, change: WorkspaceChange) -> None:
        rival = AuditEntry(
            seq=change.entry.seq,
            workspace_id=change.entry.workspace_id,
            actor="rival",
            action="rival.change",
            at=NOW,
        )
        super().commit(WorkspaceChange(entry=rival, name=change.name))
        super().commit(change)


def test_a_change_outrun_every_time_is_unavailable_and_writes_nothing(
    firestore_client: firestore.Client,
) -> None:
    ws = team(FirestoreWorkspaceStore(firestore_client), {"mo": "viewer"})
    store = Contended(firestore_client)
    with pytest.raises(Unavailable) as refused:
        service.change_role(store, ws, "owner", "mo", "admin", NOW)
    assert refused.value.retry_after_s == service.RETRY_AFTER_S
    assert store.member(ws, "mo") is not None
    assert store.member(ws, "mo").role == "viewer"  # type: ignore[union-attr]
    # Each attempt lost to a rival, whose changes are all in the log; this one is not.
    assert [a for _, a, _ in audit_actions(store, ws)][3:] == ["rival.change"] * service.ATTEMPTS
