"""Creates the topics and subscriptions of `shared/topology.yaml` on a Pub/Sub emulator.

Terraform creates the same resources from the same file in GCP (infra/pubsub.tf); here the
push endpoints are the local worker URLs.
"""

from __future__ import annotations

from collections.abc import Mapping

from google.api_core.exceptions import AlreadyExists
from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient
from google.protobuf import duration_pb2
from google.pubsub_v1 import types

from shared.topology import Subscription, Topology


def _duration(seconds: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromNanoseconds(int(seconds * 1e9))
    return d


def subscription_request(
    project: str, sub: Subscription, worker_urls: Mapping[str, str]
) -> types.Subscription:
    publisher = PublisherClient
    request = types.Subscription(
        name=SubscriberClient.subscription_path(project, sub.name),
        topic=publisher.topic_path(project, sub.topic),
        ack_deadline_seconds=sub.ack_deadline_seconds,
        retry_policy=types.RetryPolicy(
            minimum_backoff=_duration(sub.retry_policy.minimum_backoff_seconds),
            maximum_backoff=_duration(sub.retry_policy.maximum_backoff_seconds),
        ),
    )
    if sub.push_to is not None:
        request.push_config = types.PushConfig(push_endpoint=worker_urls[sub.push_to])
    if sub.dead_letter_topic is not None:
        request.dead_letter_policy = types.DeadLetterPolicy(
            dead_letter_topic=publisher.topic_path(project, sub.dead_letter_topic),
            max_delivery_attempts=sub.max_delivery_attempts,
        )
    if sub.message_retention_seconds is not None:
        request.message_retention_duration = _duration(sub.message_retention_seconds)
    return request


def apply_topology(
    topology: Topology,
    project: str,
    worker_urls: Mapping[str, str],
    publisher: PublisherClient,
    subscriber: SubscriberClient,
) -> list[str]:
    """Create what is missing and re-point existing push subscriptions (re-runnable)."""
    created: list[str] = []
    for topic in topology.topic_names():
        try:
            publisher.create_topic(name=publisher.topic_path(project, topic))
            created.append(f"topic {topic}")
        except AlreadyExists:
            continue
    for sub in topology.subscriptions():
        request = subscription_request(project, sub, worker_urls)
        try:
            subscriber.create_subscription(request=request)
            created.append(f"subscription {sub.name}")
        except AlreadyExists:
            # Emulators kept from an earlier run: the workers may now listen elsewhere.
            if sub.push_to is not None:
                subscriber.modify_push_config(
                    subscription=request.name, push_config=request.push_config
                )
    return created
