"""The emulators answer the official clients, keep projects apart, and are reused when given."""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path

import firebase_admin
import pytest
from firebase_admin import auth as fb_auth
from google.api_core.exceptions import AlreadyExists, Conflict
from google.cloud import firestore

from devstack.auth_emulator import AuthEmulator, AuthEmulatorError, SignedIn
from devstack.emulators import EmulatorHosts, EmulatorPorts, Emulators
from devstack.procs import NotReady, ensure_port_free


def _claims(token: str) -> dict[str, object]:
    payload = token.split(".")[1]
    decoded: dict[str, object] = json.loads(base64.urlsafe_b64decode(payload + "=" * 4))
    return decoded


def test_firestore_round_trip_and_create_if_absent(firestore_client: firestore.Client) -> None:
    ref = firestore_client.collection("dedup").document("key-1")
    ref.create({"n": 1})
    assert ref.get().to_dict() == {"n": 1}
    # The claim primitive the workers rely on (DESIGN §6): a second create must fail.
    with pytest.raises((AlreadyExists, Conflict)):
        ref.create({"n": 2})
    assert ref.get().to_dict() == {"n": 1}


def test_projects_are_isolated(
    emulators: EmulatorHosts, firestore_client: firestore.Client
) -> None:
    firestore_client.collection("runs").document("r1").set({"status": "queued"})
    other = firestore.Client(project=f"demo-t{uuid.uuid4().hex[:16]}")
    try:
        assert not other.collection("runs").document("r1").get().exists
    finally:
        other.close()


def test_sign_up_gives_a_real_id_token_for_the_project(
    project_id: str, sign_up: Callable[..., SignedIn]
) -> None:
    user = sign_up()
    claims = _claims(user.id_token)
    assert claims["aud"] == project_id
    assert claims["iss"] == f"https://securetoken.google.com/{project_id}"
    assert claims["sub"] == user.uid


def test_custom_claims_reach_the_token_and_firebase_admin_accepts_it(
    project_id: str, sign_up: Callable[..., SignedIn]
) -> None:
    user = sign_up(claims={"workspace": "acme"})
    app = firebase_admin.initialize_app(options={"projectId": project_id}, name=project_id)
    try:
        decoded = fb_auth.verify_id_token(user.id_token, app=app, check_revoked=True)
    finally:
        firebase_admin.delete_app(app)
    assert decoded["uid"] == user.uid
    assert decoded["workspace"] == "acme"


def test_wrong_password_is_refused(auth_emulator: AuthEmulator) -> None:
    email = f"u-{uuid.uuid4().hex[:8]}@apex.test"
    auth_emulator.sign_up(email, "right-password")
    with pytest.raises(AuthEmulatorError, match=r"INVALID_(PASSWORD|LOGIN_CREDENTIALS)"):
        auth_emulator.sign_in(email, "wrong-password")


def test_emulators_given_by_env_are_used_not_started(
    emulators: EmulatorHosts, tmp_path: Path
) -> None:
    ports = EmulatorPorts.ephemeral()
    environ = {**os.environ, **emulators.env()}
    with Emulators(tmp_path, ports, "demo-apex-test", environ) as hosts:
        assert hosts == emulators
        # Nothing was started on the ports it would otherwise have used.
        for port in (ports.auth, ports.firestore, ports.pubsub, ports.auth_hub):
            ensure_port_free("probe", "127.0.0.1", port)


def test_an_emulator_given_by_env_that_does_not_answer_fails_naming_the_variable(
    emulators: EmulatorHosts, tmp_path: Path
) -> None:
    dead = EmulatorPorts.ephemeral().pubsub  # nothing listens there
    environ = {**os.environ, **emulators.env(), "PUBSUB_EMULATOR_HOST": f"127.0.0.1:{dead}"}
    em = Emulators(tmp_path, EmulatorPorts.ephemeral(), "demo-apex-test", environ, ready_timeout=1)
    with pytest.raises(
        NotReady, match=r"pubsub emulator at 127\.0\.0\.1:\d+ \(from PUBSUB_EMULATOR_HOST\)"
    ):
        em.start()
