"""Fixtures every suite shares: the emulators (once per session) and a fresh project per test.

The emulators are started on free loopback ports unless the `*_EMULATOR_HOST` variables
are already set, in which case those (e.g. a running `make dev`, or Google's own
emulators) are used. Tests isolate themselves by project id: Firestore, Pub/Sub and the
Auth emulator all keep each project's data apart.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from google.cloud import firestore
from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient

from devstack.auth_emulator import AuthEmulator, SignedIn
from devstack.emulators import EmulatorHosts, EmulatorPorts, Emulators

SESSION_PROJECT = "demo-apex-test"


TEST_PEPPER = "test-pepper-" + uuid.uuid4().hex + uuid.uuid4().hex


@pytest.fixture(scope="session")
def emulator_set(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Emulators, EmulatorHosts]]:
    """The session's emulators and their processes (the fault tests freeze one)."""
    workdir: Path = tmp_path_factory.mktemp("emulators")
    started = Emulators(workdir, EmulatorPorts.ephemeral(), SESSION_PROJECT, dict(os.environ))
    with started as hosts:
        yield started, hosts


@pytest.fixture(scope="session")
def emulators(emulator_set: tuple[Emulators, EmulatorHosts]) -> Iterator[EmulatorHosts]:
    hosts = emulator_set[1]
    patch = pytest.MonkeyPatch()
    for name, value in hosts.env().items():
        patch.setenv(name, value)
    # The functions in-process check and make API keys with it (a test value, per session).
    patch.setenv("APEX_KEY_PEPPER", TEST_PEPPER)
    try:
        yield hosts
    finally:
        patch.undo()


@pytest.fixture
def project_id(emulators: EmulatorHosts, monkeypatch: pytest.MonkeyPatch) -> str:
    """A project nobody else uses: this test's own Firestore, Pub/Sub and Auth data."""
    project = f"demo-t{uuid.uuid4().hex[:16]}"
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", project)
    return project


@pytest.fixture
def firestore_client(project_id: str) -> Iterator[firestore.Client]:
    client = firestore.Client(project=project_id)
    yield client
    client.close()


@pytest.fixture
def publisher(emulators: EmulatorHosts) -> PublisherClient:
    return PublisherClient()


@pytest.fixture
def subscriber(emulators: EmulatorHosts) -> Iterator[SubscriberClient]:
    client = SubscriberClient()
    yield client
    client.close()


@pytest.fixture
def auth_emulator(emulators: EmulatorHosts, project_id: str) -> Iterator[AuthEmulator]:
    with AuthEmulator(emulators.auth, project_id) as client:
        yield client


@pytest.fixture
def sign_up(auth_emulator: AuthEmulator) -> Callable[..., SignedIn]:
    """Signs up a new user with a unique email; `claims` are set and a token re-issued."""

    def _sign_up(
        claims: dict[str, object] | None = None,
        password: str = "pw-123456",  # noqa: S107 - a throwaway emulator account
    ) -> SignedIn:
        email = f"user-{uuid.uuid4().hex[:10]}@apex.test"
        user = auth_emulator.sign_up(email, password)
        if claims:
            auth_emulator.set_claims(user.uid, claims)
            user = auth_emulator.sign_in(email, password)
        return user

    return _sign_up
