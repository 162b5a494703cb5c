"""Token verification (DESIGN §7), in both modes.

Production mode: RS256 tokens signed by a test key, whose certificate a local HTTP server
serves in Google's x509 format; firebase-admin's certificate URL (the one module constant
tests may override) points at it, and no emulator variable is set.
Emulator mode: revoked and disabled users on the Auth emulator, and Apex's own `exp` check.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import firebase_admin
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from firebase_admin import _token_gen, credentials
from firebase_admin import auth as fb_auth
from google.auth.credentials import AnonymousCredentials, Credentials

from devstack.auth_emulator import AuthEmulator, SignedIn
from shared.auth import TokenVerifier
from shared.errors import Unauthenticated, Unavailable
from tests.support.sockets import refusing_port

PROJECT = "apex-prod-test"
KID = "test-key-1"


def _key_and_cert() -> tuple[rsa.RSAPrivateKey, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "securetoken.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM).decode()


class _CertHandler(BaseHTTPRequestHandler):
    certs: ClassVar[dict[str, str]] = {}

    def do_GET(self) -> None:
        body = json.dumps(self.certs).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "public, max-age=0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


class _NoServiceAccount(credentials.Base):  # type: ignore[misc]
    """There is no service account here; checking a token's signature needs none."""

    def get_credential(self) -> Credentials:
        return AnonymousCredentials()  # type: ignore[no-untyped-call]


def _production_app() -> firebase_admin.App:
    return firebase_admin.initialize_app(
        _NoServiceAccount(), options={"projectId": PROJECT}, name=uuid.uuid4().hex
    )


@pytest.fixture(scope="module")
def signing_key() -> Iterator[tuple[rsa.RSAPrivateKey, str]]:
    key, pem = _key_and_cert()
    handler = type("Handler", (_CertHandler,), {"certs": {KID: pem}})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield key, f"http://127.0.0.1:{server.server_address[1]}/certs"
    server.shutdown()
    server.server_close()


@pytest.fixture
def production_verifier(
    signing_key: tuple[rsa.RSAPrivateKey, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[TokenVerifier]:
    monkeypatch.delenv("FIREBASE_AUTH_EMULATOR_HOST", raising=False)
    monkeypatch.setattr(_token_gen, "ID_TOKEN_CERT_URI", signing_key[1])
    app = _production_app()
    yield TokenVerifier(app)
    firebase_admin.delete_app(app)


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": f"https://securetoken.google.com/{PROJECT}",
        "aud": PROJECT,
        "auth_time": now,
        "user_id": "u-1",
        "sub": "u-1",
        "iat": now,
        "exp": now + 3600,
        "workspace": "acme",
        "firebase": {"sign_in_provider": "password"},
    }
    claims.update(overrides)
    return claims


def _sign(key: rsa.RSAPrivateKey, claims: dict[str, Any], kid: str | None = KID) -> str:
    headers = {"kid": kid} if kid else {}
    return jwt.encode(claims, key, algorithm="RS256", headers=headers)


def test_a_well_signed_token_passes_the_token_checks(
    production_verifier: TokenVerifier, signing_key: tuple[rsa.RSAPrivateKey, str]
) -> None:
    claims = production_verifier.verify_token(_sign(signing_key[0], _claims()))
    assert claims["uid"] == "u-1"
    assert claims["workspace"] == "acme"


@pytest.mark.parametrize(
    ("case", "make"),
    [
        (
            "expired",
            lambda k: _sign(k, _claims(iat=int(time.time()) - 7200, exp=int(time.time()) - 3600)),
        ),
        ("wrong aud", lambda k: _sign(k, _claims(aud="someone-else"))),
        ("wrong iss", lambda k: _sign(k, _claims(iss="https://securetoken.google.com/other"))),
        ("no kid", lambda k: _sign(k, _claims(), kid=None)),
        ("unknown kid", lambda k: _sign(k, _claims(), kid="not-served")),
        ("other key", lambda k: _sign(_key_and_cert()[0], _claims())),
        ("tampered payload", lambda k: _tamper(_sign(k, _claims()))),
        ("alg none", lambda k: jwt.encode(_claims(), "", algorithm="none", headers={"kid": KID})),
        ("HS256 with a guessed secret", lambda k: _hs256(_claims())),
        ("garbage", lambda k: "not.a.token"),
        ("empty", lambda k: ""),
    ],
)
def test_bad_tokens_are_refused_in_production_mode(
    production_verifier: TokenVerifier,
    signing_key: tuple[rsa.RSAPrivateKey, str],
    case: str,
    make: Callable[[rsa.RSAPrivateKey], str],
) -> None:
    with pytest.raises(Unauthenticated):
        production_verifier.verify_token(make(signing_key[0]))


def _tamper(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * 4))
    claims["workspace"] = "victim"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def _hs256(claims: dict[str, Any]) -> str:
    return jwt.encode(
        claims, "a-guessed-shared-secret-of-32-bytes!", algorithm="HS256", headers={"kid": KID}
    )


def test_unreachable_certificates_are_unavailable_not_unauthenticated(
    signing_key: tuple[rsa.RSAPrivateKey, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FIREBASE_AUTH_EMULATOR_HOST", raising=False)
    app = _production_app()
    try:
        with refusing_port() as port:
            monkeypatch.setattr(_token_gen, "ID_TOKEN_CERT_URI", f"http://127.0.0.1:{port}/certs")
            with pytest.raises(Unavailable):
                TokenVerifier(app).verify_token(_sign(signing_key[0], _claims()))
    finally:
        firebase_admin.delete_app(app)


# --- emulator mode -------------------------------------------------------------------


@pytest.fixture
def emulator_verifier(project_id: str) -> Iterator[TokenVerifier]:
    app = firebase_admin.initialize_app(options={"projectId": project_id}, name=project_id)
    yield TokenVerifier(app)
    firebase_admin.delete_app(app)


def test_emulator_token_gives_the_identity_and_no_workspace(
    emulator_verifier: TokenVerifier, sign_up: Callable[..., SignedIn]
) -> None:
    # A `workspace` custom claim (the retired rule) is not read: workspaces are data (§9);
    # tests/functions/test_roles.py proves it grants no access.
    user = sign_up(claims={"workspace": "demo"})
    identity = emulator_verifier.verify(user.id_token)
    assert identity.uid == user.uid
    assert identity.email is not None
    assert identity.email.endswith("@apex.test")
    assert identity.email_verified is False
    assert "workspace" not in identity.model_dump()


def test_a_verified_email_is_reported_as_verified(
    emulator_verifier: TokenVerifier,
    project_id: str,
    sign_up: Callable[..., SignedIn],
    auth_emulator: AuthEmulator,
) -> None:
    user = sign_up()
    email = emulator_verifier.verify(user.id_token).email
    assert email is not None
    fb_auth.update_user(user.uid, email_verified=True, app=firebase_admin.get_app(project_id))
    assert emulator_verifier.verify(user.id_token).email_verified is False  # the old token
    fresh = auth_emulator.sign_in(email, "pw-123456")
    assert emulator_verifier.verify(fresh.id_token).email_verified is True


def test_an_expired_emulator_token_is_refused_by_apex_itself(
    emulator_verifier: TokenVerifier, project_id: str, sign_up: Callable[..., SignedIn]
) -> None:
    user = sign_up()
    # The emulator signs nothing (alg none); firebase-admin would accept any exp here.
    header, payload, _ = user.id_token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * 4))
    claims["exp"] = int(time.time()) - 1
    stale = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(Unauthenticated, match="expired"):
        emulator_verifier.verify(f"{header}.{stale}.")


def test_a_revoked_token_is_refused_and_a_newer_one_accepted(
    emulator_verifier: TokenVerifier,
    auth_emulator: AuthEmulator,
    sign_up: Callable[..., SignedIn],
) -> None:
    user = sign_up(password="pw-revoke-1")
    emulator_verifier.verify(user.id_token)
    time.sleep(1.1)  # revocation has one-second granularity (DESIGN §7)
    auth_emulator.update(user.uid, validSince=str(int(time.time())))
    with pytest.raises(Unauthenticated, match="revoked"):
        emulator_verifier.verify(user.id_token)
    time.sleep(1.1)
    fresh = auth_emulator.sign_in(user.email, "pw-revoke-1")
    assert emulator_verifier.verify(fresh.id_token).uid == user.uid


def test_a_disabled_user_is_refused(
    emulator_verifier: TokenVerifier,
    auth_emulator: AuthEmulator,
    sign_up: Callable[..., SignedIn],
) -> None:
    user = sign_up()
    emulator_verifier.verify(user.id_token)
    auth_emulator.update(user.uid, disableUser=True)
    with pytest.raises(Unauthenticated, match="disabled"):
        emulator_verifier.verify(user.id_token)


def test_an_emulator_token_is_refused_with_production_settings(
    auth_emulator: AuthEmulator, production_verifier: TokenVerifier
) -> None:
    # A real token from the Auth emulator (unsigned): worthless once the emulator is off.
    user = auth_emulator.sign_up(f"prod-{uuid.uuid4().hex[:8]}@apex.test", "pw-123456")
    with pytest.raises(Unauthenticated, match="not valid"):
        production_verifier.verify(user.id_token)
