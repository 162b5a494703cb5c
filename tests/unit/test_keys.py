"""API key format and keyed hash (DESIGN §9): what is shown once, what is stored, and what
a presented key must look like."""

from __future__ import annotations

import re

import pytest

from shared.errors import Unauthenticated
from shared.workspaces import keys

PEPPER = b"p" * 32


def test_a_new_key_is_apx_keyid_secret_and_only_its_keyed_hash_is_kept() -> None:
    made = keys.new_key(PEPPER)
    assert re.fullmatch(r"apx_[a-z0-9]{16}_[A-Za-z0-9_-]{43}", made.credential)
    presented = keys.parse(made.credential)
    assert presented.key_id == made.key_id
    assert made.credential.startswith(made.prefix)
    assert presented.secret not in made.prefix
    assert presented.secret not in made.secret_hash
    assert keys.matches(PEPPER, presented, made.secret_hash)
    # Another pepper, or the same secret under another key id, does not match.
    assert not keys.matches(b"q" * 32, presented, made.secret_hash)
    other = keys.PresentedKey(key_id="0" * 16, secret=presented.secret)
    assert not keys.matches(PEPPER, other, made.secret_hash)


def test_two_keys_differ_in_id_and_secret() -> None:
    a, b = keys.new_key(PEPPER), keys.new_key(PEPPER)
    assert a.key_id != b.key_id
    assert keys.parse(a.credential).secret != keys.parse(b.credential).secret


@pytest.mark.parametrize(
    "token",
    [
        "apx_",
        "apx_abc_def",
        "apx_" + "A" * 16 + "_" + "x" * 43,  # upper-case key id
        "apx_" + "a" * 16 + "_" + "x" * 42,  # truncated secret
        "apx_" + "a" * 16 + "_" + "x" * 44,
        "apx_" + "a" * 16 + "_" + "x" * 42 + "=",
        "apx_" + "a" * 15 + "_" + "x" * 44,
    ],
)
def test_a_malformed_key_is_unauthenticated(token: str) -> None:
    with pytest.raises(Unauthenticated, match="malformed"):
        keys.parse(token)


def test_a_presented_key_never_shows_its_secret_in_repr() -> None:
    made = keys.new_key(PEPPER)
    presented = keys.parse(made.credential)
    assert presented.secret not in repr(presented)
    assert presented.secret not in repr(made)
