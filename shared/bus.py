"""Publishing to Pub/Sub: every message with attributes, every publish confirmed.

A publish returns only once Pub/Sub has the message (the call answered), so a caller that
acknowledges a client afterwards never acknowledges something that could be lost.

The Publish calls are made here, in the caller's thread, through the generated API client,
not the client library's batching ``PublisherClient``: every publish here is waited for at
once, and the library's batch window and the hand-offs between its threads cost more than
the call itself (docs/benchmarks.md, golden path). What is published together (a step's
events and the next step's message) goes out in one call per topic.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Final, Protocol

import grpc
from google.api_core import exceptions
from google.api_core.retry import Retry, if_exception_type
from google.pubsub_v1 import PublisherClient, PubsubMessage
from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport

from shared.errors import Unavailable
from shared.models.events import RunEvent
from shared.models.messages import EVENTS_TOPIC

PUBLISH_TIMEOUT_S: Final = 30.0
# Retried as the client library retries a publish (its transient codes), within the timeout.
PUBLISH_RETRY: Final = Retry(
    predicate=if_exception_type(
        exceptions.Aborted,
        exceptions.Cancelled,
        exceptions.DeadlineExceeded,
        exceptions.InternalServerError,
        exceptions.ResourceExhausted,
        exceptions.ServiceUnavailable,
        exceptions.Unknown,
    ),
    initial=0.1,
    maximum=5.0,
    multiplier=2.0,
    timeout=PUBLISH_TIMEOUT_S,
)
# What one Publish call may carry (Pub/Sub: 1,000 messages, 10 MB a request), with room for
# the request's own framing.
MAX_REQUEST_MESSAGES: Final = 1_000
MAX_REQUEST_BYTES: Final = 9 * 1024 * 1024


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
        host = os.environ.get("PUBSUB_EMULATOR_HOST")
        if host:
            # The emulator speaks plain-text gRPC (as the client library connects to it).
            channel = grpc.insecure_channel(host)
            return PublisherClient(transport=PublisherGrpcTransport(channel=channel))
        return PublisherClient()

    def topic_path(self, topic: str) -> str:
        return f"projects/{self._project}/topics/{topic}"

    def publish(self, topic: str, message: Message) -> str:
        return self.publish_all([outgoing(topic, message)])[0]

    def publish_events(self, events: Sequence[RunEvent], *, uid: str, relay: str) -> None:
        self.publish_all(event_messages(events, uid=uid, relay=relay))

    def publish_all(self, messages: Sequence[Outgoing]) -> list[str]:
        """Publish every message (one call per topic, more only past a call's limits) and
        return their ids, in the order given."""
        ids = [""] * len(messages)
        for topic, indices in _requests(messages):
            try:
                response = self._publisher.publish(
                    topic=self.topic_path(topic),
                    messages=[
                        PubsubMessage(data=messages[i][1], attributes=messages[i][2])
                        for i in indices
                    ],
                    retry=PUBLISH_RETRY,
                    timeout=PUBLISH_TIMEOUT_S,
                )
            except exceptions.GoogleAPIError as e:
                raise Unavailable(f"cannot publish to {topic}: {e}", retry_after_s=5) from e
            for index, message_id in zip(indices, response.message_ids, strict=True):
                ids[index] = message_id
        return ids


def _requests(messages: Sequence[Outgoing]) -> Iterator[tuple[str, list[int]]]:
    """The Publish calls for ``messages``: (topic, indices of its messages), in the order
    each topic first appears, each within a call's limits."""
    by_topic: dict[str, list[int]] = {}
    for index, (topic, _, _) in enumerate(messages):
        by_topic.setdefault(topic, []).append(index)
    for topic, indices in by_topic.items():
        chunk: list[int] = []
        size = 0
        for index in indices:
            _, data, attributes = messages[index]
            cost = len(data) + sum(len(k) + len(v) for k, v in attributes.items())
            if chunk and (len(chunk) == MAX_REQUEST_MESSAGES or size + cost > MAX_REQUEST_BYTES):
                yield topic, chunk
                chunk, size = [], 0
            chunk.append(index)
            size += cost
        yield topic, chunk


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
