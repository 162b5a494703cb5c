"""API keys (DESIGN §9): ``apx_{key_id}_{secret}``, only a keyed hash of the secret kept.

``key_id`` is lower-case letters and digits (never ``_``), so the credential splits on its
first two underscores; the secret is 32 random bytes, base64url (it may hold ``_`` and
``-``). The hash is HMAC-SHA256 keyed with the pepper over the key id and the secret, so a
leaked key document (or a copied hash moved to another key id) grants nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import string
from dataclasses import dataclass
from typing import Final, Literal

from shared.errors import Unauthenticated

KeyScope = Literal["ingest", "read"]
KEY_PREFIX: Final = "apx_"
KEY_ID_CHARS: Final = 16
SECRET_BYTES: Final = 32
# Characters of the secret a listing shows, so a person can tell their keys apart.
SHOWN_SECRET_CHARS: Final = 4
_KEY_ID_ALPHABET: Final = string.ascii_lowercase + string.digits
_CREDENTIAL: Final = re.compile(r"^apx_([a-z0-9]{16})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True, slots=True, repr=False)
class NewKey:
    key_id: str
    credential: str  # the whole `apx_…` string: shown once, never stored
    prefix: str  # what a listing shows: `apx_{key_id}_` and the secret's first characters
    secret_hash: str


@dataclass(frozen=True, slots=True, repr=False)
class PresentedKey:
    key_id: str
    secret: str


def is_api_key(token: str) -> bool:
    """Whether a bearer token is meant as an API key (an ID token is a JWT: ``eyJ…``)."""
    return token.startswith(KEY_PREFIX)


def parse(token: str) -> PresentedKey:
    """The key id and secret of a presented key; 401 if it is not well formed."""
    found = _CREDENTIAL.match(token)
    if found is None:
        raise Unauthenticated("the API key is malformed")
    return PresentedKey(key_id=found.group(1), secret=found.group(2))


def new_key(pepper: bytes) -> NewKey:
    key_id = "".join(secrets.choice(_KEY_ID_ALPHABET) for _ in range(KEY_ID_CHARS))
    secret = base64.urlsafe_b64encode(secrets.token_bytes(SECRET_BYTES)).decode().rstrip("=")
    return NewKey(
        key_id=key_id,
        credential=f"{KEY_PREFIX}{key_id}_{secret}",
        prefix=f"{KEY_PREFIX}{key_id}_{secret[:SHOWN_SECRET_CHARS]}",
        secret_hash=secret_hash(pepper, key_id, secret),
    )


def secret_hash(pepper: bytes, key_id: str, secret: str) -> str:
    return hmac.new(pepper, f"{key_id}\x00{secret}".encode(), hashlib.sha256).hexdigest()


def matches(pepper: bytes, key: PresentedKey, stored_hash: str) -> bool:
    """Constant-time comparison of the presented secret with the stored hash."""
    return hmac.compare_digest(secret_hash(pepper, key.key_id, key.secret), stored_hash)
