"""Ordering keys at scale through the official client: streaming pull and pull.

Payloads are sized like real events (0.5 to 40 KB), so a key's backlog runs to several MiB: more
than the 4 MiB a gRPC client accepts in one response by default, which is what the official
client's emulator channel keeps. Every test checks each key's messages arrive exactly in publish
order with none missing and no duplicates, except where a nack or an expired lease asks for a
redelivery, and then that the redelivery starts at the failed message.
"""

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import pytest

pytestmark = pytest.mark.timeout(60)

# Well above what each scenario needs on this machine (a few seconds), so only a stall fails.
DELIVERY_TIMEOUT = 25.0


def payload(key: str, seq: int, largest: int = 40_000) -> bytes:
    """`key:seq:` and filler: 512 bytes to about `largest`, spread by a stride over seq."""
    return f"{key}:{seq}:".encode() + b"x" * (512 + (seq * 7919) % largest)


def parse(data: bytes) -> tuple[str, int]:
    key, seq, _ = data.split(b":", 2)
    return key.decode(), int(seq)


def publish_all(
    publisher: Any, topic: str, keys: list[str], per_key: int, largest: int = 40_000
) -> None:
    """Publish `per_key` messages on each key, keys interleaved, and wait for all of them."""
    futures = [
        publisher.publish(topic, payload(key, seq, largest), ordering_key=key)
        for seq in range(per_key)
        for key in keys
    ]
    for future in futures:
        future.result(timeout=30)


class Collector:
    """A subscribe() callback recording each key's sequence numbers in delivery order; it acks
    every message except the first delivery of each (key, seq) in `nack_once`."""

    def __init__(
        self,
        is_complete: Callable[[dict[str, list[int]]], bool],
        nack_once: Iterable[tuple[str, int]] = (),
    ) -> None:
        self.is_complete = is_complete
        self.nack_once = set(nack_once)
        self.received: dict[str, list[int]] = defaultdict(list)
        self.lock = threading.Lock()
        self.done = threading.Event()

    def __call__(self, message: Any) -> None:
        key, seq = parse(message.data)
        assert key == message.ordering_key
        with self.lock:
            self.received[key].append(seq)
            nack = (key, seq) in self.nack_once
            self.nack_once.discard((key, seq))
            if self.is_complete(self.received):
                self.done.set()
        if nack:
            message.nack()
        else:
            message.ack()

    def count(self) -> int:
        with self.lock:
            return sum(map(len, self.received.values()))


def all_of(total: int) -> Callable[[dict[str, list[int]]], bool]:
    return lambda received: sum(map(len, received.values())) >= total


def subscribe_until_done(pubsub: Any, sub: str, collector: Collector, publish: Any) -> None:
    """Run subscribe() while `publish()` runs, until the collector is complete."""
    started = time.monotonic()
    future = pubsub.subscriber.subscribe(sub, collector)
    try:
        publish()
        finished = collector.done.wait(DELIVERY_TIMEOUT)
        elapsed = time.monotonic() - started
        with collector.lock:
            progress = {key: len(seqs) for key, seqs in collector.received.items()}
        assert finished, f"deliveries per key after {elapsed:.0f} s: {progress}"
        # Give redeliveries (there must be none left) a chance to show up.
        settled = collector.count()
        time.sleep(0.5)
        assert collector.count() == settled
    finally:
        future.cancel()
        future.result(timeout=10)


def ordered_subscription(pubsub: Any, **fields: Any) -> tuple[str, str]:
    topic = pubsub.create_topic()
    sub = pubsub.create_subscription("ordered", topic, enable_message_ordering=True, **fields)
    return topic, sub


# -- streaming pull ------------------------------------------------------------------------


@pytest.mark.parametrize("backlog", [True, False], ids=["backlog", "live"])
def test_thousand_messages_on_four_keys_arrive_in_order(pubsub, ordered_publisher, backlog):
    """The acceptance scenario: 1,000 messages on 4 keys, published before the subscriber
    starts (one backlog of about 20 MiB) or while it runs."""
    keys, per_key = ["k0", "k1", "k2", "k3"], 250
    topic, sub = ordered_subscription(pubsub)
    collector = Collector(all_of(len(keys) * per_key))

    def publish() -> None:
        if not backlog:
            publish_all(ordered_publisher, topic, keys, per_key)

    if backlog:
        publish_all(ordered_publisher, topic, keys, per_key)
    subscribe_until_done(pubsub, sub, collector, publish)
    assert dict(collector.received) == {key: list(range(per_key)) for key in keys}


def test_hundreds_per_key_on_two_keys_arrive_in_order(pubsub, ordered_publisher):
    """The reported scenario: 200 messages (0.5 to 120 KB) on two keys published while the
    subscriber runs."""
    keys, per_key = ["a", "b"], 100
    topic, sub = ordered_subscription(pubsub)
    collector = Collector(all_of(len(keys) * per_key))
    subscribe_until_done(
        pubsub,
        sub,
        collector,
        lambda: publish_all(ordered_publisher, topic, keys, per_key, largest=120_000),
    )
    assert dict(collector.received) == {key: list(range(per_key)) for key in keys}


def redelivered_from(sequence: list[int], nacked: int, per_key: int) -> bool:
    """Whether a key's deliveries are 0..B (B >= nacked: the client still hands out what it
    held after the nacked message) followed by the redelivery nacked..per_key-1."""
    try:
        again = sequence.index(nacked, nacked + 1)
    except ValueError:
        return False
    return sequence[:again] == list(range(again)) and sequence[again:] == list(
        range(nacked, per_key)
    )


def test_nacks_redeliver_from_the_nacked_message_at_scale(pubsub, ordered_publisher):
    keys, per_key = ["a", "b", "c", "d"], 200
    nacks = {"a": 0, "b": per_key - 1, "c": 100}  # d: none

    def complete(received: dict[str, list[int]]) -> bool:
        return all(
            redelivered_from(received[key], nacks[key], per_key)
            if key in nacks
            else len(received[key]) == per_key
            for key in keys
        )

    topic, sub = ordered_subscription(pubsub)
    collector = Collector(complete, nack_once=nacks.items())
    publish_all(ordered_publisher, topic, keys, per_key)
    subscribe_until_done(pubsub, sub, collector, lambda: None)
    for key, nacked in nacks.items():
        assert redelivered_from(collector.received[key], nacked, per_key), (
            key,
            collector.received[key],
        )
    assert collector.received["d"] == list(range(per_key))


# -- synchronous pull ----------------------------------------------------------------------


def pull_ordered(
    pubsub: Any, sub: str, max_messages: int = 1000, timeout: float = 10.0
) -> tuple[list[Any], dict[str, list[int]]]:
    """One pull (waiting up to about `timeout` - 1 s for messages); the messages and their
    sequence numbers per key, in the order received."""
    messages = pubsub.pull(sub, max_messages=max_messages, timeout=timeout)
    by_key: dict[str, list[int]] = defaultdict(list)
    for received in messages:
        key, seq = parse(received.message.data)
        assert key == received.message.ordering_key
        by_key[key].append(seq)
    return messages, by_key


def test_pull_and_acknowledge_hundreds_per_key_in_order(pubsub, ordered_publisher):
    keys, per_key = ["k0", "k1", "k2", "k3"], 250
    topic, sub = ordered_subscription(pubsub)
    publish_all(ordered_publisher, topic, keys, per_key)
    received: dict[str, list[int]] = defaultdict(list)
    deadline = time.monotonic() + DELIVERY_TIMEOUT
    while sum(map(len, received.values())) < len(keys) * per_key:
        assert time.monotonic() < deadline, {k: len(v) for k, v in received.items()}
        messages, by_key = pull_ordered(pubsub, sub)
        for key, seqs in by_key.items():
            received[key].extend(seqs)
        if messages:
            pubsub.ack(sub, [m.ack_id for m in messages])
    assert dict(received) == {key: list(range(per_key)) for key in keys}
    assert pubsub.pull(sub, timeout=2.0) == []


def test_pull_holds_a_key_until_its_batch_is_acknowledged(pubsub, ordered_publisher):
    keys, per_key = ["a", "b"], 200
    topic, sub = ordered_subscription(pubsub)
    publish_all(ordered_publisher, topic, keys, per_key)
    first, by_key = pull_ordered(pubsub, sub, max_messages=50)
    # Each key starts at its first message; whatever is leased of a key is a prefix.
    for key, seqs in by_key.items():
        assert seqs == list(range(len(seqs))), key
    # Nothing more of a key whose batch is out, however many pulls ask.
    held = {key: len(seqs) for key, seqs in by_key.items()}
    for _ in range(3):
        more, more_by_key = pull_ordered(pubsub, sub, timeout=2.0)
        for key, seqs in more_by_key.items():
            assert key not in held, (key, seqs[:5])
            assert seqs == list(range(len(seqs))), key
            held[key] = len(seqs)
        if more:
            first += more
    pubsub.ack(sub, [m.ack_id for m in first])
    _, after_ack = pull_ordered(pubsub, sub)
    assert after_ack, "nothing delivered after the batches were acknowledged"
    for key, seqs in after_ack.items():
        assert seqs[0] == held[key], key
        assert seqs == list(range(held[key], held[key] + len(seqs))), key


def test_pull_nack_redelivers_the_nacked_message_before_later_ones(pubsub, ordered_publisher):
    keys, per_key, nack_at = ["a", "b"], 150, 40
    topic, sub = ordered_subscription(pubsub)
    publish_all(ordered_publisher, topic, keys, per_key)
    received: dict[str, list[int]] = defaultdict(list)
    nacked = False
    deadline = time.monotonic() + DELIVERY_TIMEOUT
    while sum(map(len, received.values())) < len(keys) * per_key:
        assert time.monotonic() < deadline, {k: len(v) for k, v in received.items()}
        messages, _ = pull_ordered(pubsub, sub)
        acks, nack_ids = [], []
        for message in messages:
            key, seq = parse(message.message.data)
            if key == "a" and seq == nack_at and not nacked:
                nacked = True
                nack_ids.append(message.ack_id)
            elif key == "a" and nack_ids:
                continue  # later messages of the key: neither acked nor nacked
            else:
                received[key].append(seq)
                acks.append(message.ack_id)
        if acks:
            pubsub.ack(sub, acks)
        if nack_ids:
            pubsub.nack(sub, nack_ids)
    assert nacked
    # The nacked message came again first, then the ones after it: a's acked sequence is exact.
    assert dict(received) == {key: list(range(per_key)) for key in keys}


def test_pull_expired_lease_redelivers_it_before_later_ones(pubsub, ordered_publisher):
    keys, per_key, expire_at = ["a", "b"], 120, 30
    topic, sub = ordered_subscription(pubsub, ack_deadline_seconds=60)
    publish_all(ordered_publisher, topic, keys, per_key)
    messages, by_key = pull_ordered(pubsub, sub)
    assert by_key["a"][: expire_at + 1] == list(range(expire_at + 1))
    # Acknowledge a's messages before `expire_at`, give `expire_at` a 1 s lease and keep the
    # later ones leased (60 s): the expiry alone must bring the key back, from `expire_at` on.
    a_ids = {parse(m.message.data)[1]: m.ack_id for m in messages if m.message.ordering_key == "a"}
    pubsub.ack(sub, [a_ids[seq] for seq in range(expire_at)])
    pubsub.subscriber.modify_ack_deadline(
        request={"subscription": sub, "ack_ids": [a_ids[expire_at]], "ack_deadline_seconds": 1}
    )
    others = [m.ack_id for m in messages if m.message.ordering_key != "a"]
    if others:
        pubsub.ack(sub, others)
    expired_at = time.monotonic() + 1
    redelivered: list[int] = []
    while not redelivered:
        assert time.monotonic() < expired_at + 10, "the expired message was not redelivered"
        again, again_by_key = pull_ordered(pubsub, sub)
        redelivered = again_by_key.get("a", [])
        others = [m.ack_id for m in again if m.message.ordering_key != "a"]
        if others:
            pubsub.ack(sub, others)
    assert time.monotonic() >= expired_at - 0.2, "redelivered before the lease ran out"
    assert redelivered[0] == expire_at
    assert redelivered == list(range(expire_at, expire_at + len(redelivered)))
