"""Teams from a test's side, over HTTP against a running stack's `workspaces` function
(DESIGN §9): what a second browser or a script would do, to set a team up and to check what
the chat page did. Users have verified emails (accepting an invite needs one)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from devstack.auth_emulator import AuthEmulator
from shared.workspaces.roles import Role
from tests.support.relay import ChatUser, sign_up_chat_user


def verified_chat_user(auth: AuthEmulator) -> ChatUser:
    """A new user whose email is verified, with a token issued after that (so it says so)."""
    user = sign_up_chat_user(auth)
    auth.update(user.uid, emailVerified=True)
    signed_in = auth.sign_in(user.email, user.password)
    return ChatUser(user.uid, user.email, user.password, user.workspace, signed_in.id_token)


@dataclass(frozen=True)
class Workspaces:
    """The `workspaces` function at ``url``, called as one user or another."""

    url: str

    def call(
        self, user: ChatUser, method: str, path: str, body: object = None, status: int = 200
    ) -> Any:
        """``method path`` as ``user``; the answer must be ``status``; its JSON (None: 204)."""
        response = httpx.request(
            method,
            self.url.rstrip("/") + path,
            json=body,
            headers={"Authorization": f"Bearer {user.id_token}"},
            timeout=30,
        )
        assert response.status_code == status, (method, path, response.status_code, response.text)
        return None if status == 204 else response.json()

    def mine(self, user: ChatUser) -> dict[str, Role]:
        """``GET /``: the user's workspaces and their role in each."""
        body = self.call(user, "GET", "/")
        return {w["workspace_id"]: w["role"] for w in body["workspaces"]}

    def create(self, owner: ChatUser, name: str) -> str:
        body = self.call(owner, "POST", "/", {"name": name}, status=201)
        assert body["role"] == "owner", body
        return str(body["workspace_id"])

    def invite(self, inviter: ChatUser, workspace: str, email: str, role: Role) -> str:
        body = {"email": email, "role": role}
        invite = self.call(inviter, "POST", f"/{workspace}/invites", body, status=201)
        return str(invite["invite_id"])

    def join(self, inviter: ChatUser, workspace: str, user: ChatUser, role: Role) -> None:
        """``user`` invited as ``role`` and accepting, as the page does."""
        invite_id = self.invite(inviter, workspace, user.email, role)
        joined = self.call(user, "POST", f"/invites/{invite_id}/accept", {})
        assert (joined["workspace_id"], joined["role"]) == (workspace, role), joined

    def members(self, user: ChatUser, workspace: str) -> dict[str, Role]:
        body = self.call(user, "GET", f"/{workspace}/members")
        return {m["uid"]: m["role"] for m in body["members"]}

    def invites(self, user: ChatUser, workspace: str) -> list[dict[str, Any]]:
        invites: list[dict[str, Any]] = self.call(user, "GET", f"/{workspace}/invites")["invites"]
        return invites

    def keys(self, user: ChatUser, workspace: str) -> list[dict[str, Any]]:
        keys: list[dict[str, Any]] = self.call(user, "GET", f"/{workspace}/keys")["keys"]
        return keys

    def remove(self, user: ChatUser, workspace: str, uid: str) -> None:
        self.call(user, "DELETE", f"/{workspace}/members/{uid}", status=204)
