"""Budgets and alerts end to end on the local stack as ``make dev`` runs it (DESIGN §11,
issue 16's acceptance): every function its own process, push subscriptions from the shared
topology, webhooks to receivers on real loopback sockets (``make dev`` allows loopback).

- Spend ingested through ``usage_ingest`` crosses 50% and 80% of a budget: at the next tick
  (published as the scheduler publishes it) a signed webhook arrives for each threshold
  exactly once, a socket of the workspace gets both alert frames, a repeated tick sends
  nothing more, and ``GET /{ws}/notifications`` lists them, delivered and unread.
- A receiver answering 500 gets Pub/Sub's retries (5 attempts, the same signed bytes), then
  the dead letter is recorded: the delivery is listed as undelivered with the reason.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import httpx
import pytest
from google.cloud import firestore
from google.cloud.pubsub_v1 import PublisherClient

from devstack.procs import ManagedProcess
from devstack.stack import RunningStack
from devstack.ticker import tick_message
from shared.budgets.tick import TICK_TOPIC
from shared.models.usage import parse_usage_record
from shared.store.usage import FirestoreUsageStore
from tests.support.stack import Caller
from tests.support.usage import cost_nano
from tests.support.webhooks import Receiver, receiver
from tests.support.wsclient import chat, ws_url

RECORDS: Final = 6
# A path like a Slack webhook's, whose last part is the credential.
HOOK_PATH: Final = "/services/T0/B0/sekret-path-0f3a"
# Long enough for a tick's fan-out, check and publish on an idle stack (measured: < 2 s).
QUIET_S: Final = 10.0


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with receiver() as made:
        yield made


def workspaces_call(
    stack: RunningStack, caller: Caller, method: str, path: str, body: Any = None
) -> httpx.Response:
    return httpx.request(
        method,
        stack.functions["workspaces"].rstrip("/") + path,
        json=body,
        headers={"Authorization": f"Bearer {caller.user.id_token}"},
        timeout=30,
    )


def spend_today(caller: Caller, db: firestore.Client, tag: str) -> int:
    """Ingest ``RECORDS`` calls of the last minutes through ``usage_ingest``; their cost."""
    now = datetime.now(UTC)
    raw = [
        {
            "id": f"{tag}-{i}",
            "model": "gpt-4o",
            "provider": "openai",
            "input_tokens": 20_000,
            "output_tokens": 2_000,
            # Today (UTC), however close to midnight the test runs.
            "ts": max(now - timedelta(minutes=i + 1), now.replace(hour=0, minute=0)).isoformat(),
            "feature": "summarize",
        }
        for i in range(RECORDS)
    ]
    response = caller.post("usage_ingest", raw)
    assert response.status_code == 202, response.text
    store = FirestoreUsageStore(db)
    deadline = time.monotonic() + 60
    while store.catalogue(caller.workspace).records < RECORDS:
        assert time.monotonic() < deadline, "the aggregator did not apply the records"
        time.sleep(0.25)
    return sum(cost_nano(parse_usage_record(r, now=now)) for r in raw)


def tick(stack: RunningStack) -> None:
    """What Cloud Scheduler (and the devstack's ticker) publish."""
    publisher = PublisherClient()
    data, attributes = tick_message()
    publisher.publish(publisher.topic_path(stack.project, TICK_TOPIC), data, **attributes).result(
        timeout=30
    )


def notifications(stack: RunningStack, caller: Caller) -> dict[str, Any]:
    response = workspaces_call(stack, caller, "GET", f"/{caller.workspace}/notifications")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_thresholds_crossed_are_delivered_signed_once_and_listed(
    stack: RunningStack,
    new_caller: Callable[[], Caller],
    stack_db: firestore.Client,
    hook: Receiver,
) -> None:
    caller = new_caller()
    ws = caller.workspace
    spent = spend_today(caller, stack_db, "e2e")
    monthly = round(spent / 1e9 / 0.85, 2)  # 85% spent: 50% and 80% crossed, 100% not
    made = workspaces_call(
        stack,
        caller,
        "POST",
        f"/{ws}/budgets",
        {"name": "Prod", "monthly_usd": monthly, "webhook_url": hook.url(HOOK_PATH)},
    )
    assert made.status_code == 201, made.text
    budget = made.json()
    secret = budget["webhook_secret"]
    assert budget["spend_usd"] == round(spent / 1e9, 2)

    with chat(ws_url(stack.relay)) as socket:
        socket.auth(caller.user.id_token)
        tick(stack)
        frames = [socket.expect("notification", timeout=60) for _ in range(2)]
        received = hook.wait_for(2, 60)
    assert len(received) == 2
    assert sorted(f["notification"]["threshold"] for f in frames) == [0.5, 0.8]

    bodies = []
    for got in received:
        assert got.path == HOOK_PATH
        assert got.signed_by(secret), "the signature does not verify"
        bodies.append(json.loads(got.body))
    assert sorted(b["threshold"] for b in bodies) == [0.5, 0.8]
    for body in bodies:
        assert (body["kind"], body["workspace_id"], body["budget_id"]) == (
            "budget", ws, budget["budget_id"]
        )  # fmt: skip
        assert body["crossed_by"] == "actual"
        assert body["spend_usd"] == round(spent / 1e9, 2)
        assert body["monthly_usd"] == monthly
        assert body["text"].startswith("Budget “Prod” crossed ")

    # A repeated tick (and the stack's own ticks meanwhile) sends nothing more.
    tick(stack)
    time.sleep(QUIET_S)
    assert len(hook.wait_for(3, 0.5)) == 2

    listed = notifications(stack, caller)
    assert listed["unread"] == 2
    by_threshold = {n["threshold"]: n for n in listed["notifications"]}
    assert sorted(by_threshold) == [0.5, 0.8]
    for n in by_threshold.values():
        assert n["deliveries"][budget["budget_id"]]["status"] == "delivered"
        assert n["deliveries"][budget["budget_id"]]["host"] == "127.0.0.1"

    # No process logged the signing secret or the URL's path (a Slack URL is a credential).
    logs = [p.log_path for p in stack.watched if isinstance(p, ManagedProcess)]
    assert any("a webhook was delivered" in p.read_text(errors="replace") for p in logs)
    for path in logs:
        text = path.read_text(errors="replace")
        assert secret not in text, f"the webhook secret in {path.name}"
        assert "sekret-path" not in text, f"the webhook URL's path in {path.name}"


def test_a_failing_receiver_is_retried_then_recorded_undelivered(
    stack: RunningStack,
    new_caller: Callable[[], Caller],
    stack_db: firestore.Client,
    hook: Receiver,
) -> None:
    owner = new_caller()
    team = workspaces_call(stack, owner, "POST", "/", {"name": f"Fail {uuid.uuid4().hex[:6]}"})
    assert team.status_code == 201, team.text
    caller = Caller(owner.user, team.json()["workspace_id"], owner.functions)
    spent = spend_today(caller, stack_db, "fail")
    hook.behaviour.status = 500
    made = workspaces_call(
        stack,
        caller,
        "POST",
        f"/{caller.workspace}/budgets",
        {
            "name": "Flaky",
            "monthly_usd": round(spent / 1e9 / 0.6, 2),
            "thresholds": [0.5],
            "webhook_url": hook.url("/down"),
        },
    )
    assert made.status_code == 201, made.text
    budget = made.json()
    tick(stack)

    # Pub/Sub's backoff (1, 2, 4, 8 s) between the 5 attempts, then the dead letter.
    deadline = time.monotonic() + 120
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        listed = notifications(stack, caller)["notifications"]
        if listed:
            state = listed[0]["deliveries"].get(budget["budget_id"], {})
            if state.get("status") == "undelivered":
                break
        time.sleep(1.0)
    assert state.get("status") == "undelivered", state
    assert state["attempts"] == 5
    assert state["last_error"] == "127.0.0.1 answered 500"
    received = hook.wait_for(5, 5)
    assert len(received) == 5
    assert len({r.body for r in received}) == 1
    assert all(r.signed_by(budget["webhook_secret"]) for r in received)
    assert [r.headers["x-apex-delivery-attempt"] for r in received] == ["1", "2", "3", "4", "5"]
