"""The relay's suite: the local stack as ``make dev`` runs it, relay included, once a session.

Fixtures:
- ``relay_stack`` (session): the ``RunningStack``; ``relay_stack.relay`` is the relay's URL
  (``http://127.0.0.1:<port>``), ``relay_stack.functions`` the public functions' URLs,
  ``relay_stack.env`` the environment its processes run with.
- ``new_chat_user`` : signs up a user on the stack's Auth emulator, acting in their
  personal workspace (id = uid); returns a ``ChatUser`` (uid, email, password, workspace,
  id_token).
- ``planted_chat_user`` (session): one such user whose workspace holds last month's planted
  synthetic usage, ingested through ``usage_ingest`` (the aggregator applied it all).
- ``relay_db``: a Firestore client on the stack's project.
- ``start_relay``: starts another relay process beside the stack's (same settings, env
  overrides allowed) and stops it after the test; for killing and restarting relays.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import httpx
import pytest
from google.cloud import firestore
from playwright.sync_api import Browser, BrowserContext, sync_playwright

from devstack.auth_emulator import AuthEmulator, SignedIn
from devstack.emulators import EmulatorHosts
from devstack.procs import free_port, wait_ready
from devstack.stack import DevConfig, RunningStack, relay_process, relay_ready
from devstack.synthetic import generate
from tests.support.browser import PageWatch, launch, offline_context
from tests.support.relay import (
    ChatUser,
    OwnRelay,
    PlantedUser,
    auth_default_project,
    sign_up_chat_user,
)
from tests.support.stack import Caller, ingest, last_month, running_stack


@pytest.fixture(scope="session")
def relay_stack(
    emulators: EmulatorHosts, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningStack]:
    # The chat page signs in through the Auth emulator's default project (the browser SDK
    # cannot name another), so the stack runs on that project: no other stack of a test
    # session uses it. Emulators adopted from a running `make dev` (the *_EMULATOR_HOST
    # variables) default to make dev's own project, whose subscriptions a second stack
    # would take over: then the stack gets a project of its own, and the browser test,
    # which checks the project, says why it cannot sign in.
    project = auth_default_project(emulators.auth)
    if project == DevConfig.from_env({}).project:
        project = f"demo-relay{uuid.uuid4().hex[:8]}"
    with running_stack(project, tmp_path_factory.mktemp("relay-stack")) as running:
        yield running


@pytest.fixture
def new_chat_user(relay_stack: RunningStack) -> Iterator[Callable[[], ChatUser]]:
    with AuthEmulator(relay_stack.hosts.auth, relay_stack.project) as auth:
        yield partial(sign_up_chat_user, auth)


@pytest.fixture(scope="session")
def planted_chat_user(relay_stack: RunningStack) -> PlantedUser:
    end, days = last_month()
    planted = generate(end=end, days=days)
    with AuthEmulator(relay_stack.hosts.auth, relay_stack.project) as auth:
        user = sign_up_chat_user(auth)
    caller = Caller(
        SignedIn(user.uid, user.email, user.id_token, refresh_token=""),
        user.workspace,
        relay_stack.functions,
    )
    db = firestore.Client(project=relay_stack.project)
    try:
        ingest(caller, db, planted)
    finally:
        db.close()
    return PlantedUser(user, planted)


@pytest.fixture
def relay_db(relay_stack: RunningStack) -> Iterator[firestore.Client]:
    client = firestore.Client(project=relay_stack.project)
    yield client
    client.close()


@pytest.fixture
def start_relay(relay_stack: RunningStack, tmp_path: Path) -> Iterator[Callable[..., OwnRelay]]:
    started: list[OwnRelay] = []

    def start(**env: str) -> OwnRelay:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = tmp_path / f"relay-{len(started)}.log"
        proc = relay_process(port, {**relay_stack.env, **env}, log)
        own = OwnRelay(proc, url)
        started.append(own)
        proc.start()
        wait_ready(proc, "test relay", partial(relay_ready, url), 60.0)
        own.relay_id = httpx.get(f"{url}/health/ready", timeout=10).json()["relay_id"]
        return own

    yield start
    for own in started:
        own.process.stop()


# --- headless Chromium (the page tests) ----------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium for a module's page tests (tests/support/browser.py: /usr/bin/chromium)."""
    with sync_playwright() as pw:
        browser = launch(pw)
        yield browser
        browser.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[tuple[BrowserContext, PageWatch]]:
    """A fresh browser context per test, offline but for the stack, its faults watched."""
    context, watch = offline_context(browser)
    yield context, watch
    context.close()
