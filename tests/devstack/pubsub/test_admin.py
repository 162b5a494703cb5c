"""Topic and subscription administration through the official client."""

import pytest
from google.api_core import exceptions
from google.protobuf import field_mask_pb2

pytestmark = pytest.mark.timeout(60)


def test_topic_crud(pubsub):
    publisher = pubsub.publisher
    names = [pubsub.create_topic(f"topic-{i}") for i in range(3)]

    assert publisher.get_topic(topic=names[1]).name == names[1]
    listed = [t.name for t in publisher.list_topics(project=f"projects/{pubsub.project}")]
    assert listed == sorted(names)

    paged = publisher.list_topics(request={"project": f"projects/{pubsub.project}", "page_size": 2})
    pages = [[t.name for t in page.topics] for page in paged.pages]
    assert pages == [sorted(names)[:2], sorted(names)[2:]]

    publisher.delete_topic(topic=names[0])
    with pytest.raises(exceptions.NotFound):
        publisher.get_topic(topic=names[0])
    with pytest.raises(exceptions.NotFound):
        publisher.delete_topic(topic=names[0])
    listed = [t.name for t in publisher.list_topics(project=f"projects/{pubsub.project}")]
    assert listed == sorted(names[1:])


def test_update_topic_labels(pubsub):
    topic = pubsub.create_topic()
    updated = pubsub.publisher.update_topic(
        request={
            "topic": {"name": topic, "labels": {"team": "relay"}},
            "update_mask": field_mask_pb2.FieldMask(paths=["labels"]),
        }
    )
    assert dict(updated.labels) == {"team": "relay"}
    assert dict(pubsub.publisher.get_topic(topic=topic).labels) == {"team": "relay"}


def test_create_topic_twice_is_already_exists(pubsub):
    pubsub.create_topic("dup")
    with pytest.raises(exceptions.AlreadyExists):
        pubsub.create_topic("dup")


@pytest.mark.parametrize(
    "topic_id",
    ["ab", "1abc", "goog-topic", "has space", "slash/inside", "x" * 256, "bad*char"],
)
def test_invalid_topic_names_are_rejected(pubsub, topic_id):
    with pytest.raises(exceptions.InvalidArgument):
        pubsub.publisher.create_topic(name=pubsub.topic_path(topic_id))


def test_valid_unusual_topic_names_are_accepted(pubsub):
    for topic_id in ["abc", "a.b_c-d~e+f%g", "Z" * 255]:
        assert pubsub.create_topic(topic_id) == pubsub.topic_path(topic_id)


@pytest.mark.parametrize(
    "name",
    [
        "projects/p/subs/abc",
        "projects//subscriptions/abc",
        "subscriptions/abc",
        "projects/p/subscriptions/9ab",
    ],
)
def test_invalid_subscription_names_are_rejected(pubsub, name):
    topic = pubsub.create_topic()
    with pytest.raises(exceptions.InvalidArgument):
        pubsub.subscriber.create_subscription(request={"name": name, "topic": topic})


def test_subscription_crud_and_defaults(pubsub):
    subscriber = pubsub.subscriber
    topic = pubsub.create_topic()
    other_topic = pubsub.create_topic("other")
    sub = pubsub.create_subscription("sub-a", topic)
    pubsub.create_subscription("sub-b", topic)
    pubsub.create_subscription("sub-c", other_topic)

    got = subscriber.get_subscription(subscription=sub)
    assert got.topic == topic
    assert got.ack_deadline_seconds == 10
    assert got.expiration_policy.ttl.total_seconds() == 31 * 24 * 3600

    listed = [s.name for s in subscriber.list_subscriptions(project=f"projects/{pubsub.project}")]
    assert listed == [pubsub.subscription_path(s) for s in ("sub-a", "sub-b", "sub-c")]
    attached = list(pubsub.publisher.list_topic_subscriptions(topic=topic))
    assert attached == [pubsub.subscription_path("sub-a"), pubsub.subscription_path("sub-b")]

    subscriber.delete_subscription(subscription=sub)
    with pytest.raises(exceptions.NotFound):
        subscriber.get_subscription(subscription=sub)
    with pytest.raises(exceptions.NotFound):
        subscriber.delete_subscription(subscription=sub)
    assert list(pubsub.publisher.list_topic_subscriptions(topic=topic)) == [
        pubsub.subscription_path("sub-b")
    ]


def test_subscription_errors(pubsub):
    topic = pubsub.create_topic()
    with pytest.raises(exceptions.NotFound):
        pubsub.create_subscription("orphan", pubsub.topic_path("missing"))
    pubsub.create_subscription("dup", topic)
    with pytest.raises(exceptions.AlreadyExists):
        pubsub.create_subscription("dup", topic)
    for deadline in (5, 601):
        with pytest.raises(exceptions.InvalidArgument):
            pubsub.create_subscription("bad-deadline", topic, ack_deadline_seconds=deadline)
    for attempts in (4, 101):
        with pytest.raises(exceptions.InvalidArgument):
            pubsub.create_subscription(
                "bad-dlq",
                topic,
                dead_letter_policy={"dead_letter_topic": topic, "max_delivery_attempts": attempts},
            )
    with pytest.raises(exceptions.InvalidArgument):
        pubsub.create_subscription(
            "bad-retry",
            topic,
            retry_policy={"minimum_backoff": {"seconds": 20}, "maximum_backoff": {"seconds": 10}},
        )
    with pytest.raises(exceptions.NotFound):
        pubsub.subscriber.get_subscription(subscription=pubsub.subscription_path("missing"))


def test_dead_letter_and_retry_defaults(pubsub):
    topic = pubsub.create_topic()
    sub = pubsub.create_subscription(
        "defaults",
        topic,
        dead_letter_policy={"dead_letter_topic": topic},
        retry_policy={},
    )
    got = pubsub.subscriber.get_subscription(subscription=sub)
    assert got.dead_letter_policy.max_delivery_attempts == 5
    assert got.retry_policy.minimum_backoff.total_seconds() == 10
    assert got.retry_policy.maximum_backoff.total_seconds() == 600


def test_update_subscription(pubsub):
    topic = pubsub.create_topic()
    dlq = pubsub.create_topic("dlq")
    sub = pubsub.create_subscription("sub", topic)
    updated = pubsub.subscriber.update_subscription(
        request={
            "subscription": {
                "name": sub,
                "ack_deadline_seconds": 42,
                "dead_letter_policy": {"dead_letter_topic": dlq, "max_delivery_attempts": 7},
                "retry_policy": {
                    "minimum_backoff": {"seconds": 1},
                    "maximum_backoff": {"seconds": 5},
                },
                "push_config": {"push_endpoint": "http://127.0.0.1:9/push"},
            },
            "update_mask": field_mask_pb2.FieldMask(
                paths=["ack_deadline_seconds", "dead_letter_policy", "retry_policy", "push_config"]
            ),
        }
    )
    assert updated.ack_deadline_seconds == 42
    got = pubsub.subscriber.get_subscription(subscription=sub)
    assert got.ack_deadline_seconds == 42
    assert got.dead_letter_policy.dead_letter_topic == dlq
    assert got.dead_letter_policy.max_delivery_attempts == 7
    assert got.retry_policy.maximum_backoff.total_seconds() == 5
    assert got.push_config.push_endpoint == "http://127.0.0.1:9/push"

    pubsub.subscriber.modify_push_config(request={"subscription": sub, "push_config": {}})
    assert pubsub.subscriber.get_subscription(subscription=sub).push_config.push_endpoint == ""

    with pytest.raises(exceptions.InvalidArgument):
        pubsub.subscriber.update_subscription(
            request={
                "subscription": {"name": sub, "ack_deadline_seconds": 1000},
                "update_mask": field_mask_pb2.FieldMask(paths=["ack_deadline_seconds"]),
            }
        )
    with pytest.raises(exceptions.InvalidArgument):
        pubsub.subscriber.update_subscription(
            request={
                "subscription": {"name": sub, "filter": "attributes:x"},
                "update_mask": field_mask_pb2.FieldMask(paths=["filter"]),
            }
        )
    assert pubsub.subscriber.get_subscription(subscription=sub).ack_deadline_seconds == 42


def test_publish_errors(pubsub):
    with pytest.raises(exceptions.NotFound):
        pubsub.publish(pubsub.topic_path("missing"))
    topic = pubsub.create_topic()
    with pytest.raises(exceptions.InvalidArgument):
        pubsub.publisher.publish(topic, b"").result(timeout=10)
    with pytest.raises(exceptions.InvalidArgument):
        pubsub.publisher.publish(topic, b"x", googReserved="1").result(timeout=10)
    # Attributes alone make a message non-empty.
    assert pubsub.publisher.publish(topic, b"", only="attributes").result(timeout=10)


def test_deleted_topic_leaves_subscription_detached(pubsub):
    topic = pubsub.create_topic()
    sub = pubsub.create_subscription("survivor", topic)
    pubsub.publish(topic, b"before delete")
    pubsub.publisher.delete_topic(topic=topic)

    assert pubsub.subscriber.get_subscription(subscription=sub).topic == "_deleted-topic_"
    with pytest.raises(exceptions.NotFound):
        pubsub.publish(topic, b"after delete")
    # The backlog stays readable; a re-created topic starts without subscriptions.
    assert [m.message.data for m in pubsub.pull(sub)] == [b"before delete"]
    pubsub.create_topic()
    assert list(pubsub.publisher.list_topic_subscriptions(topic=topic)) == []


@pytest.mark.timeout(30)
def test_expiration_policy_deletes_idle_subscription(pubsub):
    topic = pubsub.create_topic()
    idle = pubsub.create_subscription("idle", topic, expiration_policy={"ttl": {"seconds": 1}})
    forever = pubsub.create_subscription("forever", topic, expiration_policy={})
    assert pubsub.subscriber.get_subscription(subscription=idle).expiration_policy.ttl.seconds == 1

    def idle_gone() -> bool:
        try:
            pubsub.subscriber.get_subscription(subscription=idle)
        except exceptions.NotFound:
            return True
        return False

    assert pubsub.wait_until(idle_gone, timeout=10)
    assert list(pubsub.publisher.list_topic_subscriptions(topic=topic)) == [forever]
    assert pubsub.subscriber.get_subscription(subscription=forever).name == forever


def test_snapshots_and_seek_are_unimplemented(pubsub):
    topic = pubsub.create_topic()
    sub = pubsub.create_subscription("sub", topic)
    with pytest.raises(exceptions.MethodNotImplemented):
        list(pubsub.subscriber.list_snapshots(project=f"projects/{pubsub.project}"))
    with pytest.raises(exceptions.MethodNotImplemented):
        pubsub.subscriber.seek(request={"subscription": sub, "snapshot": "x"})
