"""The local stack's scheduler (devstack/ticker.py): the budget tick on apex-budget-tick
every APEX_BUDGET_TICK_S seconds, the message Cloud Scheduler's job publishes, and nothing
after it stops."""

from __future__ import annotations

import time
from typing import Any

import pytest
from google.api_core.exceptions import DeadlineExceeded
from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient

from devstack.procs import StackError
from devstack.ticker import DEFAULT_TICK_S, Ticker, tick_interval
from shared.budgets.tick import TICK_TOPIC
from shared.models.budgets import BudgetTick


def _pull_all(subscriber: SubscriberClient, sub: str) -> list[Any]:
    got: list[Any] = []
    while True:
        try:
            response = subscriber.pull(subscription=sub, max_messages=100, timeout=2)
        except DeadlineExceeded:
            return got
        if not response.received_messages:
            return got
        subscriber.acknowledge(
            subscription=sub, ack_ids=[m.ack_id for m in response.received_messages]
        )
        got += [m.message for m in response.received_messages]


def test_the_ticker_publishes_the_schedulers_tick_on_its_interval(
    project_id: str, publisher: PublisherClient, subscriber: SubscriberClient
) -> None:
    topic = publisher.topic_path(project_id, TICK_TOPIC)
    publisher.create_topic(name=topic)
    sub = subscriber.subscription_path(project_id, "ticks")
    subscriber.create_subscription(name=sub, topic=topic)
    ticker = Ticker(publisher, project_id, 0.5)
    ticker.start()
    time.sleep(2.3)
    ticker.stop()
    published = ticker.published
    assert 3 <= published <= 5
    messages = _pull_all(subscriber, sub)
    assert len(messages) == published
    for message in messages:
        tick = BudgetTick.model_validate_json(message.data)
        assert (tick.workspace_id, tick.at) == (None, None)
        assert dict(message.attributes) == {"kind": "budget_tick"}
    time.sleep(1.0)
    assert ticker.published == published
    assert _pull_all(subscriber, sub) == []


def test_the_interval_is_read_from_the_environment() -> None:
    assert tick_interval({}) == DEFAULT_TICK_S == 60
    assert tick_interval({"APEX_BUDGET_TICK_S": "2.5"}) == 2.5
    for bad in ("soon", "0", "-1", "100000"):
        with pytest.raises(StackError, match="APEX_BUDGET_TICK_S"):
            tick_interval({"APEX_BUDGET_TICK_S": bad})
