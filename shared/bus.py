"""Publishing to Pub/Sub: every message with attributes, every publish confirmed.

A publish returns only once Pub/Sub has the message (the future resolved), so a caller that
acknowledges a client afterwards never acknowledges something that could be lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Protocol

from google.api_core.exceptions import GoogleAPICallError
from google.cloud.pubsub_v1 import PublisherClient
from google.cloud.pubsub_v1.types import BatchSettings

from shared.errors import Unavailable
from shared.models.events import RunEvent
from shared.models.messages import EVENTS_TOPIC

PUBLISH_TIMEOUT_S: Final = 30.0
# Every publish here is waited for at once, so holding a batch open for more messages only
# adds latency to each step hand-off (the client's default is 10 ms); what is published
# together (a step's events) still goes out in one batch.
BATCH_SETTINGS: Final = BatchSettings(max_latency=0.001)


class Message(Protocol):
    def model_dump_json(self) -> str: ...

    def attributes(self) -> dict[str, str]: ...


Outgoing = tuple[str, bytes, dict[str, str]]  # topic, data, attributes


class Bus:
    def __init__(self, publisher: PublisherClient, project: str) -> None:
        self._publisher = publisher
        self._project = project

    @staticmethod
    def publisher() -> PublisherClient:
        return PublisherClient(batch_settings=BATCH_SETTINGS)

    def topic_path(self, topic: str) -> str:
        return f"projects/{self._project}/topics/{topic}"

    def publish(self, topic: str, message: Message) -> str:
        return self.publish_all([outgoing(topic, message)])[0]

    def publish_events(self, events: Sequence[RunEvent], *, uid: str, relay: str) -> None:
        self.publish_all(event_messages(events, uid=uid, relay=relay))

    def publish_all(self, messages: Sequence[Outgoing]) -> list[str]:
        """Publish every message at once (one round trip per topic), then wait for all."""
        futures = [
            (topic, self._publisher.publish(self.topic_path(topic), data, **attrs))
            for topic, data, attrs in messages
        ]
        ids = []
        for topic, future in futures:
            try:
                ids.append(str(future.result(timeout=PUBLISH_TIMEOUT_S)))
            except (GoogleAPICallError, TimeoutError) as e:
                raise Unavailable(f"cannot publish to {topic}: {e}", retry_after_s=5) from e
        return ids


def outgoing(topic: str, message: Message) -> Outgoing:
    return topic, message.model_dump_json().encode(), message.attributes()


def event_messages(events: Sequence[RunEvent], *, uid: str, relay: str) -> list[Outgoing]:
    """Each event for ``apex-events``, with the attributes relays filter on (DESIGN §3.5)."""
    return [
        (
            EVENTS_TOPIC,
            event.frame_json().encode(),
            {
                "kind": "run_event",
                "run_id": event.run_id,
                "seq": str(event.seq),
                "uid": uid,
                "relay": relay,
            },
        )
        for event in events
    ]
