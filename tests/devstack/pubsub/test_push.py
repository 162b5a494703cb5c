"""Push subscriptions against a real local HTTP endpoint."""

import base64
import itertools
from datetime import UTC, datetime

import pytest

pytestmark = pytest.mark.timeout(60)


def test_push_envelope_shape(pubsub, push_receiver):
    topic = pubsub.create_topic()
    endpoint = push_receiver.url("/envelope", [204])
    sub = pubsub.create_subscription("push", topic, push_config={"push_endpoint": endpoint})
    before = datetime.now(UTC)
    message_id = pubsub.publish(topic, b"hello push", color="blue", size="L")

    requests = push_receiver.wait_for("/envelope", 1, timeout=10)
    assert len(requests) == 1
    request = requests[0]
    assert request.headers["content-type"] == "application/json"
    body = request.json()
    assert set(body) == {"message", "subscription"}  # no deliveryAttempt without dead letters
    assert body["subscription"] == sub
    message = body["message"]
    assert set(message) == {
        "data",
        "attributes",
        "messageId",
        "message_id",
        "publishTime",
        "publish_time",
    }
    assert base64.b64decode(message["data"]) == b"hello push"
    assert message["attributes"] == {"color": "blue", "size": "L"}
    assert message["messageId"] == message["message_id"] == message_id
    assert message["publishTime"] == message["publish_time"]
    assert message["publishTime"].endswith("Z")
    published = datetime.fromisoformat(message["publishTime"].replace("Z", "+00:00"))
    assert abs((published - before).total_seconds()) < 5
    # 204 acknowledged it: no further deliveries.
    assert not pubsub.wait_until(lambda: len(push_receiver.received("/envelope")) > 1, 1.5)


def test_push_ordering_key_in_envelope(pubsub, push_receiver, ordered_publisher):
    topic = pubsub.create_topic()
    endpoint = push_receiver.url("/ordered", [200])
    pubsub.create_subscription(
        "push", topic, push_config={"push_endpoint": endpoint}, enable_message_ordering=True
    )
    publisher = ordered_publisher
    futures = [publisher.publish(topic, str(i).encode(), ordering_key="key") for i in range(20)]
    for future in futures:
        future.result(timeout=10)
    requests = push_receiver.wait_for("/ordered", 20, timeout=10)
    bodies = [r.json()["message"] for r in requests]
    assert {b["orderingKey"] for b in bodies} == {"key"}
    assert [int(base64.b64decode(b["data"])) for b in bodies] == list(range(20))


def test_push_error_status_redelivers_until_success(pubsub, push_receiver):
    topic = pubsub.create_topic()
    dlq = pubsub.create_topic("dlq")
    endpoint = push_receiver.url("/flaky", [500, 503, 204])
    pubsub.create_subscription(
        "push",
        topic,
        push_config={"push_endpoint": endpoint},
        dead_letter_policy={"dead_letter_topic": dlq, "max_delivery_attempts": 10},
    )
    message_id = pubsub.publish(topic, b"retry me")

    requests = push_receiver.wait_for("/flaky", 3, timeout=10)
    bodies = [r.json() for r in requests]
    assert [b["message"]["messageId"] for b in bodies] == [message_id] * 3
    assert [b["deliveryAttempt"] for b in bodies] == [1, 2, 3]
    # Without a retry policy push backs off exponentially from 100 ms.
    gaps = [b.received_at - a.received_at for a, b in itertools.pairwise(requests)]
    assert gaps[0] >= 0.09
    assert gaps[1] >= 0.19
    assert not pubsub.wait_until(lambda: len(push_receiver.received("/flaky")) > 3, 1.5)


def test_push_retry_policy_backoff(pubsub, push_receiver):
    topic = pubsub.create_topic()
    endpoint = push_receiver.url("/backoff", [500, 200])
    pubsub.create_subscription(
        "push",
        topic,
        push_config={"push_endpoint": endpoint},
        retry_policy={"minimum_backoff": {"seconds": 1}, "maximum_backoff": {"seconds": 1}},
    )
    pubsub.publish(topic, b"slowly")
    requests = push_receiver.wait_for("/backoff", 2, timeout=10)
    assert requests[1].received_at - requests[0].received_at >= 0.95


def test_push_failures_end_in_dead_letter_topic(pubsub, push_receiver):
    topic = pubsub.create_topic()
    dlq = pubsub.create_topic("dlq")
    dlq_sub = pubsub.create_subscription("dlq-sub", dlq)
    endpoint = push_receiver.url("/broken", [500])
    pubsub.create_subscription(
        "push",
        topic,
        push_config={"push_endpoint": endpoint},
        dead_letter_policy={"dead_letter_topic": dlq, "max_delivery_attempts": 5},
    )
    pubsub.publish(topic, b"doomed")
    dead = pubsub.pull(dlq_sub, timeout=10)
    assert [m.message.data for m in dead] == [b"doomed"]
    assert dead[0].message.attributes["CloudPubSubDeadLetterSourceDeliveryCount"] == "5"
    assert [r.json()["deliveryAttempt"] for r in push_receiver.received("/broken")] == [
        1,
        2,
        3,
        4,
        5,
    ]


@pytest.mark.timeout(40)
def test_push_without_answer_within_ack_deadline_is_nack(pubsub, push_receiver):
    topic = pubsub.create_topic()
    dlq = pubsub.create_topic("dlq")
    # The first request hangs past the 10 s ack deadline; the retry is answered at once.
    endpoint = push_receiver.url("/slow", [200, 200], delays=[15.0])
    pubsub.create_subscription(
        "push",
        topic,
        ack_deadline_seconds=10,
        push_config={"push_endpoint": endpoint},
        dead_letter_policy={"dead_letter_topic": dlq, "max_delivery_attempts": 5},
    )
    pubsub.publish(topic, b"patience")
    requests = push_receiver.wait_for("/slow", 2, timeout=20)
    assert len(requests) == 2
    waited = requests[1].received_at - requests[0].received_at
    assert 9.5 <= waited < 14
    assert [r.json()["deliveryAttempt"] for r in requests] == [1, 2]
    assert not pubsub.wait_until(lambda: len(push_receiver.received("/slow")) > 2, 1.0)


def test_push_no_wrapper_sends_raw_data(pubsub, push_receiver):
    topic = pubsub.create_topic()
    endpoint = push_receiver.url("/raw", [200])
    sub = pubsub.create_subscription(
        "push",
        topic,
        push_config={"push_endpoint": endpoint, "no_wrapper": {"write_metadata": True}},
    )
    message_id = pubsub.publish(topic, b"raw bytes", flavour="plain")
    request = push_receiver.wait_for("/raw", 1, timeout=10)[0]
    assert request.body == b"raw bytes"
    headers = request.headers
    assert headers["flavour"] == "plain"
    assert headers["x-goog-pubsub-message-id"] == message_id
    assert headers["x-goog-pubsub-subscription-name"] == sub


def test_switching_push_endpoint_off_and_on(pubsub, push_receiver):
    topic = pubsub.create_topic()
    endpoint = push_receiver.url("/toggle", [200])
    sub = pubsub.create_subscription("push", topic, push_config={"push_endpoint": endpoint})
    pubsub.subscriber.modify_push_config(request={"subscription": sub, "push_config": {}})
    pubsub.publish(topic, b"pulled")
    assert [m.message.data for m in pubsub.pull(sub)] == [b"pulled"]
    pubsub.subscriber.modify_push_config(
        request={"subscription": sub, "push_config": {"push_endpoint": endpoint}}
    )
    pubsub.publish(topic, b"pushed")
    requests = push_receiver.wait_for("/toggle", 1, timeout=10)
    # The pulled message is still leased to Pull, so only the new one is pushed.
    assert [base64.b64decode(r.json()["message"]["data"]) for r in requests] == [b"pushed"]
