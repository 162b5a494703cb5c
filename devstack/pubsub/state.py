"""In-memory topics, subscriptions and message leases.

Everything here runs on the event loop thread, so no locking is needed. Waiting is done with
asyncio events and timers: a consumer sleeps on its event until a publish, an ack or a timer
makes messages deliverable again.
"""

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Protocol, TypeVar

import grpc
from google.pubsub_v1 import types

from devstack.pubsub import config as cfg
from devstack.pubsub import names
from devstack.pubsub.config import ApiError, Pb, invalid, not_found
from devstack.pubsub.filter import Predicate

log = logging.getLogger("devstack.pubsub")
_T = TypeVar("_T")

_PubsubMessage = types.PubsubMessage.pb()
_Topic = types.Topic.pb()

MAX_ATTRIBUTES = 100
MAX_ATTRIBUTE_KEY_BYTES = 256
MAX_ATTRIBUTE_VALUE_BYTES = 1024
MAX_ORDERING_KEY_BYTES = 1024
MAX_PUBLISH_BYTES = 10 * 1024 * 1024
DEFAULT_PAGE_SIZE = 1000
# Push without a retry policy backs off like the real service: 100 ms doubling up to 60 s.
PUSH_MIN_BACKOFF = 0.1
PUSH_MAX_BACKOFF = 60.0


def rfc3339(timestamp: Pb) -> str:
    """Format a protobuf Timestamp like the real service's JSON (UTC, millisecond precision)."""
    moment = datetime.fromtimestamp(timestamp.seconds, UTC)
    millis = timestamp.nanos // 1_000_000
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{millis:03d}Z"


class Consumer:
    """A receiver that messages are leased to (a streaming pull or a push worker).

    Tracks what it holds so the subscription honours its flow control limits (0 = unlimited).
    """

    def __init__(self, max_messages: int = 0, max_bytes: int = 0) -> None:
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self.outstanding = 0
        self.outstanding_bytes = 0
        self.wake = asyncio.Event()

    def has_room(self) -> bool:
        if self.max_messages > 0 and self.outstanding >= self.max_messages:
            return False
        return not (self.max_bytes > 0 and self.outstanding_bytes >= self.max_bytes)


class Entry:
    """One message's life in one subscription."""

    __slots__ = ("ack_id", "attempts", "consumer", "key", "message", "size", "timer")

    def __init__(self, message: Pb, size: int, key: str) -> None:
        self.message = message
        self.size = size
        self.key = key
        self.attempts = 0  # deliveries so far
        self.ack_id: str | None = None  # set while leased
        self.timer: asyncio.TimerHandle | None = None  # lease expiry or retry backoff
        self.consumer: Consumer | None = None


class KeyQueue:
    """Unacknowledged messages of one ordering key, in publish order.

    Deliveries always come from the front; the first `leased` entries are out with consumers and
    the key is not delivered further until all of them are acknowledged.
    """

    __slots__ = ("backing_off", "entries", "key", "leased", "queued")

    def __init__(self, key: str) -> None:
        self.key = key
        self.entries: deque[Entry] = deque()
        self.leased = 0
        self.backing_off = False
        self.queued = False  # present in SubscriptionState.ready


class PushDeliverer(Protocol):
    def stop(self) -> None: ...


class SubscriptionState:
    def __init__(self, broker: "Broker", config: Pb, predicate: Predicate | None) -> None:
        self.broker = broker
        self.config = config
        self.predicate = predicate
        self.name: str = config.name
        # Deliverable now: unordered entries and ordering keys whose front may go out.
        self.ready: deque[Entry | KeyQueue] = deque()
        self.keys: dict[str, KeyQueue] = {}
        self.leases: dict[str, Entry] = {}
        self.waiters: set[asyncio.Event] = set()
        self.streams: set[Consumer] = set()
        self.deleted = False
        self.pusher: PushDeliverer | None = None
        self._loop = asyncio.get_running_loop()
        self.last_activity = self._loop.time()
        self._expiry_timer: asyncio.TimerHandle | None = None

    # -- configuration -------------------------------------------------------------------

    @property
    def has_dead_letter(self) -> bool:
        return bool(self.config.HasField("dead_letter_policy"))

    @property
    def push_endpoint(self) -> str:
        return str(self.config.push_config.push_endpoint)

    def reconfigured(self) -> None:
        """Apply side effects of a (re)configuration: push worker and expiration timer."""
        if self.push_endpoint and self.pusher is None:
            self.pusher = self.broker.start_push(self)
        elif not self.push_endpoint and self.pusher is not None:
            self.pusher.stop()
            self.pusher = None
        self._schedule_expiry()
        self.notify()

    # -- activity and expiration ---------------------------------------------------------

    def touch(self) -> None:
        self.last_activity = self._loop.time()

    def _schedule_expiry(self) -> None:
        if self._expiry_timer is not None:
            self._expiry_timer.cancel()
            self._expiry_timer = None
        ttl = cfg.expiration_ttl(self.config)
        if ttl is not None:
            self._expiry_timer = self._loop.call_at(self.last_activity + ttl, self._check_expiry)

    def _check_expiry(self) -> None:
        self._expiry_timer = None
        ttl = cfg.expiration_ttl(self.config)
        if self.deleted or ttl is None:
            return
        if self.streams:
            # A connected streaming subscriber counts as activity.
            self.touch()
        if self._loop.time() >= self.last_activity + ttl:
            log.info("subscription expired", extra={"subscription": self.name})
            self.broker.remove_subscription(self.name)
            return
        self._expiry_timer = self._loop.call_at(self.last_activity + ttl, self._check_expiry)

    def close(self) -> None:
        """Drop all state; consumers notice `deleted` when woken."""
        self.deleted = True
        for entry in self.leases.values():
            if entry.timer is not None:
                entry.timer.cancel()
        self.leases.clear()
        self.ready.clear()
        self.keys.clear()
        if self._expiry_timer is not None:
            self._expiry_timer.cancel()
        if self.pusher is not None:
            self.pusher.stop()
            self.pusher = None
        for stream in self.streams:
            stream.wake.set()
        self.notify()

    # -- enqueueing and delivery ---------------------------------------------------------

    def notify(self) -> None:
        for event in self.waiters:
            event.set()

    def enqueue(self, message: Pb, size: int) -> None:
        key = message.ordering_key if self.config.enable_message_ordering else ""
        entry = Entry(message, size, key)
        if not key:
            self.ready.append(entry)
            return
        queue = self.keys.get(key)
        if queue is None:
            queue = self.keys[key] = KeyQueue(key)
        queue.entries.append(entry)
        self._key_settled(queue)

    def _key_settled(self, queue: KeyQueue) -> None:
        """Make a key deliverable (or forget it) once nothing of it is out or backing off."""
        if queue.leased or queue.backing_off or queue.queued:
            return
        if queue.entries:
            queue.queued = True
            self.ready.append(queue)
        else:
            del self.keys[queue.key]

    def take(
        self,
        consumer: Consumer | None,
        limit: int,
        deadline: float,
        per_key_limit: int = 0,
        max_bytes: int = 0,
    ) -> list[Entry]:
        """Lease up to `limit` deliverable messages for `deadline` seconds.

        With `max_bytes`, the messages' sizes add up to at most that (the first message always
        goes): whatever is leased here must reach the consumer in one response, and a response
        the client cannot accept would leave its messages leased, and their keys stalled, until
        the leases ran out.
        """
        taken: list[Entry] = []
        size = 0

        def fits(entry: Entry) -> bool:
            return not (max_bytes and taken and size + entry.size > max_bytes)

        while self.ready and len(taken) < limit:
            if consumer is not None and not consumer.has_room():
                break
            item = self.ready[0]
            if isinstance(item, Entry):
                if not fits(item):
                    break
                self.ready.popleft()
                self._lease(item, consumer, deadline)
                taken.append(item)
                size += item.size
                continue
            if not fits(item.entries[0]):
                break  # the key stays first in line for the next response
            self.ready.popleft()
            item.queued = False
            for entry in item.entries:
                if len(taken) >= limit or (per_key_limit and item.leased >= per_key_limit):
                    break
                if consumer is not None and item.leased and not consumer.has_room():
                    break
                if not fits(entry):
                    break
                self._lease(entry, consumer, deadline)
                item.leased += 1
                taken.append(entry)
                size += entry.size
        if taken:
            self.touch()
        return taken

    def _lease(self, entry: Entry, consumer: Consumer | None, deadline: float) -> None:
        entry.attempts += 1
        ack_id = self.broker.next_ack_id()
        entry.ack_id = ack_id
        self.leases[ack_id] = entry
        entry.timer = self._loop.call_later(deadline, self._expire, ack_id)
        entry.consumer = consumer
        if consumer is not None:
            consumer.outstanding += 1
            consumer.outstanding_bytes += entry.size
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "deliver",
                extra={
                    "subscription": self.name,
                    "message_id": entry.message.message_id,
                    "attempt": entry.attempts,
                },
            )

    def _end_lease(self, entry: Entry) -> None:
        if entry.timer is not None:
            entry.timer.cancel()
            entry.timer = None
        entry.ack_id = None
        consumer = entry.consumer
        if consumer is not None:
            entry.consumer = None
            consumer.outstanding -= 1
            consumer.outstanding_bytes -= entry.size
            consumer.wake.set()

    # -- acknowledgement -----------------------------------------------------------------

    def acknowledge(self, ack_ids: Iterable[str]) -> None:
        self.touch()
        for ack_id in ack_ids:
            entry = self.leases.pop(ack_id, None)
            if entry is None:
                continue  # expired or unknown: ignored, as without exactly-once delivery
            self._end_lease(entry)
            if entry.key:
                queue = self.keys[entry.key]
                queue.entries.remove(entry)
                queue.leased -= 1
                self._key_settled(queue)
        if self.ready:
            self.notify()

    def modify_ack_deadline(self, ack_ids: Iterable[str], seconds: int) -> None:
        self.touch()
        for ack_id in ack_ids:
            entry = self.leases.get(ack_id)
            if entry is None:
                continue
            if seconds == 0:
                del self.leases[ack_id]
                self._fail(entry)
                continue
            if entry.timer is not None:
                entry.timer.cancel()
            entry.timer = self._loop.call_later(seconds, self._expire, ack_id)
        if self.ready:
            self.notify()

    def nack(self, ack_id: str) -> None:
        self.modify_ack_deadline((ack_id,), 0)

    def _expire(self, ack_id: str) -> None:
        entry = self.leases.pop(ack_id, None)
        if entry is None or self.deleted:
            return
        entry.timer = None
        self._fail(entry)
        if self.ready:
            self.notify()

    def _fail(self, entry: Entry) -> None:
        """Handle a nack or lease expiry: dead-letter, back off, or make deliverable again."""
        attempts = entry.attempts
        self._end_lease(entry)
        if not entry.key:
            if self._try_dead_letter(entry):
                return
            delay = self._backoff(attempts)
            if delay > 0:
                entry.timer = self._loop.call_later(delay, self._retry_entry, entry)
            else:
                self.ready.appendleft(entry)
            return
        # Redeliver the failed message and everything of its key delivered after it, in order.
        queue = self.keys[entry.key]
        failed = list(itertools.islice(queue.entries, queue.leased))
        queue.leased = 0
        for other in failed:
            if other.ack_id is not None:
                del self.leases[other.ack_id]
                self._end_lease(other)
        for other in failed:
            if self._try_dead_letter(other):
                queue.entries.remove(other)
        delay = self._backoff(attempts)
        if delay > 0:
            queue.backing_off = True
            self._loop.call_later(delay, self._retry_key, queue)
        else:
            self._key_settled(queue)

    def _retry_entry(self, entry: Entry) -> None:
        entry.timer = None
        if not self.deleted:
            self.ready.append(entry)
            self.notify()

    def _retry_key(self, queue: KeyQueue) -> None:
        if self.deleted:
            return
        queue.backing_off = False
        self._key_settled(queue)
        self.notify()

    def _backoff(self, attempts: int) -> float:
        # The exponent is capped so huge attempt counts cannot overflow a float.
        factor = 2 ** min(attempts - 1, 32)
        if self.config.HasField("retry_policy"):
            policy = self.config.retry_policy
            low = cfg.duration_seconds(policy.minimum_backoff)
            high = cfg.duration_seconds(policy.maximum_backoff)
            return float(min(high, low * factor))
        if self.push_endpoint:
            return float(min(PUSH_MAX_BACKOFF, PUSH_MIN_BACKOFF * factor))
        return 0.0

    def _try_dead_letter(self, entry: Entry) -> bool:
        """Forward a message that has used up its delivery attempts; False if it stays."""
        if not self.has_dead_letter:
            return False
        policy = self.config.dead_letter_policy
        if entry.attempts < policy.max_delivery_attempts:
            return False
        source = names.parse_subscription(self.name)
        original = entry.message
        forwarded = _PubsubMessage(data=original.data, ordering_key=original.ordering_key)
        forwarded.attributes.update(original.attributes)
        forwarded.attributes.update(
            {
                "CloudPubSubDeadLetterSourceDeliveryCount": str(entry.attempts),
                "CloudPubSubDeadLetterSourceSubscription": source.resource_id,
                "CloudPubSubDeadLetterSourceSubscriptionProject": source.project,
                "CloudPubSubDeadLetterSourceTopicPublishTime": rfc3339(original.publish_time),
            }
        )
        topic = self.broker.topics.get(policy.dead_letter_topic)
        if topic is None:
            # The real service keeps retrying while the dead-letter topic is unusable.
            log.warning(
                "dead-letter topic missing; message stays on the subscription",
                extra={"subscription": self.name, "topic": policy.dead_letter_topic},
            )
            return False
        self.broker.deliver_to_topic(topic, [forwarded])
        log.debug(
            "dead-lettered",
            extra={"subscription": self.name, "message_id": original.message_id},
        )
        return True


class TopicState:
    def __init__(self, config: Pb) -> None:
        self.config = config
        self.subscriptions: set[str] = set()


def _page(items: Iterable[str], page_size: int, page_token: str) -> tuple[list[str], str]:
    """Page through names in sorted order; the token is the last name of the previous page."""
    size = page_size if page_size > 0 else DEFAULT_PAGE_SIZE
    remaining = [name for name in sorted(items) if name > page_token]
    page = remaining[:size]
    return page, (page[-1] if len(remaining) > size else "")


class Broker:
    """All topics and subscriptions of the emulator (every project)."""

    def __init__(self, start_push: Callable[[SubscriptionState], PushDeliverer]) -> None:
        self.topics: dict[str, TopicState] = {}
        self.subscriptions: dict[str, SubscriptionState] = {}
        self.start_push = start_push
        self._message_ids = itertools.count(1)
        self._ack_ids = itertools.count(1)

    def next_ack_id(self) -> str:
        return f"{next(self._ack_ids):x}"

    # -- topics --------------------------------------------------------------------------

    def create_topic(self, config: Pb) -> Pb:
        _check_name(names.parse_topic, config.name)
        if config.name in self.topics:
            raise ApiError(grpc.StatusCode.ALREADY_EXISTS, "Topic already exists")
        stored = _Topic()
        stored.CopyFrom(config)
        self.topics[config.name] = TopicState(stored)
        log.debug("topic created", extra={"topic": config.name})
        return stored

    def topic(self, name: str) -> TopicState:
        _check_name(names.parse_topic, name)
        topic = self.topics.get(name)
        if topic is None:
            raise not_found(name)
        return topic

    def update_topic(self, update: Pb, paths: list[str]) -> Pb:
        topic = self.topic(update.name)
        candidate = _Topic()
        candidate.CopyFrom(topic.config)
        cfg.apply_update_mask(candidate, update, paths, cfg.TOPIC_UPDATABLE)
        topic.config = candidate
        return candidate

    def list_topics(self, project: str, page_size: int, page_token: str) -> tuple[list[Pb], str]:
        project_id = _check_name(names.parse_project, project)
        prefix = f"projects/{project_id}/topics/"
        page, token = _page(
            (name for name in self.topics if name.startswith(prefix)), page_size, page_token
        )
        return [self.topics[name].config for name in page], token

    def list_topic_subscriptions(
        self, topic: str, page_size: int, page_token: str
    ) -> tuple[list[str], str]:
        return _page(self.topic(topic).subscriptions, page_size, page_token)

    def delete_topic(self, name: str) -> None:
        topic = self.topic(name)
        del self.topics[name]
        for sub_name in topic.subscriptions:
            self.subscriptions[sub_name].config.topic = names.DELETED_TOPIC
        log.debug("topic deleted", extra={"topic": name})

    def publish(self, topic_name: str, messages: list[Pb]) -> list[str]:
        topic = self.topic(topic_name)
        if not messages:
            raise invalid("The request contains no messages.")
        total = 0
        for message in messages:
            _validate_message(message)
            total += message.ByteSize()
        if total > MAX_PUBLISH_BYTES:
            raise invalid("The value for request_size is too large.")
        return self.deliver_to_topic(topic, messages)

    def deliver_to_topic(self, topic: TopicState, messages: list[Pb]) -> list[str]:
        """Stamp messages with id and publish time and fan them out to the subscriptions."""
        now_ns = time.time_ns()
        seconds, nanos = divmod(now_ns - now_ns % 1_000_000, 1_000_000_000)
        subs = [self.subscriptions[name] for name in topic.subscriptions]
        ids: list[str] = []
        for original in messages:
            message = _PubsubMessage()
            message.CopyFrom(original)
            message.message_id = str(next(self._message_ids))
            message.publish_time.seconds = seconds
            message.publish_time.nanos = nanos
            size = message.ByteSize()
            attributes: Mapping[str, str] | None = None
            for sub in subs:
                if sub.predicate is not None:
                    if attributes is None:
                        attributes = dict(message.attributes)
                    if not sub.predicate(attributes):
                        continue  # the real service acknowledges non-matching messages itself
                sub.enqueue(message, size)
            ids.append(message.message_id)
            if log.isEnabledFor(logging.DEBUG):
                log.debug(
                    "published",
                    extra={"topic": topic.config.name, "message_id": message.message_id},
                )
        for sub in subs:
            if sub.ready:
                sub.notify()
        return ids

    # -- subscriptions -------------------------------------------------------------------

    def create_subscription(self, config: Pb) -> Pb:
        predicate = cfg.normalize_subscription(config)
        if config.name in self.subscriptions:
            raise ApiError(grpc.StatusCode.ALREADY_EXISTS, "Subscription already exists")
        topic = self.topic(config.topic)
        sub = SubscriptionState(self, config, predicate)
        self.subscriptions[config.name] = sub
        topic.subscriptions.add(config.name)
        sub.reconfigured()
        log.debug("subscription created", extra={"subscription": config.name})
        return config

    def subscription(self, name: str) -> SubscriptionState:
        _check_name(names.parse_subscription, name)
        sub = self.subscriptions.get(name)
        if sub is None:
            raise not_found(name)
        return sub

    def update_subscription(self, update: Pb, paths: list[str]) -> Pb:
        sub = self.subscription(update.name)
        candidate = type(sub.config)()
        candidate.CopyFrom(sub.config)
        cfg.apply_update_mask(candidate, update, paths, cfg.SUBSCRIPTION_UPDATABLE)
        cfg.normalize_subscription(candidate)
        sub.config = candidate
        sub.touch()
        sub.reconfigured()
        return candidate

    def modify_push_config(self, name: str, push_config: Pb) -> None:
        sub = self.subscription(name)
        candidate = type(sub.config)()
        candidate.CopyFrom(sub.config)
        candidate.push_config.CopyFrom(push_config)
        cfg.normalize_subscription(candidate)
        sub.config = candidate
        sub.touch()
        sub.reconfigured()

    def list_subscriptions(
        self, project: str, page_size: int, page_token: str
    ) -> tuple[list[Pb], str]:
        project_id = _check_name(names.parse_project, project)
        prefix = f"projects/{project_id}/subscriptions/"
        page, token = _page(
            (name for name in self.subscriptions if name.startswith(prefix)),
            page_size,
            page_token,
        )
        return [self.subscriptions[name].config for name in page], token

    def delete_subscription(self, name: str) -> None:
        self.subscription(name)
        self.remove_subscription(name)

    def remove_subscription(self, name: str) -> None:
        sub = self.subscriptions.pop(name)
        topic = self.topics.get(sub.config.topic)
        if topic is not None:
            topic.subscriptions.discard(name)
        sub.close()
        log.debug("subscription deleted", extra={"subscription": name})

    def close(self) -> None:
        for name in list(self.subscriptions):
            self.remove_subscription(name)


def _check_name(parse: Callable[[str], _T], name: str) -> _T:
    """Parse a resource name, mapping failures to INVALID_ARGUMENT."""
    try:
        return parse(name)
    except names.InvalidNameError as exc:
        raise invalid(str(exc)) from exc


def _validate_message(message: Pb) -> None:
    if not message.data and not message.attributes:
        raise invalid(
            "Some messages in the publish request are empty. Each message must contain a "
            "non-empty data field, or at least one attribute."
        )
    if len(message.attributes) > MAX_ATTRIBUTES:
        raise invalid(f"A message may have at most {MAX_ATTRIBUTES} attributes.")
    for key, value in message.attributes.items():
        if not key or len(key.encode()) > MAX_ATTRIBUTE_KEY_BYTES:
            raise invalid(f"Invalid attribute key {key!r}.")
        if key.startswith("goog"):
            raise invalid(f"The attribute key {key!r} is reserved (prefix 'goog').")
        if len(value.encode()) > MAX_ATTRIBUTE_VALUE_BYTES:
            raise invalid(f"The value of attribute {key!r} is too long.")
    if len(message.ordering_key.encode()) > MAX_ORDERING_KEY_BYTES:
        raise invalid("The ordering key is too long.")
