"""Publishing to Pub/Sub: every message with attributes, every publish confirmed.

A publish returns only once Pub/Sub has the message (the future resolved), so a caller that
acknowledges a client afterwards never acknowledges something that could be lost.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Final, Protocol

from google.api_core.exceptions import GoogleAPICallError
from google.cloud.pubsub_v1 import PublisherClient

from shared.errors import Unavailable
from shared.models.events import RunEvent
from shared.models.messages import EVENTS_TOPIC

PUBLISH_TIMEOUT_S: Final = 30.0


class Message(Protocol):
    def model_dump_json(self) -> str: ...

    def attributes(self) -> dict[str, str]: ...


class Bus:
    def __init__(self, publisher: PublisherClient, project: str) -> None:
        self._publisher = publisher
        self._project = project

    def topic_path(self, topic: str) -> str:
        return f"projects/{self._project}/topics/{topic}"

    def publish(self, topic: str, message: Message) -> str:
        return self._publish_all(
            topic, [(message.model_dump_json().encode(), message.attributes())]
        )[0]

    def publish_events(self, events: Sequence[RunEvent], *, uid: str, relay: str) -> None:
        """Each event to ``apex-events`` with the attributes relays filter on (DESIGN §3.5)."""
        if not events:
            return
        self._publish_all(
            EVENTS_TOPIC,
            [
                (
                    json.dumps(event.frame(), separators=(",", ":")).encode(),
                    {
                        "kind": "run_event",
                        "run_id": event.run_id,
                        "seq": str(event.seq),
                        "uid": uid,
                        "relay": relay,
                    },
                )
                for event in events
            ],
        )

    def _publish_all(self, topic: str, messages: list[tuple[bytes, dict[str, str]]]) -> list[str]:
        path = self.topic_path(topic)
        futures = [self._publisher.publish(path, data, **attrs) for data, attrs in messages]
        try:
            return [str(f.result(timeout=PUBLISH_TIMEOUT_S)) for f in futures]
        except (GoogleAPICallError, TimeoutError) as e:
            raise Unavailable(f"cannot publish to {topic}: {e}", retry_after_s=5) from e
