"""Every function in-process, as functions-framework's own tests do it:
``create_app(target, source).test_client()``, against this test's project on the emulators.

Published messages are captured by pull subscriptions on the topology's topics, and
workers are driven by posting the standard push envelope to their test clients.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from functions_framework import create_app
from google.api_core.exceptions import DeadlineExceeded
from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient

from devstack.auth_emulator import SignedIn
from shared.topology import load_topology

SOURCE = str(Path(__file__).resolve().parents[2] / "functions" / "main.py")


@pytest.fixture
def function() -> Callable[[str], FlaskClient]:
    def client(target: str) -> FlaskClient:
        app = create_app(target, SOURCE)  # type: ignore[no-untyped-call]
        client: FlaskClient = app.test_client()
        return client

    return client


@dataclass
class Captured:
    """A pull subscription on one topic, standing in for its push subscription."""

    subscriber: SubscriberClient
    path: str

    def pull(self, expect: int, timeout: float = 10.0) -> list[Any]:
        """Exactly ``expect`` messages (acked); fails if fewer arrive in time."""
        got: list[Any] = []
        deadline = time.monotonic() + timeout
        while len(got) < expect and time.monotonic() < deadline:
            try:
                response = self.subscriber.pull(subscription=self.path, max_messages=100, timeout=2)
            except DeadlineExceeded:
                continue
            if response.received_messages:
                self.subscriber.acknowledge(
                    subscription=self.path,
                    ack_ids=[m.ack_id for m in response.received_messages],
                )
                got.extend(m.message for m in response.received_messages)
        assert len(got) == expect, f"{len(got)} messages on {self.path}, expected {expect}"
        return got

    def empty(self) -> bool:
        try:
            response = self.subscriber.pull(subscription=self.path, max_messages=10, timeout=1)
        except DeadlineExceeded:
            return True
        return not response.received_messages


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


def envelope(message: Any, attempt: int = 1) -> dict[str, Any]:
    """The push body Pub/Sub would POST for a pulled ``message``."""
    return {
        "message": {
            "data": base64.b64encode(message.data).decode(),
            "attributes": dict(message.attributes),
            "messageId": message.message_id,
            "publishTime": "2026-11-25T00:00:00Z",
        },
        "subscription": "projects/p/subscriptions/s",
        "deliveryAttempt": attempt,
    }


@dataclass(frozen=True)
class User:
    signed_in: SignedIn
    workspace: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.signed_in.id_token}"}


@pytest.fixture
def new_user(sign_up: Callable[..., SignedIn]) -> Callable[[], User]:
    def make() -> User:
        workspace = f"ws-{uuid.uuid4().hex[:8]}"
        return User(sign_up(claims={"workspace": workspace}), workspace)

    return make


@pytest.fixture
def user(new_user: Callable[[], User]) -> User:
    return new_user()


def data_of(message: Any) -> Any:
    return json.loads(message.data)
