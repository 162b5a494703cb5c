"""The relay from a test's side: its chat users, a relay process a test started, and the
project the Auth emulator serves to the page's SDK."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass, field

import httpx

from devstack.auth_emulator import API_KEY, AuthEmulator
from devstack.procs import ManagedProcess
from devstack.synthetic import SyntheticWorkspace

PASSWORD = "pw-relay-123"


def auth_default_project(auth_host: str) -> str:
    """The project the Auth emulator serves to API-key clients such as the page's SDK.

    The emulator answers ``accounts:signInWithPassword?key=...`` for the project it was
    started with, whatever the key (only admin requests name a ``targetProjectId``); so the
    page can sign in only where the stack runs on that project. An anonymous sign-up's token
    names it in ``aud``.
    """
    response = httpx.post(
        f"http://{auth_host}/identitytoolkit.googleapis.com/v1/accounts:signUp",
        params={"key": API_KEY},
        json={"returnSecureToken": True},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    payload = response.json()["idToken"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return str(claims["aud"])


@dataclass(frozen=True)
class ChatUser:
    uid: str
    email: str
    password: str
    workspace: str
    id_token: str

    def token_expiring_at(self, exp: int) -> str:
        """This user's token with another ``exp``. The Auth emulator signs nothing (alg
        none) and firebase-admin then checks no signature, so Apex's own ``exp`` check is
        what decides (DESIGN §7)."""
        header, payload, _ = self.id_token.split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * 4))
        claims["exp"] = exp
        body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
        return f"{header}.{body}."


def sign_up_chat_user(auth: AuthEmulator) -> ChatUser:
    """A new user, acting in their personal workspace (id = uid, DESIGN §9)."""
    email = f"chat-{uuid.uuid4().hex[:10]}@apex.test"
    user = auth.sign_up(email, PASSWORD)
    return ChatUser(user.uid, email, PASSWORD, user.uid, user.id_token)


@dataclass(frozen=True)
class PlantedUser:
    user: ChatUser
    planted: SyntheticWorkspace


@dataclass
class OwnRelay:
    """A relay process a test started (and may kill)."""

    process: ManagedProcess
    url: str
    relay_id: str = field(default="")

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://", 1) + "/ws"
