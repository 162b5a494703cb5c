"""A client of the Firebase Auth emulator's REST API (Identity Toolkit v1).

It does what a signed-in browser and an administrator would: sign up, sign in for a real
ID token, set custom claims. Requests carry `Authorization: Bearer owner` (the emulator's
admin credential) and `targetProjectId`, so one emulator serves a project per test.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

API_KEY = "fake-api-key"  # the emulator accepts any key; a key is still required on the URL


class AuthEmulatorError(RuntimeError):
    def __init__(self, operation: str, status: int, message: str) -> None:
        super().__init__(f"Auth emulator {operation} failed ({status}): {message}")
        self.status = status
        self.message = message


@dataclass(frozen=True)
class SignedIn:
    uid: str
    email: str
    id_token: str
    refresh_token: str


class AuthEmulator:
    def __init__(self, host: str, project: str, timeout: float = 10.0) -> None:
        self.host = host
        self.project = project
        self._http = httpx.Client(
            base_url=f"http://{host}/identitytoolkit.googleapis.com/v1",
            headers={"Authorization": "Bearer owner"},
            timeout=timeout,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AuthEmulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _post(self, operation: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = self._http.post(path, params={"key": API_KEY}, json=body)
        data: dict[str, Any] = r.json()
        if r.status_code != 200:
            raise AuthEmulatorError(operation, r.status_code, data["error"]["message"])
        return data

    def sign_up(self, email: str, password: str) -> SignedIn:
        self._post(
            "signUp",
            "/accounts:signUp",
            {"email": email, "password": password, "targetProjectId": self.project},
        )
        return self.sign_in(email, password)

    def sign_in(self, email: str, password: str) -> SignedIn:
        data = self._post(
            "signInWithPassword",
            "/accounts:signInWithPassword",
            {
                "email": email,
                "password": password,
                "returnSecureToken": True,
                "targetProjectId": self.project,
            },
        )
        return SignedIn(data["localId"], data["email"], data["idToken"], data["refreshToken"])

    def update(self, uid: str, **fields: Any) -> None:
        """accounts:update, e.g. `password=`, `disableUser=True`, `validSince=` (revocation)."""
        self._post(
            "update", f"/projects/{self.project}/accounts:update", {"localId": uid, **fields}
        )

    def set_claims(self, uid: str, claims: dict[str, Any]) -> None:
        """Custom claims appear in ID tokens issued after this call (sign in again)."""
        self.update(uid, customAttributes=json.dumps(claims))

    def find_uid(self, email: str) -> str | None:
        data = self._post("lookup", f"/projects/{self.project}/accounts:lookup", {"email": [email]})
        users = data.get("users", [])
        return str(users[0]["localId"]) if users else None
