"""Subscription filters: what they deliver and which ones are rejected."""

import pytest
from google.api_core import exceptions

pytestmark = pytest.mark.timeout(60)

MESSAGES = {
    b"m1": {"relay": "a", "kind": "x"},
    b"m2": {"relay": "a"},
    b"m3": {"relay": "b", "kind": "x"},
    b"m4": {"relay": "abc"},
    b"m5": {"kind": "x"},
    b"m6": {"my key": 'va"l'},
}

FILTERS = {
    'attributes.relay = "a"': {b"m1", b"m2"},
    'attributes.relay != "a"': {b"m3", b"m4", b"m5", b"m6"},
    "attributes:relay": {b"m1", b"m2", b"m3", b"m4"},
    "NOT attributes:relay": {b"m5", b"m6"},
    "-attributes:relay": {b"m5", b"m6"},
    'hasPrefix(attributes.relay, "ab")': {b"m4"},
    'attributes.relay = "a" OR attributes.relay = "b"': {b"m1", b"m2", b"m3"},
    'attributes:relay AND attributes.kind = "x"': {b"m1", b"m3"},
    '(attributes.relay = "a" OR attributes.relay = "b") AND NOT attributes.kind = "x"': {b"m2"},
    'attributes."my key" = "va\\"l"': {b"m6"},
    "attributes:\"my key\" OR attributes.relay = 'b'": {b"m3", b"m6"},
    'attributes.relay = "\\x61"': {b"m1", b"m2"},
}


def test_filters_deliver_only_matching_messages(pubsub):
    topic = pubsub.create_topic()
    subs = {
        expression: pubsub.create_subscription(f"filtered-{i}", topic, filter=expression)
        for i, expression in enumerate(FILTERS)
    }
    unfiltered = pubsub.create_subscription("unfiltered", topic)
    futures = [pubsub.publisher.publish(topic, data, **attrs) for data, attrs in MESSAGES.items()]
    for future in futures:
        future.result(timeout=10)

    for expression, sub in subs.items():
        # Everything was enqueued before this pull, so one pull returns every match.
        got = {m.message.data for m in pubsub.pull(sub, max_messages=20)}
        assert got == FILTERS[expression], expression
        assert pubsub.subscriber.get_subscription(subscription=sub).filter == expression
    assert {m.message.data for m in pubsub.pull(unfiltered, max_messages=20)} == set(MESSAGES)


def test_non_matching_messages_are_never_delivered(pubsub):
    topic = pubsub.create_topic()
    sub = pubsub.create_subscription("relay-a", topic, filter='attributes.relay = "a"')
    pubsub.publish(topic, b"other", relay="b")
    pubsub.publish(topic, b"none")
    pubsub.publish(topic, b"match", relay="a")
    received = pubsub.pull(sub)
    assert [m.message.data for m in received] == [b"match"]
    pubsub.ack(sub, [received[0].ack_id])
    assert pubsub.pull(sub, timeout=2.0) == []


@pytest.mark.parametrize(
    "expression",
    [
        'attributes.a = "1" AND attributes.b = "2" OR attributes.c = "3"',
        'attributes.a = "1" OR attributes.b = "2" AND attributes.c = "3"',
        "attributes.a = unquoted",
        'attributes.a > "1"',
        'data = "x"',
        'attributes.a = "unterminated',
        "hasPrefix(attributes.a)",
        'hasprefix(attributes.a, "x")',
        "attributes.",
        "(attributes:a",
        "attributes:a attributes:b",
        'attributes.a = "bad \\q escape"',
        "attributes:" + "k" * 250,
    ],
)
def test_invalid_filters_are_rejected(pubsub, expression):
    topic = pubsub.create_topic()
    with pytest.raises(exceptions.InvalidArgument):
        pubsub.create_subscription("bad-filter", topic, filter=expression)
