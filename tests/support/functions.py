"""The functions in-process (functions-framework's ``create_app``): where their source is,
the capturing pull subscriptions that stand in for push ones, the push envelope, a user."""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.api_core.exceptions import DeadlineExceeded
from google.cloud.pubsub_v1 import SubscriberClient

from devstack.auth_emulator import SignedIn

SOURCE = str(Path(__file__).resolve().parents[2] / "functions" / "main.py")


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
