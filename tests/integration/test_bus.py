"""Publishing through ``shared.bus.Bus`` against the Pub/Sub emulator: every message reaches
its topic with its attributes, ids come back in the order given, and a batch past one
Publish call's limits goes out in several calls (``_requests``), none lost or reordered."""

from __future__ import annotations

from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient

from shared.bus import MAX_REQUEST_BYTES, MAX_REQUEST_MESSAGES, Bus, Outgoing, _requests


def _messages(topic: str, n: int, size: int = 10) -> list[Outgoing]:
    return [
        (topic, f"{i}:".encode() + b"x" * size, {"kind": "test", "i": str(i)}) for i in range(n)
    ]


def test_a_call_carries_at_most_its_limits_and_keeps_each_topic_s_order() -> None:
    many = _messages("a", MAX_REQUEST_MESSAGES * 2 + 1)
    calls = list(_requests(many))
    assert [len(indices) for _, indices in calls] == [MAX_REQUEST_MESSAGES] * 2 + [1]
    assert [i for _, indices in calls for i in indices] == list(range(len(many)))
    big = _messages("b", 5, size=MAX_REQUEST_BYTES // 3)  # two fit a call, a third does not
    assert [indices for _, indices in _requests(big)] == [[0, 1], [2, 3], [4]]
    mixed: list[Outgoing] = [("t1", b"1", {}), ("t2", b"2", {}), ("t1", b"3", {})]
    assert list(_requests(mixed)) == [("t1", [0, 2]), ("t2", [1])]


def test_every_message_reaches_its_topic_with_its_attributes(
    project_id: str, publisher: PublisherClient, subscriber: SubscriberClient
) -> None:
    bus = Bus(Bus.publisher(), project_id)
    subscriptions = {}
    for topic in ("first", "second"):
        publisher.create_topic(name=bus.topic_path(topic))
        name = subscriber.subscription_path(project_id, f"{topic}-all")
        subscriber.create_subscription(name=name, topic=bus.topic_path(topic))
        subscriptions[topic] = name
    first = _messages("first", MAX_REQUEST_MESSAGES + 5)  # two calls
    second = _messages("second", 3)
    interleaved = [*first[:2], *second, *first[2:]]
    ids = bus.publish_all(interleaved)
    assert len(ids) == len(set(ids)) == len(interleaved)
    assert all(ids)
    for topic, sent in (("first", first), ("second", second)):
        got: dict[str, tuple[bytes, dict[str, str]]] = {}
        while len(got) < len(sent):
            response = subscriber.pull(subscription=subscriptions[topic], max_messages=1000)
            for received in response.received_messages:
                message = received.message
                got[message.message_id] = (message.data, dict(message.attributes))
            if response.received_messages:
                subscriber.acknowledge(
                    subscription=subscriptions[topic],
                    ack_ids=[r.ack_id for r in response.received_messages],
                )
        expected = {ids[interleaved.index(m)]: (m[1], m[2]) for m in sent}
        assert got == expected
