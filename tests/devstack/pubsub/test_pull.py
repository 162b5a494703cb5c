"""Unary Pull, leases, redelivery, retry backoff and dead lettering."""

import time
from datetime import UTC, datetime

import pytest

pytestmark = pytest.mark.timeout(60)


def test_publish_with_attributes_then_pull_and_ack(pubsub):
    topic = pubsub.create_topic()
    sub = pubsub.create_subscription("sub", topic)
    before = datetime.now(UTC)
    message_id = pubsub.publish(topic, b"\x00binary\xff", kind="order", region="eu")

    received = pubsub.pull(sub)
    assert len(received) == 1
    message = received[0].message
    assert message.data == b"\x00binary\xff"
    assert dict(message.attributes) == {"kind": "order", "region": "eu"}
    assert message.message_id == message_id
    assert abs((message.publish_time - before).total_seconds()) < 5
    assert received[0].delivery_attempt == 0  # only set with a dead-letter policy

    pubsub.ack(sub, [received[0].ack_id])
    pubsub.nack(sub, [received[0].ack_id])  # a stale ack id is ignored, not redelivered
    assert pubsub.pull(sub, timeout=2.5) == []


def test_messages_go_only_to_subscriptions_existing_at_publish_time(pubsub):
    topic = pubsub.create_topic()
    early = pubsub.create_subscription("early", topic)
    pubsub.publish(topic, b"first")
    late = pubsub.create_subscription("late", topic)
    pubsub.publish(topic, b"second")

    assert sorted(m.message.data for m in pubsub.pull(early)) == [b"first", b"second"]
    assert [m.message.data for m in pubsub.pull(late)] == [b"second"]


def test_pull_waits_for_a_message(pubsub):
    topic = pubsub.create_topic()
    sub = pubsub.create_subscription("sub", topic)
    started = time.monotonic()
    assert pubsub.pull(sub, timeout=2.0) == []
    assert time.monotonic() - started >= 0.5  # it held the call instead of answering at once


def test_lease_expiry_redelivers_with_higher_attempt(pubsub):
    topic = pubsub.create_topic()
    dlq = pubsub.create_topic("dlq")
    sub = pubsub.create_subscription(
        "sub", topic, dead_letter_policy={"dead_letter_topic": dlq, "max_delivery_attempts": 10}
    )
    pubsub.publish(topic, b"expiring")

    first = pubsub.pull(sub)
    assert [r.delivery_attempt for r in first] == [1]
    # Shorten the lease instead of waiting out the 10 s default, then let it lapse.
    pubsub.subscriber.modify_ack_deadline(
        request={"subscription": sub, "ack_ids": [first[0].ack_id], "ack_deadline_seconds": 1}
    )
    leased_at = time.monotonic()
    second = pubsub.pull(sub)
    assert time.monotonic() - leased_at >= 0.9
    assert [r.message.data for r in second] == [b"expiring"]
    assert second[0].delivery_attempt == 2
    assert second[0].ack_id != first[0].ack_id

    # The first lease is gone: acking with its id does not remove the message.
    pubsub.ack(sub, [first[0].ack_id])
    pubsub.nack(sub, [second[0].ack_id])
    third = pubsub.pull(sub)
    assert third[0].delivery_attempt == 3


def test_default_ack_deadline_holds_the_lease(pubsub):
    topic = pubsub.create_topic()
    sub = pubsub.create_subscription("sub", topic)
    pubsub.publish(topic, b"held")
    assert len(pubsub.pull(sub)) == 1
    # Well inside the 10 s default deadline nothing is redelivered.
    assert pubsub.pull(sub, timeout=3.0) == []


def test_nack_redelivers_immediately(pubsub):
    topic = pubsub.create_topic()
    sub = pubsub.create_subscription("sub", topic)
    pubsub.publish(topic, b"nacked")
    first = pubsub.pull(sub)
    pubsub.nack(sub, [first[0].ack_id])
    started = time.monotonic()
    again = pubsub.pull(sub)
    assert [m.message.data for m in again] == [b"nacked"]
    assert time.monotonic() - started < 1.0  # without a retry policy there is no backoff
    pubsub.ack(sub, [again[0].ack_id])
    assert pubsub.pull(sub, timeout=2.0) == []


def test_modify_ack_deadline_extends_lease(pubsub):
    topic = pubsub.create_topic()
    sub = pubsub.create_subscription("sub", topic)
    pubsub.publish(topic, b"short")
    pubsub.publish(topic, b"extended")
    leased = {m.message.data: m.ack_id for m in pubsub.pull(sub)}
    assert set(leased) == {b"short", b"extended"}

    started = time.monotonic()
    for data, seconds in ((b"short", 1), (b"extended", 4)):
        pubsub.subscriber.modify_ack_deadline(
            request={
                "subscription": sub,
                "ack_ids": [leased[data]],
                "ack_deadline_seconds": seconds,
            }
        )
    assert [m.message.data for m in pubsub.pull(sub)] == [b"short"]
    # The extended one stays leased until its new deadline.
    assert pubsub.pull(sub, timeout=2.0) == []
    assert time.monotonic() - started < 3.5
    redelivered = pubsub.pull(sub)
    assert [m.message.data for m in redelivered] == [b"extended"]
    assert time.monotonic() - started >= 3.9


def test_retry_policy_backoff(pubsub):
    topic = pubsub.create_topic()
    sub = pubsub.create_subscription(
        "sub",
        topic,
        retry_policy={"minimum_backoff": {"nanos": 500_000_000}, "maximum_backoff": {"seconds": 1}},
    )
    pubsub.publish(topic, b"backoff")
    waits = []
    message = pubsub.pull(sub)[0]
    for _ in range(3):
        pubsub.nack(sub, [message.ack_id])
        nacked_at = time.monotonic()
        message = pubsub.pull(sub)[0]
        waits.append(time.monotonic() - nacked_at)
    # 0.5 s, then doubled (1 s), then capped at the 1 s maximum.
    assert waits[0] >= 0.45
    assert waits[1] >= 0.95
    assert waits[2] >= 0.95
    assert all(wait < 2.0 for wait in waits)


def test_dead_letter_after_max_delivery_attempts(pubsub):
    topic = pubsub.create_topic()
    dlq = pubsub.create_topic("dead-letters")
    dlq_sub = pubsub.create_subscription("dead-letters-sub", dlq)
    sub = pubsub.create_subscription(
        "sub", topic, dead_letter_policy={"dead_letter_topic": dlq, "max_delivery_attempts": 5}
    )
    message_id = pubsub.publish(topic, b"poison", origin="test")

    attempts = []
    original_publish_time = datetime.now(UTC)
    for _ in range(5):
        received = pubsub.pull(sub)
        assert len(received) == 1
        attempts.append(received[0].delivery_attempt)
        original_publish_time = received[0].message.publish_time
        pubsub.nack(sub, [received[0].ack_id])
    assert attempts == [1, 2, 3, 4, 5]

    dead = pubsub.pull(dlq_sub)
    assert len(dead) == 1
    message = dead[0].message
    assert message.data == b"poison"
    attributes = dict(message.attributes)
    publish_time = attributes.pop("CloudPubSubDeadLetterSourceTopicPublishTime")
    assert attributes == {
        "origin": "test",
        "CloudPubSubDeadLetterSourceDeliveryCount": "5",
        "CloudPubSubDeadLetterSourceSubscription": "sub",
        "CloudPubSubDeadLetterSourceSubscriptionProject": pubsub.project,
    }
    parsed = datetime.fromisoformat(publish_time.replace("Z", "+00:00"))
    assert abs((parsed - original_publish_time).total_seconds()) < 0.001
    assert message.message_id != message_id
    # The source subscription no longer has it.
    assert pubsub.pull(sub, timeout=2.0) == []


# The official client's channel to an emulator keeps gRPC's default 4 MiB receive limit.
CLIENT_RECEIVE_LIMIT = 4 * 1024 * 1024


def test_a_backlog_beyond_one_response_comes_in_responses_the_client_accepts(pubsub):
    topic = pubsub.create_topic()
    sub = pubsub.create_subscription("sub", topic)
    count = 300  # 30 KB each: 9 MB in all
    futures = [
        pubsub.publisher.publish(topic, f"{i}:".encode() + b"x" * 30_000) for i in range(count)
    ]
    for future in futures:
        future.result(timeout=30)
    seen: set[int] = set()
    responses = 0
    while len(seen) < count:
        received = pubsub.pull(sub, max_messages=1000)
        assert received, f"{len(seen)} of {count} pulled, then nothing"
        assert sum(len(m.message.data) for m in received) < CLIENT_RECEIVE_LIMIT
        seen.update(int(m.message.data.split(b":", 1)[0]) for m in received)
        pubsub.ack(sub, [m.ack_id for m in received])
        responses += 1
    assert seen == set(range(count))
    assert responses >= 3


def test_messages_too_large_to_share_a_response_come_one_by_one(pubsub):
    topic = pubsub.create_topic()
    sub = pubsub.create_subscription("sub", topic)
    for i in range(3):
        pubsub.publish(topic, bytes([i]) * 3_000_000)
    pulled = [pubsub.pull(sub, max_messages=10) for _ in range(3)]
    assert [len(batch) for batch in pulled] == [1, 1, 1]
    assert sorted(batch[0].message.data[0] for batch in pulled) == [0, 1, 2]
