"""Firebase ID token → identity; an identity (or an API key) in a workspace → principal.

Verification has two stages, both always run:
1. the token itself: firebase-admin checks signature, audience, issuer and expiry (with the
   Auth emulator it checks neither signature nor expiry, so Apex checks `exp` itself);
2. the account: disabled, or its tokens revoked since this one was issued (the same test as
   firebase-admin's `check_revoked=True`, done here so the stages can be tested apart).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import firebase_admin
from firebase_admin import auth as fb_auth
from firebase_admin import exceptions as fb_exceptions
from pydantic import BaseModel, ConfigDict

from shared.errors import Unauthenticated, Unavailable
from shared.workspaces.roles import Role


class Identity(BaseModel):
    """Who a verified ID token says the caller is. Custom claims grant nothing: workspaces
    and roles are data (DESIGN §9)."""

    model_config = ConfigDict(frozen=True)

    uid: str
    email: str | None
    email_verified: bool
    expires_at: int  # the token's `exp`, seconds since the epoch


class Principal(BaseModel):
    """Who acts, in which workspace, with which role: a signed-in user (``key_id`` None) or
    an API key (``uid`` is ``key:{key_id}``, ``role`` what its scope amounts to)."""

    model_config = ConfigDict(frozen=True)

    uid: str
    workspace_id: str
    role: Role
    email: str | None = None
    email_verified: bool = False
    expires_at: int | None = None  # the ID token's `exp`; None for an API key
    key_id: str | None = None

    @property
    def is_key(self) -> bool:
        return self.key_id is not None


class TokenVerifier:
    def __init__(self, app: firebase_admin.App, clock: Callable[[], float] = time.time) -> None:
        self._app = app
        self._clock = clock

    def verify(self, token: str) -> Identity:
        claims = self.verify_token(token)
        self.check_account(claims)
        return Identity(
            uid=claims["uid"],
            email=claims.get("email"),
            email_verified=claims.get("email_verified") is True,
            expires_at=int(claims["exp"]),
        )

    def verify_token(self, token: str) -> dict[str, Any]:
        if not token:
            raise Unauthenticated("no ID token was given")
        try:
            claims: dict[str, Any] = fb_auth.verify_id_token(token, app=self._app)
        except fb_auth.ExpiredIdTokenError as e:
            raise Unauthenticated("the ID token has expired; sign in again") from e
        except fb_auth.CertificateFetchError as e:
            raise Unavailable("cannot fetch Google's token certificates", retry_after_s=5) from e
        except (fb_auth.InvalidIdTokenError, ValueError) as e:
            raise Unauthenticated(f"the ID token is not valid: {_first_sentence(e)}") from e
        exp = claims.get("exp")
        if not isinstance(exp, int) or exp <= self._clock():
            raise Unauthenticated("the ID token has expired; sign in again")
        return claims

    def check_account(self, claims: dict[str, Any]) -> None:
        try:
            user = fb_auth.get_user(claims["uid"], app=self._app)
        except fb_auth.UserNotFoundError as e:
            raise Unauthenticated("the account no longer exists") from e
        except fb_exceptions.FirebaseError as e:
            raise Unavailable("cannot reach Firebase Auth to check the account") from e
        if user.disabled:
            raise Unauthenticated("the account is disabled")
        # tokens_valid_after_timestamp is in ms, iat in s: revocation has 1 s granularity.
        valid_after_ms = user.tokens_valid_after_timestamp or 0
        if int(claims.get("iat", 0)) * 1000 < valid_after_ms:
            raise Unauthenticated("the ID token has been revoked; sign in again")


def _first_sentence(error: Exception) -> str:
    return str(error).split(". ")[0].rstrip(".")
