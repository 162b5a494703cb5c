"""The workspace store in Firestore (``WorkspaceStore``, DESIGN §9).

Layout: ``workspaces/{ws}`` (beside the usage catalogue's fields), ``members/{uid}``,
``invites/{id}`` (pending ones), ``api_keys/{key_id}`` and ``audit/{seq}`` below it;
top-level mirrors written in the same batch for lookups that do not know the workspace:
``invites/{id}`` (kept once accepted, so a replay is told so), ``api_keys/{key_id}`` and
``users/{uid}/workspaces/{ws}``; ``config/settings`` below it for the workspace's prices and
settings; ``invite_acceptances/{id}``, created when an invite is
accepted (create-if-absent: of two accepts one commits).

Every change of a workspace is one batch that creates its next audit entry
(``WorkspaceChange``): the emulator has no transaction conflict detection but enforces
create-if-absent, and so does Firestore, so two changes built from the same snapshot cannot
both commit, here or in production.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from google.api_core.exceptions import AlreadyExists
from google.cloud import firestore

from shared.store.documents import (
    ApiKeyDoc,
    AuditEntry,
    InviteDoc,
    MemberDoc,
    MyWorkspace,
    WorkspaceDoc,
    WorkspaceSettingsDoc,
)
from shared.store.interfaces import CreateConflict, WorkspaceChange

WORKSPACES: Final = "workspaces"
MEMBERS: Final = "members"
INVITES: Final = "invites"
API_KEYS: Final = "api_keys"
AUDIT: Final = "audit"
USERS: Final = "users"
ACCEPTANCES: Final = "invite_acceptances"
CONFIG: Final = "config"
SETTINGS: Final = "settings"


def audit_id(seq: int) -> str:
    """Zero-padded, so the ids sort as the sequence does."""
    return f"{seq:012d}"


class FirestoreWorkspaceStore:
    def __init__(self, client: firestore.Client) -> None:
        self._db = client

    def _workspace(self, workspace_id: str) -> firestore.DocumentReference:
        return self._db.collection(WORKSPACES).document(workspace_id)

    def _member(self, workspace_id: str, uid: str) -> firestore.DocumentReference:
        ref: firestore.DocumentReference = (
            self._workspace(workspace_id).collection(MEMBERS).document(uid)
        )
        return ref

    def _mine(self, uid: str, workspace_id: str) -> firestore.DocumentReference:
        ref: firestore.DocumentReference = (
            self._db.collection(USERS).document(uid).collection(WORKSPACES).document(workspace_id)
        )
        return ref

    def _invite(self, workspace_id: str, invite_id: str) -> firestore.DocumentReference:
        ref: firestore.DocumentReference = (
            self._workspace(workspace_id).collection(INVITES).document(invite_id)
        )
        return ref

    def _key(self, workspace_id: str, key_id: str) -> firestore.DocumentReference:
        ref: firestore.DocumentReference = (
            self._workspace(workspace_id).collection(API_KEYS).document(key_id)
        )
        return ref

    def _entry(self, workspace_id: str, seq: int) -> firestore.DocumentReference:
        ref: firestore.DocumentReference = (
            self._workspace(workspace_id).collection(AUDIT).document(audit_id(seq))
        )
        return ref

    def member(self, workspace_id: str, uid: str) -> MemberDoc | None:
        snap = self._member(workspace_id, uid).get()
        return MemberDoc.model_validate(snap.to_dict()) if snap.exists else None

    def api_key(self, key_id: str) -> ApiKeyDoc | None:
        snap = self._db.collection(API_KEYS).document(key_id).get()
        return ApiKeyDoc.model_validate(snap.to_dict()) if snap.exists else None

    def touch_key(self, key: ApiKeyDoc, now: datetime) -> None:
        batch = self._db.batch()
        fields = {"last_used_at": now}
        batch.update(self._db.collection(API_KEYS).document(key.key_id), fields)
        batch.update(self._key(key.workspace_id, key.key_id), fields)
        batch.commit()

    # --- the rest of the read side ---------------------------------------------------------------

    def workspace(self, workspace_id: str) -> WorkspaceDoc | None:
        snap = self._workspace(workspace_id).get()
        data = snap.to_dict() if snap.exists else None
        # A document with only the usage catalogue (usage sent before workspaces were data,
        # or to an id nobody created) is no workspace.
        if data is None or "name" not in data:
            return None
        return WorkspaceDoc.model_validate(data)

    def members(self, workspace_id: str) -> list[MemberDoc]:
        found = [
            MemberDoc.model_validate(snap.to_dict())
            for snap in self._workspace(workspace_id).collection(MEMBERS).stream()
        ]
        return sorted(found, key=lambda m: m.uid)

    def workspaces_of(self, uid: str) -> list[MyWorkspace]:
        mine = self._db.collection(USERS).document(uid).collection(WORKSPACES)
        found = [MyWorkspace.model_validate(snap.to_dict()) for snap in mine.stream()]
        return sorted(found, key=lambda w: w.workspace_id)

    def invite(self, invite_id: str) -> InviteDoc | None:
        snap = self._db.collection(INVITES).document(invite_id).get()
        return InviteDoc.model_validate(snap.to_dict()) if snap.exists else None

    def pending_invites(self, workspace_id: str, now: datetime) -> list[InviteDoc]:
        query = (
            self._workspace(workspace_id)
            .collection(INVITES)
            .where(filter=firestore.FieldFilter("expires_at", ">", now))
            .order_by("expires_at")
        )
        return [InviteDoc.model_validate(snap.to_dict()) for snap in query.stream()]

    def api_keys(self, workspace_id: str, limit: int) -> list[ApiKeyDoc]:
        query = (
            self._workspace(workspace_id)
            .collection(API_KEYS)
            .order_by("created_at", direction=firestore.Query.DESCENDING)
            .limit(limit)
        )
        return [ApiKeyDoc.model_validate(snap.to_dict()) for snap in query.stream()]

    def audit(self, workspace_id: str, limit: int, before_seq: int | None) -> list[AuditEntry]:
        query: firestore.Query = self._workspace(workspace_id).collection(AUDIT)
        if before_seq is not None:
            # A range filter, not a cursor: the local emulator ignores cursors (DESIGN §6).
            query = query.where(filter=firestore.FieldFilter("seq", "<", before_seq))
        query = query.order_by("seq", direction=firestore.Query.DESCENDING).limit(limit)
        return [AuditEntry.model_validate(snap.to_dict()) for snap in query.stream()]

    def _settings(self, workspace_id: str) -> firestore.DocumentReference:
        ref: firestore.DocumentReference = (
            self._workspace(workspace_id).collection(CONFIG).document(SETTINGS)
        )
        return ref

    def settings(self, workspace_id: str) -> WorkspaceSettingsDoc:
        snap = self._settings(workspace_id).get()
        if not snap.exists:
            return WorkspaceSettingsDoc()
        return WorkspaceSettingsDoc.model_validate(snap.to_dict())

    # --- the write side ------------------------------------------------------------------------

    def commit(self, change: WorkspaceChange) -> None:
        ws = change.entry.workspace_id
        batch = self._db.batch()
        batch.create(self._entry(ws, change.entry.seq), change.entry.model_dump())
        if change.created is not None:
            # Merged: the document may already hold a usage catalogue; the audit entry's
            # create is what makes a second creation of the same id conflict.
            batch.set(self._workspace(ws), change.created.model_dump(), merge=True)
        else:
            batch.update(self._workspace(ws), {"audit_seq": change.entry.seq})
        for member in change.members:
            batch.set(self._member(ws, member.uid), member.model_dump())
            mirror = MyWorkspace(workspace_id=ws, name=change.name, role=member.role)
            batch.set(self._mine(member.uid, ws), mirror.model_dump())
        for uid in change.removed_members:
            batch.delete(self._member(ws, uid))
            batch.delete(self._mine(uid, ws))
        for invite in change.invites:
            batch.create(self._invite(ws, invite.invite_id), invite.model_dump())
            batch.create(
                self._db.collection(INVITES).document(invite.invite_id), invite.model_dump()
            )
        for invite_id in change.removed_invites:
            batch.delete(self._invite(ws, invite_id))
            batch.delete(self._db.collection(INVITES).document(invite_id))
        accepted = change.consumed_invite
        if accepted is not None:
            batch.create(
                self._db.collection(ACCEPTANCES).document(accepted.invite_id),
                {"workspace_id": ws, "uid": accepted.accepted_by, "at": accepted.accepted_at},
            )
            batch.delete(self._invite(ws, accepted.invite_id))
            batch.set(
                self._db.collection(INVITES).document(accepted.invite_id), accepted.model_dump()
            )
        for key in change.keys:
            batch.create(self._key(ws, key.key_id), key.model_dump())
            batch.create(self._db.collection(API_KEYS).document(key.key_id), key.model_dump())
        for key in change.revoked_keys:
            # Only the field that changed: a concurrent ``touch_key`` keeps its last_used_at.
            fields = {"revoked_at": key.revoked_at}
            batch.update(self._key(ws, key.key_id), fields)
            batch.update(self._db.collection(API_KEYS).document(key.key_id), fields)
        if change.settings is not None:
            # Decimals as strings, dates as ISO days: read back exactly as set.
            fields = change.settings.model_dump(mode="json", by_alias=True)
            batch.set(self._settings(ws), fields)
        try:
            batch.commit()
        except AlreadyExists as e:
            raise CreateConflict(str(e)) from e
