"""StreamingPull through SubscriberClient.subscribe(), including ordering keys."""

import threading
from collections import Counter, defaultdict

import pytest

pytestmark = pytest.mark.timeout(60)


def test_streaming_pull_receives_each_message_exactly_once(pubsub):
    count = 2000
    topic = pubsub.create_topic()
    sub = pubsub.create_subscription("stream", topic)
    seen: Counter[bytes] = Counter()
    lock = threading.Lock()
    all_seen = threading.Event()

    def callback(message):
        with lock:
            seen[message.data] += 1
            if len(seen) == count:
                all_seen.set()
        message.ack()

    future = pubsub.subscriber.subscribe(sub, callback)
    try:
        publishes = [
            pubsub.publisher.publish(topic, str(i).encode(), index=str(i)) for i in range(count)
        ]
        for publish in publishes:
            publish.result(timeout=30)
        assert all_seen.wait(30), f"received {len(seen)} of {count}"
        # Give redeliveries (there must be none) a chance to show up.
        assert not pubsub.wait_until(lambda: sum(seen.values()) > count, timeout=1.5)
    finally:
        future.cancel()
        future.result(timeout=10)
    assert set(seen) == {str(i).encode() for i in range(count)}
    assert set(seen.values()) == {1}
    # Everything was acknowledged: nothing is left to pull.
    assert pubsub.pull(sub, timeout=2.0) == []


def test_backlog_beyond_one_response_reaches_subscribe(pubsub):
    """A backlog far above the 4 MiB the client takes in one response (12 MB here)."""
    count = 400
    topic = pubsub.create_topic()
    sub = pubsub.create_subscription("backlog", topic)
    futures = [
        pubsub.publisher.publish(topic, f"{i}:".encode() + b"x" * 30_000) for i in range(count)
    ]
    for future in futures:
        future.result(timeout=30)
    seen: Counter[int] = Counter()
    lock = threading.Lock()
    all_seen = threading.Event()

    def callback(message):
        with lock:
            seen[int(message.data.split(b":", 1)[0])] += 1
            if len(seen) == count:
                all_seen.set()
        message.ack()

    future = pubsub.subscriber.subscribe(sub, callback)
    try:
        assert all_seen.wait(20), f"received {len(seen)} of {count}"
    finally:
        future.cancel()
        future.result(timeout=10)
    assert set(seen) == set(range(count))
    assert set(seen.values()) == {1}


def test_ordering_keys_keep_publish_order(pubsub, ordered_publisher):
    keys, per_key = ["k0", "k1", "k2", "k3"], 50
    topic = pubsub.create_topic()
    sub = pubsub.create_subscription("ordered", topic, enable_message_ordering=True)
    publisher = ordered_publisher
    received: dict[str, list[int]] = defaultdict(list)
    lock = threading.Lock()
    done = threading.Event()

    def callback(message):
        with lock:
            received[message.ordering_key].append(int(message.data))
            if sum(map(len, received.values())) == len(keys) * per_key:
                done.set()
        message.ack()

    future = pubsub.subscriber.subscribe(sub, callback)
    try:
        publishes = [
            publisher.publish(topic, str(i).encode(), ordering_key=key)
            for i in range(per_key)
            for key in keys  # interleaved keys
        ]
        for publish in publishes:
            publish.result(timeout=30)
        assert done.wait(30)
    finally:
        future.cancel()
        future.result(timeout=10)
    assert dict(received) == {key: list(range(per_key)) for key in keys}


def test_ordering_survives_nack_and_redelivery(pubsub, ordered_publisher):
    keys, per_key, nack_at = ["a", "b"], 30, 10
    topic = pubsub.create_topic()
    sub = pubsub.create_subscription("ordered", topic, enable_message_ordering=True)
    publisher = ordered_publisher
    received: dict[str, list[int]] = defaultdict(list)
    acked: dict[str, set[int]] = defaultdict(set)
    lock = threading.Lock()
    done = threading.Event()
    nacked = threading.Event()

    def callback(message):
        key, seq = message.ordering_key, int(message.data)
        with lock:
            received[key].append(seq)
            if key == "a" and seq == nack_at and not nacked.is_set():
                nacked.set()
                message.nack()
                return
            acked[key].add(seq)
            if all(len(acked[k]) == per_key for k in keys):
                done.set()
        message.ack()

    future = pubsub.subscriber.subscribe(sub, callback)
    try:
        publishes = [
            publisher.publish(topic, str(i).encode(), ordering_key=key)
            for i in range(per_key)
            for key in keys
        ]
        for publish in publishes:
            publish.result(timeout=30)
        assert done.wait(30)
    finally:
        future.cancel()
        future.result(timeout=10)

    assert received["b"] == list(range(per_key))
    # Before the nack: in order, up to (and maybe past) the nacked message. Then redelivery in
    # order from the nacked message on; later messages whose acks reached the emulator before
    # the nack may be skipped, the others come again (as the real service does).
    sequence = received["a"]
    second = sequence.index(nack_at, nack_at + 1)
    before, after = sequence[:second], sequence[second:]
    assert before == list(range(len(before))), sequence
    assert len(before) > nack_at
    assert after[0] == nack_at
    assert after == sorted(set(after)), sequence
