"""Teams built the way users build them (DESIGN §9): the owner creates a workspace through
the `workspaces` function, invites each colleague by email, and each accepts, signed in
with their verified email. For the in-process functions (functions-framework test clients).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask.testing import FlaskClient

from devstack.auth_emulator import AuthEmulator, SignedIn
from shared.workspaces.roles import Role

PASSWORD = "pw-123456"  # the throwaway emulator accounts of tests/conftest.py sign_up


def bearer(user: SignedIn, workspace: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {user.id_token}"}
    if workspace is not None:
        headers["X-Apex-Workspace"] = workspace
    return headers


def verified(auth: AuthEmulator, user: SignedIn, password: str = PASSWORD) -> SignedIn:
    """The user with a verified email, signed in again so the token says so."""
    auth.update(user.uid, emailVerified=True)
    return auth.sign_in(user.email, password)


@dataclass(frozen=True)
class Team:
    workspace_id: str
    users: Mapping[Role, SignedIn]

    def headers(self, role: Role) -> dict[str, str]:
        return bearer(self.users[role], self.workspace_id)


def create_workspace(api: FlaskClient, owner: SignedIn, name: str) -> str:
    response = api.post("/", json={"name": name}, headers=bearer(owner))
    assert response.status_code == 201, response.get_json()
    body: dict[str, Any] = response.get_json()
    assert body["role"] == "owner"
    return str(body["workspace_id"])


def join(
    api: FlaskClient,
    auth: AuthEmulator,
    inviter: SignedIn,
    workspace: str,
    user: SignedIn,
    role: Role,
) -> SignedIn:
    """Invite ``user`` as ``role`` and accept it as them; their verified, fresh sign-in."""
    invited = api.post(
        f"/{workspace}/invites", json={"email": user.email, "role": role}, headers=bearer(inviter)
    )
    assert invited.status_code == 201, invited.get_json()
    user = verified(auth, user)
    accepted = api.post(f"/invites/{invited.get_json()['invite_id']}/accept", headers=bearer(user))
    assert accepted.status_code == 200, accepted.get_json()
    assert accepted.get_json()["role"] == role
    return user


def make_team(api: FlaskClient, auth: AuthEmulator, users: Mapping[Role, SignedIn]) -> Team:
    """A workspace owned by ``users["owner"]`` with each other user in their role."""
    owner = users["owner"]
    workspace = create_workspace(api, owner, "Acme")
    joined: dict[Role, SignedIn] = {"owner": owner}
    for role, user in users.items():
        if role != "owner":
            joined[role] = join(api, auth, owner, workspace, user, role)
    return Team(workspace, joined)
