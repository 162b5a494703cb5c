"""Push delivery: POST each message of a push subscription to its endpoint."""

import asyncio
import base64
import json
import logging

import httpx

from devstack.pubsub.config import Pb
from devstack.pubsub.state import Consumer, Entry, SubscriptionState, rfc3339

log = logging.getLogger("devstack.pubsub")

MAX_IN_FLIGHT = 64


def envelope(sub: SubscriptionState, entry: Entry) -> bytes:
    """The JSON body the real service posts (it duplicates some keys in snake_case)."""
    message: Pb = entry.message
    publish_time = rfc3339(message.publish_time)
    body_message: dict[str, object] = {}
    if message.data:
        body_message["data"] = base64.b64encode(message.data).decode("ascii")
    if message.attributes:
        body_message["attributes"] = dict(message.attributes)
    body_message.update(
        {
            "messageId": message.message_id,
            "message_id": message.message_id,
            "publishTime": publish_time,
            "publish_time": publish_time,
        }
    )
    if message.ordering_key:
        body_message["orderingKey"] = message.ordering_key
    body: dict[str, object] = {"message": body_message, "subscription": sub.name}
    if sub.has_dead_letter:
        body["deliveryAttempt"] = entry.attempts
    return json.dumps(body).encode()


def _unwrapped(sub: SubscriptionState, entry: Entry) -> tuple[bytes, dict[str, str]]:
    """Body and headers for `no_wrapper` push: raw data, metadata in headers if asked."""
    message: Pb = entry.message
    headers: dict[str, str] = {}
    if sub.config.push_config.no_wrapper.write_metadata:
        headers.update(
            {
                "x-goog-pubsub-subscription-name": sub.name,
                "x-goog-pubsub-message-id": message.message_id,
                "x-goog-pubsub-publish-time": rfc3339(message.publish_time),
            }
        )
        if sub.has_dead_letter:
            headers["x-goog-pubsub-delivery-attempt"] = str(entry.attempts)
        if message.ordering_key:
            headers["x-goog-pubsub-ordering-key"] = message.ordering_key
        headers.update(message.attributes)
    return bytes(message.data), headers


class PushWorker(Consumer):
    """Delivers one push subscription's messages, at most MAX_IN_FLIGHT at a time."""

    def __init__(self, sub: SubscriptionState, client: httpx.AsyncClient) -> None:
        super().__init__(max_messages=MAX_IN_FLIGHT)
        self._sub = sub
        self._client = client
        self._requests: set[asyncio.Task[None]] = set()
        self._task = asyncio.create_task(self._run(), name=f"push {sub.name}")

    def stop(self) -> None:
        self._task.cancel()

    async def _run(self) -> None:
        sub = self._sub
        sub.waiters.add(self.wake)
        try:
            while True:
                entries: list[Entry] = []
                if self.has_room():
                    # One message per ordering key at a time keeps pushes of a key in order.
                    entries = sub.take(
                        self, MAX_IN_FLIGHT, sub.config.ack_deadline_seconds, per_key_limit=1
                    )
                for entry in entries:
                    assert entry.ack_id is not None  # take() leases what it returns
                    task = asyncio.create_task(self._push(entry, entry.ack_id))
                    self._requests.add(task)
                    task.add_done_callback(self._requests.discard)
                if not entries:
                    self.wake.clear()
                    await self.wake.wait()
        finally:
            sub.waiters.discard(self.wake)

    async def _push(self, entry: Entry, ack_id: str) -> None:
        sub = self._sub
        push_config = sub.config.push_config
        if push_config.HasField("no_wrapper"):
            content, headers = _unwrapped(sub, entry)
        else:
            content, headers = envelope(sub, entry), {"content-type": "application/json"}
        deadline = sub.config.ack_deadline_seconds
        try:
            response = await self._client.post(
                push_config.push_endpoint, content=content, headers=headers, timeout=deadline
            )
        except httpx.HTTPError as exc:
            log.debug(
                "push failed",
                extra={"subscription": sub.name, "error": repr(exc), "endpoint": sub.push_endpoint},
            )
            sub.nack(ack_id)
            return
        status = response.status_code
        if 200 <= status < 300 or status == 102:
            sub.acknowledge((ack_id,))
        else:
            log.debug("push rejected", extra={"subscription": sub.name, "status": status})
            sub.nack(ack_id)
