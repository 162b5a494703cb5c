"""The local stack as `make dev` runs it (every function a functions-framework process,
push subscriptions from the shared topology), on this session's emulators, once a session.

Tests isolate themselves by user and workspace: each signs up its own user, who acts in
their own personal workspace (DESIGN §9) on the stack's project.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from google.cloud import firestore

from devstack.auth_emulator import AuthEmulator
from devstack.emulators import EmulatorHosts
from devstack.stack import RunningStack
from tests.support.stack import Caller, running_stack


@pytest.fixture(scope="session")
def stack(
    emulators: EmulatorHosts, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningStack]:
    with running_stack(f"demo-e2e{uuid.uuid4().hex[:8]}", tmp_path_factory.mktemp("devstack")) as s:
        yield s


@pytest.fixture
def new_caller(stack: RunningStack) -> Iterator[Callable[[], Caller]]:
    with AuthEmulator(stack.hosts.auth, stack.project) as auth:

        def make() -> Caller:
            email = f"e2e-{uuid.uuid4().hex[:10]}@apex.test"
            user = auth.sign_up(email, "pw-123456")
            # Their personal workspace (id = uid, DESIGN §9).
            return Caller(user, user.uid, stack.functions)

        yield make


@pytest.fixture
def stack_db(stack: RunningStack) -> Iterator[firestore.Client]:
    client = firestore.Client(project=stack.project)
    yield client
    client.close()
