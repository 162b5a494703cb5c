"""The workspace's webhook signing secret and the ``X-Apex-Signature`` header (DESIGN §11):
``sha256=`` + the lowercase hex HMAC-SHA256 of the exact body bytes, keyed with the secret
string as shown to the admin (UTF-8)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Final

SECRET_PREFIX: Final = "whsec_"  # noqa: S105 - a prefix, not a secret
SECRET_BYTES: Final = 32
SIGNATURE_HEADER: Final = "X-Apex-Signature"


def new_secret() -> str:
    """``whsec_`` + 32 random bytes, base64url (256 bits)."""
    return SECRET_PREFIX + secrets.token_urlsafe(SECRET_BYTES)


def signature(body: bytes, secret: str) -> str:
    """The header's value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, secret: str, header: str) -> bool:
    """What a receiver does (docs/budgets.md): compare in constant time."""
    return hmac.compare_digest(signature(body, secret), header)
