"""The Pub/Sub topology, loaded from `topology.yaml` (also read by Terraform).

The YAML says what exists in the terms a reader thinks in (work queues with dead letters,
BigQuery exports); `Topology.topic_names()` and `Topology.subscriptions()` expand it into the
concrete resources that both the local stack and Terraform create, and
`Topology.bigquery_subscriptions()` into those only Terraform creates (no BigQuery runs
locally: DESIGN §10).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

TOPOLOGY_FILE = Path(__file__).with_name("topology.yaml")
# The ``kind`` attribute of an alert frame on the relays' topic (shared/budgets/tick.py).
NOTIFICATION_KIND = "notification"

_NAME = r"^[a-z][a-z0-9-]{2,62}$"
_FUNCTION = r"^[a-z][a-z0-9_]{2,62}$"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RetryPolicy(_Frozen):
    minimum_backoff_seconds: float = Field(ge=0, le=600)
    maximum_backoff_seconds: float = Field(ge=0, le=600)


class Defaults(_Frozen):
    ack_deadline_seconds: int = Field(ge=10, le=600)
    max_delivery_attempts: int = Field(ge=5, le=100)
    retry_policy: RetryPolicy
    dead_letter_retention_seconds: int = Field(ge=600, le=604800)


class TopicDef(_Frozen):
    name: str = Field(pattern=_NAME)
    purpose: str


class WorkQueue(_Frozen):
    topic: str = Field(pattern=_NAME)
    subscription: str = Field(pattern=_NAME)
    push_to: str = Field(pattern=_FUNCTION)
    ack_deadline_seconds: int | None = Field(default=None, ge=10, le=600)


class DeadLetters(_Frozen):
    push_to: str = Field(pattern=_FUNCTION)


class BigQueryExport(_Frozen):
    """A topic whose every message is a row of a BigQuery table (infra/bigquery.tf)."""

    topic: str = Field(pattern=_NAME)
    subscription: str = Field(pattern=_NAME)
    # The table's id in Apex's dataset; its schema is infra/schemas/<table>.json.
    table: str = Field(pattern=r"^[a-z][a-z0-9_]{2,62}$")
    # The TIMESTAMP column whose UTC day partitions the table, and the clustering columns.
    partition_by_day: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")
    cluster_by: tuple[str, ...] = Field(min_length=1, max_length=4)


class RelaySubscriptions(_Frozen):
    topic: str = Field(pattern=_NAME)
    prefix: str = Field(pattern=r"^[a-z][a-z0-9-]{2,40}-$")
    filter_attribute: str
    ack_deadline_seconds: int = Field(ge=10, le=600)
    expiration_ttl_seconds: int = Field(ge=86400)


class Subscription(_Frozen):
    """One concrete subscription, as both the emulator set-up and Terraform create it."""

    name: str
    topic: str
    kind: Literal["push", "pull", "bigquery"]
    push_to: str | None
    ack_deadline_seconds: int
    retry_policy: RetryPolicy
    dead_letter_topic: str | None
    max_delivery_attempts: int | None
    message_retention_seconds: int | None = None
    bigquery_table: str | None = None


class Topology(_Frozen):
    defaults: Defaults
    topics: tuple[TopicDef, ...]
    work_queues: tuple[WorkQueue, ...]
    dead_letters: DeadLetters
    bigquery_exports: tuple[BigQueryExport, ...] = ()
    relay_subscriptions: RelaySubscriptions

    @model_validator(mode="after")
    def _consistent(self) -> Topology:
        declared = {t.name for t in self.topics}
        used = (
            [q.topic for q in self.work_queues]
            + [e.topic for e in self.bigquery_exports]
            + [self.relay_subscriptions.topic]
        )
        if unknown := sorted(set(used) - declared):
            raise ValueError(f"topics used but not declared: {unknown}")
        names = [s.name for s in self.subscriptions() + self.bigquery_subscriptions()]
        if dupes := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"subscription names used twice: {dupes}")
        return self

    @staticmethod
    def dead_letter_topic(topic: str) -> str:
        return f"{topic}-dlq"

    def topic_names(self) -> list[str]:
        """Every topic: the declared ones, then one dead-letter topic per work queue and per
        BigQuery export."""
        dead_lettered = [q.topic for q in self.work_queues] + [
            e.topic for e in self.bigquery_exports
        ]
        return [t.name for t in self.topics] + [self.dead_letter_topic(t) for t in dead_lettered]

    def subscriptions(self) -> list[Subscription]:
        d = self.defaults
        subs: list[Subscription] = []
        for q in self.work_queues:
            dlq = self.dead_letter_topic(q.topic)
            subs.append(
                Subscription(
                    name=q.subscription,
                    topic=q.topic,
                    kind="push",
                    push_to=q.push_to,
                    ack_deadline_seconds=q.ack_deadline_seconds or d.ack_deadline_seconds,
                    retry_policy=d.retry_policy,
                    dead_letter_topic=dlq,
                    max_delivery_attempts=d.max_delivery_attempts,
                )
            )
            # The dead-letter worker marks the run failed / records the lost batch...
            subs.append(
                Subscription(
                    name=f"{dlq}-worker",
                    topic=dlq,
                    kind="push",
                    push_to=self.dead_letters.push_to,
                    ack_deadline_seconds=d.ack_deadline_seconds,
                    retry_policy=d.retry_policy,
                    dead_letter_topic=None,
                    max_delivery_attempts=None,
                )
            )
            # ...and this pull copy keeps the dead letters for an operator to inspect.
            subs.append(self._keep(dlq))
        # A row BigQuery refused (after max_delivery_attempts) is kept for an operator; no
        # worker: the record is in the rollups already, only its raw row is missing.
        subs.extend(self._keep(self.dead_letter_topic(e.topic)) for e in self.bigquery_exports)
        return subs

    def _keep(self, dlq: str) -> Subscription:
        d = self.defaults
        return Subscription(
            name=f"{dlq}-keep",
            topic=dlq,
            kind="pull",
            push_to=None,
            ack_deadline_seconds=d.ack_deadline_seconds,
            retry_policy=d.retry_policy,
            dead_letter_topic=None,
            max_delivery_attempts=None,
            message_retention_seconds=d.dead_letter_retention_seconds,
        )

    def bigquery_subscriptions(self) -> list[Subscription]:
        """The BigQuery subscriptions: made by Terraform only (no BigQuery runs locally)."""
        d = self.defaults
        return [
            Subscription(
                name=e.subscription,
                topic=e.topic,
                kind="bigquery",
                push_to=None,
                ack_deadline_seconds=d.ack_deadline_seconds,
                retry_policy=d.retry_policy,
                dead_letter_topic=self.dead_letter_topic(e.topic),
                max_delivery_attempts=d.max_delivery_attempts,
                bigquery_table=e.table,
            )
            for e in self.bigquery_exports
        ]

    def workers(self) -> list[str]:
        """Every private worker function a push subscription feeds, in a stable order."""
        return sorted({s.push_to for s in self.subscriptions() if s.push_to is not None})

    def relay_subscription_name(self, relay_id: str) -> str:
        return f"{self.relay_subscriptions.prefix}{relay_id}"

    def relay_filter(self, relay_id: str) -> str:
        """This instance's run events, and every alert frame (each instance sends one to its
        own sockets of the alert's workspace: DESIGN §3.8, §11)."""
        return (
            f'attributes.{self.relay_subscriptions.filter_attribute} = "{relay_id}" '
            f'OR attributes.kind = "{NOTIFICATION_KIND}"'
        )


@cache
def load_topology(path: Path = TOPOLOGY_FILE) -> Topology:
    """Parse and validate the topology; a malformed file fails loudly at start-up."""
    return Topology.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
