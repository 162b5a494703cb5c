"""The one topology definition, and its creation on the Pub/Sub emulator."""

from __future__ import annotations

import pytest
from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient
from pydantic import ValidationError

from devstack.pubsub_setup import apply_topology
from shared.topology import Topology, load_topology


def test_every_work_queue_has_a_dead_letter_topic_a_worker_and_a_kept_copy() -> None:
    topology = load_topology()
    subs = {s.name: s for s in topology.subscriptions()}
    for q in topology.work_queues:
        main = subs[q.subscription]
        assert main.kind == "push"
        assert main.push_to == q.push_to
        assert main.dead_letter_topic == f"{q.topic}-dlq"
        assert main.max_delivery_attempts == 5
        assert subs[f"{q.topic}-dlq-worker"].push_to == "deadletter_worker"
        assert subs[f"{q.topic}-dlq-keep"].kind == "pull"
        assert f"{q.topic}-dlq" in topology.topic_names()
    assert set(topology.workers()) == {
        "triage_worker",
        "data_worker",
        "optimization_worker",
        "usage_aggregator",
        "budget_worker",
        "notify_worker",
        "deadletter_worker",
    }


def test_the_pipeline_topics_of_the_design_exist() -> None:
    names = load_topology().topic_names()
    for topic in ("apex-triage", "apex-data", "apex-optimization", "apex-events"):
        assert topic in names


def test_relay_subscription_filter_matches_the_design() -> None:
    topology = load_topology()
    # Its own run events, and every alert frame (DESIGN §3.8, §11).
    assert topology.relay_filter("r-1") == (
        'attributes.relay = "r-1" OR attributes.kind = "notification"'
    )
    assert topology.relay_subscription_name("r-1").startswith("apex-events-relay-")


def test_a_relay_subscription_gets_its_own_events_and_every_alert_frame(
    project_id: str, publisher: PublisherClient, subscriber: SubscriberClient
) -> None:
    topology = load_topology()
    topic = publisher.topic_path(project_id, "apex-events")
    publisher.create_topic(name=topic)
    sub = subscriber.subscription_path(project_id, topology.relay_subscription_name("r-1"))
    subscriber.create_subscription(
        request={"name": sub, "topic": topic, "filter": topology.relay_filter("r-1")}
    )
    for data, attributes in (
        (b"mine", {"kind": "run_event", "relay": "r-1", "run_id": "a"}),
        (b"theirs", {"kind": "run_event", "relay": "r-2", "run_id": "b"}),
        (b"alert", {"kind": "notification", "workspace_id": "w"}),
    ):
        publisher.publish(topic, data, **attributes).result(timeout=10)
    got: list[bytes] = []
    for _ in range(10):
        response = subscriber.pull(subscription=sub, max_messages=10, timeout=2)
        got += [m.message.data for m in response.received_messages]
        if response.received_messages:
            subscriber.acknowledge(
                subscription=sub, ack_ids=[m.ack_id for m in response.received_messages]
            )
        if len(got) >= 2:
            break
    assert sorted(got) == [b"alert", b"mine"]


def test_a_work_queue_on_an_undeclared_topic_is_refused() -> None:
    raw = load_topology().model_dump()
    raw["work_queues"] = [
        *raw["work_queues"],
        {"topic": "apex-nowhere", "subscription": "apex-nowhere-worker", "push_to": "x_worker"},
    ]
    with pytest.raises(ValidationError, match="apex-nowhere"):
        Topology.model_validate(raw)


def test_apply_creates_every_resource_with_its_policies_and_is_rerunnable(
    project_id: str,
    publisher: PublisherClient,
    subscriber: SubscriberClient,
) -> None:
    topology = load_topology()
    urls = {w: f"http://127.0.0.1:9/{w}" for w in topology.workers()}
    created = apply_topology(topology, project_id, urls, publisher, subscriber)
    assert len(created) == len(topology.topic_names()) + len(topology.subscriptions())

    topics = {
        t.name.rsplit("/", 1)[1] for t in publisher.list_topics(project=f"projects/{project_id}")
    }
    assert topics == set(topology.topic_names())
    for sub in topology.subscriptions():
        got = subscriber.get_subscription(
            subscription=subscriber.subscription_path(project_id, sub.name)
        )
        assert got.topic == publisher.topic_path(project_id, sub.topic)
        assert got.ack_deadline_seconds == sub.ack_deadline_seconds
        if sub.push_to:
            assert got.push_config.push_endpoint == urls[sub.push_to]
        else:
            assert not got.push_config.push_endpoint
        if sub.dead_letter_topic:
            assert got.dead_letter_policy.dead_letter_topic == publisher.topic_path(
                project_id, sub.dead_letter_topic
            )
            assert got.dead_letter_policy.max_delivery_attempts == 5

    # A second run (e.g. `make dev` against kept emulators) creates nothing new and
    # re-points the push subscriptions at the workers' new addresses.
    moved = {w: f"http://127.0.0.1:10/{w}" for w in topology.workers()}
    assert apply_topology(topology, project_id, moved, publisher, subscriber) == []
    got = subscriber.get_subscription(
        subscription=subscriber.subscription_path(project_id, "apex-triage-worker")
    )
    assert got.push_config.push_endpoint == moved["triage_worker"]
