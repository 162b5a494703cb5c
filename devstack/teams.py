"""Local-stack tooling for teams: put a user in a workspace the way the product does it
(the workspace's owner invites, the user accepts), for benchmarks and load scripts that
need many users in one workspace. The user's email counts as verified: this runs with the
operator's rights against the local emulators, never in a request."""

from __future__ import annotations

from datetime import UTC, datetime

from shared.store.interfaces import WorkspaceStore
from shared.workspaces import service
from shared.workspaces.roles import Role


def join(store: WorkspaceStore, workspace_id: str, uid: str, email: str, role: Role) -> None:
    """``uid`` becomes a ``role`` of ``workspace_id`` (its owner if the workspace is new)."""
    now = datetime.now(UTC)
    if store.workspace(workspace_id) is None:
        service.create_workspace(store, uid, email, workspace_id, now, workspace_id=workspace_id)
        if role == "owner":
            return
    if store.member(workspace_id, uid) is not None:
        return
    owner = next(m for m in store.members(workspace_id) if m.role == "owner")
    invite = service.invite(store, workspace_id, owner.uid, email, role, now)
    service.accept_invite(store, invite.invite_id, uid, email, True, now)
