"""Every function in-process, as functions-framework's own tests do it:
``create_app(target, source).test_client()``, against this test's project on the emulators.

Published messages are captured by pull subscriptions on the topology's topics, and
workers are driven by posting the standard push envelope to their test clients.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask.testing import FlaskClient
from functions_framework import create_app
from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient

from devstack.auth_emulator import SignedIn
from shared.topology import load_topology
from tests.support.functions import SOURCE, Captured, User


@pytest.fixture
def function() -> Callable[[str], FlaskClient]:
    def client(target: str) -> FlaskClient:
        app = create_app(target, SOURCE)  # type: ignore[no-untyped-call]
        client: FlaskClient = app.test_client()
        return client

    return client


@pytest.fixture
def topics(
    project_id: str, publisher: PublisherClient, subscriber: SubscriberClient
) -> dict[str, Captured]:
    """Every topic of the topology, each with a capturing pull subscription."""
    captured = {}
    for topic in load_topology().topics:
        topic_path = publisher.topic_path(project_id, topic.name)
        publisher.create_topic(name=topic_path)
        sub = subscriber.subscription_path(project_id, f"capture-{topic.name}")
        subscriber.create_subscription(name=sub, topic=topic_path, ack_deadline_seconds=10)
        captured[topic.name] = Captured(subscriber, sub)
    return captured


@pytest.fixture
def new_user(sign_up: Callable[..., SignedIn]) -> Callable[[], User]:
    def make() -> User:
        signed = sign_up()
        return User(signed, signed.uid)  # their personal workspace (DESIGN §9)

    return make


@pytest.fixture
def user(new_user: Callable[[], User]) -> User:
    return new_user()
