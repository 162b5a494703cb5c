"""The local stack as `make dev` runs it (every function a functions-framework process,
push subscriptions from the shared topology), on this session's emulators, once a session.

Tests isolate themselves by user and workspace: each signs up its own user with its own
``workspace`` claim on the stack's project.
"""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Callable, Iterator

import pytest
from google.cloud import firestore

from devstack.auth_emulator import AuthEmulator
from devstack.emulators import EmulatorHosts
from devstack.stack import DevConfig, RunningStack, run_stack
from tests.support.stack import Caller


@pytest.fixture(scope="session")
def stack(
    emulators: EmulatorHosts, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningStack]:
    project = f"demo-e2e{uuid.uuid4().hex[:8]}"
    # Function ports are base + offset (devstack); a random offset keeps clear of `make dev`.
    # Offset ranges are disjoint per suite (e2e 2,000-9,700; relay 10,000-19,000; faults
    # 20,000-24,000) so stacks of one session never share a port, and below 32768 (the
    # kernel's ephemeral range).
    config = DevConfig(
        project=project,
        port_offset=random.randrange(2_000, 9_700, 50),
        state_dir=tmp_path_factory.mktemp("devstack"),
    )
    environ = {**os.environ, "GOOGLE_CLOUD_PROJECT": project}
    with run_stack(config, environ, demo_data=False) as running:
        yield running


@pytest.fixture
def new_caller(stack: RunningStack) -> Iterator[Callable[[], Caller]]:
    with AuthEmulator(stack.hosts.auth, stack.project) as auth:

        def make() -> Caller:
            workspace = f"ws-{uuid.uuid4().hex[:10]}"
            email = f"{workspace}@apex.test"
            password = "pw-123456"
            user = auth.sign_up(email, password)
            auth.set_claims(user.uid, {"workspace": workspace})
            return Caller(auth.sign_in(email, password), workspace, stack.functions)

        yield make


@pytest.fixture
def stack_db(stack: RunningStack) -> Iterator[firestore.Client]:
    client = firestore.Client(project=stack.project)
    yield client
    client.close()
