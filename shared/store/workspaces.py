"""The workspace store in Firestore (``WorkspaceStore``, DESIGN §9).

Layout: ``workspaces/{ws}`` (beside the usage catalogue's fields), ``members/{uid}``,
``invites/{id}``, ``api_keys/{key_id}`` and ``audit/{seq}`` below it; top-level mirrors
written in the same batch for lookups that do not know the workspace: ``invites/{id}``,
``api_keys/{key_id}`` and ``users/{uid}/workspaces/{ws}``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from google.api_core.exceptions import AlreadyExists
from google.cloud import firestore

from shared.store.documents import ApiKeyDoc, AuditEntry, MemberDoc, MyWorkspace, WorkspaceDoc

WORKSPACES: Final = "workspaces"
MEMBERS: Final = "members"
INVITES: Final = "invites"
API_KEYS: Final = "api_keys"
AUDIT: Final = "audit"
USERS: Final = "users"
PERSONAL_NAME: Final = "Personal"


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

    def member(self, workspace_id: str, uid: str) -> MemberDoc | None:
        snap = self._member(workspace_id, uid).get()
        return MemberDoc.model_validate(snap.to_dict()) if snap.exists else None

    def api_key(self, key_id: str) -> ApiKeyDoc | None:
        snap = self._db.collection(API_KEYS).document(key_id).get()
        return ApiKeyDoc.model_validate(snap.to_dict()) if snap.exists else None

    def ensure_personal(self, uid: str, email: str | None, now: datetime) -> bool:
        # The owner's member document is the create-if-absent key: the workspace document
        # itself may already exist (usage sent before workspaces were data, DESIGN §9).
        workspace = WorkspaceDoc(
            workspace_id=uid,
            name=PERSONAL_NAME,
            created_by=uid,
            created_at=now,
            personal=True,
            audit_seq=1,
        )
        owner = MemberDoc(
            workspace_id=uid, uid=uid, role="owner", email=email, added_by=uid, added_at=now
        )
        entry = AuditEntry(
            seq=1,
            workspace_id=uid,
            actor=uid,
            action="workspace.created",
            target=uid,
            detail={"name": PERSONAL_NAME, "personal": True},
            at=now,
        )
        batch = self._db.batch()
        batch.create(self._member(uid, uid), owner.model_dump())
        batch.set(self._workspace(uid), workspace.model_dump(), merge=True)
        batch.set(
            self._mine(uid, uid),
            MyWorkspace(workspace_id=uid, name=PERSONAL_NAME, role="owner").model_dump(),
        )
        batch.create(
            self._workspace(uid).collection(AUDIT).document(audit_id(1)), entry.model_dump()
        )
        try:
            batch.commit()
        except AlreadyExists:
            return False
        return True

    def touch_key(self, key: ApiKeyDoc, now: datetime) -> None:
        batch = self._db.batch()
        fields = {"last_used_at": now}
        batch.update(self._db.collection(API_KEYS).document(key.key_id), fields)
        batch.update(
            self._workspace(key.workspace_id).collection(API_KEYS).document(key.key_id), fields
        )
        batch.commit()
