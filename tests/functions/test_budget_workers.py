"""The budget tick and webhook delivery driven message by message through the worker
functions in-process, as push would (DESIGN §11): budgets made through the ``workspaces``
function, usage applied through the usage store, messages captured on the topology's topics,
webhooks received on real loopback sockets (under the local-stack setting).

- the tick fans out one check per workspace with budgets;
- thresholds crossed by actual spend and by forecast fire once per budget, month and
  threshold: duplicate deliveries and concurrent duplicate checks publish nothing more;
- yesterday's anomaly fires once, to the webhooks of the budgets that asked for anomalies;
- delivery: signed body per §11, each delivery once; a failing receiver is retried by
  Pub/Sub (an error status), then the dead letter records it undelivered; a redirect is
  not followed; a webhook removed meanwhile is skipped.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from google.cloud import firestore

from shared.budgets.rules import Month, budget_alert, crossings, group_totals, standing
from shared.models.budgets import (
    BudgetTick,
    Delivery,
    NotificationDoc,
    NotificationFrame,
    NotifyRequested,
)
from shared.models.usage import UsageRecord, parse_usage_record
from shared.store.budgets import FirestoreBudgetStore
from shared.store.usage import FirestoreUsageStore
from tests.support.functions import Captured, User, envelope
from tests.support.usage import cost_nano
from tests.support.webhooks import Receiver, receiver

Fn = Callable[[str], FlaskClient]
AT = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@dataclass
class Message:
    """What ``envelope`` needs of a message: a hand-made one, as a publisher would send."""

    data: bytes
    attributes: dict[str, str]
    message_id: str = field(default_factory=lambda: uuid.uuid4().hex)


def tick_message(workspace_id: str | None = None, at: datetime | None = None) -> Message:
    tick = BudgetTick(workspace_id=workspace_id, at=at)
    return Message(tick.model_dump_json().encode(), tick.attributes())


@pytest.fixture(autouse=True)
def loopback_webhooks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APEX_WEBHOOKS_ALLOW_LOOPBACK", "true")


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with receiver() as made:
        yield made


@pytest.fixture
def store(firestore_client: firestore.Client) -> FirestoreBudgetStore:
    return FirestoreBudgetStore(firestore_client)


def push(function: Fn, worker: str, message: Any, attempt: int = 1) -> int:
    response = function(worker).post("/", json=envelope(message, attempt))
    return response.status_code


def make_budget(function: Fn, user: User, body: dict[str, Any]) -> dict[str, Any]:
    response = function("workspaces").post(
        f"/{user.workspace}/budgets", json=body, headers=user.headers
    )
    assert response.status_code == 201, response.get_json()
    made: dict[str, Any] = response.get_json()
    return made


def usage(ts: datetime, n: int, rid: str) -> UsageRecord:
    return parse_usage_record(
        {
            "id": f"{rid}-{n}",
            "model": "gpt-4o",
            "provider": "openai",
            "input_tokens": 10_000,
            "output_tokens": 1_000,
            "ts": ts.isoformat(),
            "feature": "summarize",
        },
        now=datetime.now(UTC),
    )


def apply(db: firestore.Client, ws: str, records: list[UsageRecord]) -> int:
    FirestoreUsageStore(db).apply(ws, records)
    return sum(cost_nano(r) for r in records)


def ids(messages: list[Any]) -> list[str]:
    return sorted(json.loads(m.data)["notification_id"] for m in messages)


def tick(function: Fn, ws: str | None = None, at: datetime | None = None) -> None:
    """A new tick message (for ``ws``, judging ``at``) pushed to ``budget_worker``: acked."""
    assert push(function, "budget_worker", tick_message(ws, at)) == 204


def stored(store: FirestoreBudgetStore, ws: str, notification_id: str) -> NotificationDoc:
    doc = store.notification(ws, notification_id)
    assert doc is not None
    return doc


# --- the tick ------------------------------------------------------------------------------------


def test_the_tick_fans_out_to_every_workspace_with_budgets(
    function: Fn, topics: dict[str, Captured], new_user: Callable[[], User]
) -> None:
    a, b, gone = new_user(), new_user(), new_user()
    make_budget(function, a, {"name": "a", "monthly_usd": 10})
    make_budget(function, b, {"name": "b", "monthly_usd": 10})
    made = make_budget(function, gone, {"name": "c", "monthly_usd": 10})
    deleted = function("workspaces").delete(
        f"/{gone.workspace}/budgets/{made['budget_id']}", headers=gone.headers
    )
    assert deleted.status_code == 204
    tick(function)
    got = topics["apex-budget-tick"].pull(2)
    ticks = [BudgetTick.model_validate_json(m.data) for m in got]
    assert sorted(t.workspace_id or "" for t in ticks) == sorted([a.workspace, b.workspace])
    # Each judges the moment the scheduler's tick was published (the envelope's publishTime).
    assert {t.at for t in ticks} == {datetime(2026, 11, 25, tzinfo=UTC)}
    assert all(m.attributes["kind"] == "budget_tick" for m in got)
    assert topics["apex-budget-tick"].empty()


def test_thresholds_crossed_fire_once_and_are_delivered_signed_once(
    function: Fn,
    topics: dict[str, Captured],
    user: User,
    hook: Receiver,
    store: FirestoreBudgetStore,
    firestore_client: firestore.Client,
) -> None:
    ws = user.workspace
    spent = apply(firestore_client, ws, [usage(AT - timedelta(hours=2), i, "t") for i in range(4)])
    monthly = round(spent / 1e9 / 0.85, 2)  # 85% spent: crosses 50% and 80%, not 100%
    made = make_budget(
        function, user, {"name": "Prod", "monthly_usd": monthly, "webhook_url": hook.url("/in")}
    )
    secret = made["webhook_secret"]
    tick = tick_message(ws, AT)
    assert push(function, "budget_worker", tick) == 204
    notify = topics["apex-notify"].pull(2)
    frames = topics["apex-events"].pull(2)
    month = f"b_{made['budget_id']}_202611"
    assert ids(notify) == [f"{month}_5000", f"{month}_8000"]
    assert all(m.attributes["kind"] == "notify" for m in notify)
    # The relays' frames: every instance gets them (attribute kind), for the workspace's sockets.
    for frame in frames:
        assert frame.attributes == {"kind": "notification", "workspace_id": ws}
        parsed = NotificationFrame.model_validate_json(frame.data)
        assert parsed.notification.crossed_by == "actual"
        assert json.loads(parsed.text())["type"] == "notification"
    docs = {d.notification_id: d for d in store.notifications(ws, 10)}
    assert sorted(docs) == [f"{month}_5000", f"{month}_8000"]
    assert all(d.published for d in docs.values())

    # The same tick again, and four copies at once: nothing more is published or stored.
    assert push(function, "budget_worker", tick, attempt=2) == 204
    with ThreadPoolExecutor(4) as pool:
        assert (
            list(pool.map(lambda _: push(function, "budget_worker", tick), range(4))) == [204] * 4
        )
    later = tick_message(ws, AT + timedelta(minutes=5))
    assert push(function, "budget_worker", later) == 204
    assert topics["apex-notify"].empty()
    assert topics["apex-events"].empty()
    assert len(store.notifications(ws, 10)) == 2

    # Delivery: each once, signed over the exact bytes, the body as §11 says.
    for message in notify:
        assert push(function, "notify_worker", message) == 204
        assert push(function, "notify_worker", message, attempt=2) == 204  # a redelivery
    received = hook.wait_for(2, 5)
    assert len(received) == 2
    bodies = sorted((json.loads(r.body) for r in received), key=lambda b: b["threshold"])
    for got in received:
        assert got.path == "/in"
        assert got.signed_by(secret)
        assert got.headers["content-type"] == "application/json"
    first = bodies[0]
    assert set(first) == {
        "text", "kind", "notification_id", "workspace_id", "budget_id", "budget_name",
        "threshold", "crossed_by", "spend_usd", "forecast_usd", "monthly_usd", "period", "ts",
    }  # fmt: skip
    assert (first["kind"], first["workspace_id"], first["budget_id"]) == (
        "budget", ws, made["budget_id"]
    )  # fmt: skip
    assert [b["threshold"] for b in bodies] == [0.5, 0.8]
    assert first["spend_usd"] == round(spent / 1e9, 2)
    assert first["monthly_usd"] == monthly
    assert first["period"] == {"start": "2026-11-01", "end": "2026-11-30"}
    assert first["crossed_by"] == "actual"
    assert first["text"].startswith("Budget “Prod” crossed 50% of $")
    assert "\n" not in first["text"]
    for doc in store.notifications(ws, 10):
        assert doc.deliveries[made["budget_id"]].status == "delivered"
        assert doc.deliveries[made["budget_id"]].host == "127.0.0.1"


def test_a_threshold_the_forecast_crosses_fires_by_forecast(
    function: Fn, topics: dict[str, Captured], user: User, firestore_client: firestore.Client
) -> None:
    ws = user.workspace
    week = [usage(AT - timedelta(days=d), d, "f") for d in range(1, 8)]  # Nov 13..19
    spent = apply(firestore_client, ws, week)
    daily = spent / 7
    # Spent 7 days' worth; forecast 7 + 10.5 more days = 17.5 days' worth (at noon on the 20th).
    monthly = round(20 * daily / 1e9, 2)
    made = make_budget(function, user, {"name": "Fc", "monthly_usd": monthly})
    tick(function, ws, AT)
    frames = topics["apex-events"].pull(2)
    alerts = sorted(
        (NotificationFrame.model_validate_json(f.data).notification for f in frames),
        key=lambda n: n.threshold or 0,
    )
    assert [(n.threshold, n.crossed_by) for n in alerts] == [(0.5, "forecast"), (0.8, "forecast")]
    assert alerts[0].spend_usd == round(spent / 1e9, 2)
    assert alerts[0].forecast_usd == round((spent + daily * 10.5) / 1e9, 2)
    assert "forecast to cross 50%" in alerts[0].text
    assert alerts[0].budget_id == made["budget_id"]
    assert topics["apex-notify"].empty()  # no webhook: stored and shown, nothing to deliver


def test_yesterdays_anomaly_fires_once_to_the_budgets_that_asked(
    function: Fn,
    topics: dict[str, Captured],
    user: User,
    hook: Receiver,
    store: FirestoreBudgetStore,
    firestore_client: firestore.Client,
) -> None:
    ws = user.workspace
    yesterday = AT - timedelta(days=1)
    records = [usage(AT - timedelta(days=d), d, "base") for d in range(2, 9)]  # a week of 1 call
    records += [usage(yesterday, i, "spike") for i in range(10)]  # then ten calls yesterday
    apply(firestore_client, ws, records)
    big = {"monthly_usd": 1e6}
    asked = make_budget(
        function, user, {**big, "name": "a", "anomalies": True, "webhook_url": hook.url("/a")}
    )
    same_url = make_budget(
        function, user, {**big, "name": "b", "anomalies": True, "webhook_url": hook.url("/a")}
    )
    make_budget(function, user, {**big, "name": "c", "webhook_url": hook.url("/c")})
    for _ in range(2):
        tick(function, ws, AT)
    (request,) = topics["apex-notify"].pull(1)
    assert topics["apex-notify"].empty()
    message = NotifyRequested.model_validate_json(request.data)
    assert message.notification_id == "a_20261119"
    assert message.budget_id in (asked["budget_id"], same_url["budget_id"])
    doc = stored(store, ws, "a_20261119")
    assert doc.kind == "anomaly"
    assert doc.detail["day"] == "2026-11-19"
    assert doc.detail["ratio"] == 10.0
    assert doc.detail["driver"]["model"] == "gpt-4o"
    assert doc.text.startswith("Spend anomaly on 2026-11-19: $")
    assert push(function, "notify_worker", request) == 204
    (got,) = hook.wait_for(1, 5)
    assert got.path == "/a"
    body = json.loads(got.body)
    assert (body["kind"], body["notification_id"]) == ("anomaly", "a_20261119")
    assert "budget_id" not in body
    assert body["period"] == {"start": "2026-11-19", "end": "2026-11-19"}


def over_half(
    function: Fn, user: User, db: firestore.Client, webhook_url: str | None = None
) -> dict[str, Any]:
    """One call an hour before ``AT`` and a budget it is 60% of, with one threshold (50%):
    the tick at ``AT`` crosses it by actual spend. The budget as created."""
    spent = apply(db, user.workspace, [usage(AT - timedelta(hours=1), 0, "one")])
    body = {"name": "one", "monthly_usd": round(spent / 1e9 / 0.6, 2), "thresholds": [0.5]}
    if webhook_url is not None:
        body["webhook_url"] = webhook_url
    return make_budget(function, user, body)


@pytest.fixture
def budget_over_half(
    function: Fn, user: User, firestore_client: firestore.Client
) -> dict[str, Any]:
    return over_half(function, user, firestore_client)


def the_alert(
    store: FirestoreBudgetStore, db: firestore.Client, ws: str, budget_id: str, at: datetime
) -> NotificationDoc:
    """The one alert a budget of one threshold calls for at ``AT``, as a check makes it."""
    budget = store.budget(ws, budget_id)
    assert budget is not None
    month = Month(AT)
    rows = FirestoreUsageStore(db).daily(ws, *month.read_range())
    now = standing(budget, group_totals(rows, month), month)
    (crossing,) = crossings(budget, now)
    return budget_alert(budget, month, crossing, now, at)


def test_an_alert_a_dead_check_left_unpublished_is_published_by_a_later_tick(
    function: Fn,
    topics: dict[str, Captured],
    user: User,
    store: FirestoreBudgetStore,
    firestore_client: firestore.Client,
    budget_over_half: dict[str, Any],
) -> None:
    ws, made = user.workspace, budget_over_half
    nid = f"b_{made['budget_id']}_202611_5000"
    # What a check that died after creating the alert leaves: stored, not published.
    left = the_alert(store, firestore_client, ws, made["budget_id"], AT - timedelta(minutes=5))
    assert left.notification_id == nid
    assert store.create_notification(left)
    tick(function, ws, AT)
    (frame,) = topics["apex-events"].pull(1)
    assert NotificationFrame.model_validate_json(frame.data).notification.notification_id == nid
    assert stored(store, ws, nid).published
    assert nid in store.fired(ws, "202611")
    tick(function, ws, AT + timedelta(minutes=1))
    assert topics["apex-events"].empty()


def test_a_check_racing_the_one_that_created_the_alert_does_not_publish_it_again(
    function: Fn,
    topics: dict[str, Captured],
    user: User,
    store: FirestoreBudgetStore,
    firestore_client: firestore.Client,
    budget_over_half: dict[str, Any],
) -> None:
    ws, made = user.workspace, budget_over_half
    # Created a moment ago by another check, which is about to publish it.
    assert store.create_notification(the_alert(store, firestore_client, ws, made["budget_id"], AT))
    tick(function, ws, AT + timedelta(seconds=30))
    assert topics["apex-events"].empty()
    assert store.fired(ws, "202611") == set()


# --- delivery failures ------------------------------------------------------------------------


@dataclass(frozen=True)
class Alert:
    """A budget's one alert after the tick: its apex-notify message, not yet delivered."""

    workspace: str
    budget: dict[str, Any]
    request: Any
    notification_id: str

    def delivery(self, store: FirestoreBudgetStore) -> Delivery:
        """Its delivery to the budget's webhook, as stored."""
        doc = stored(store, self.workspace, self.notification_id)
        return doc.deliveries[self.budget["budget_id"]]


@pytest.fixture
def alert_to_hook(
    function: Fn,
    topics: dict[str, Captured],
    user: User,
    hook: Receiver,
    firestore_client: firestore.Client,
) -> Alert:
    """``budget_over_half`` with its webhook on ``hook``, ticked at ``AT``."""
    made = over_half(function, user, firestore_client, hook.url("/hook"))
    tick(function, user.workspace, AT)
    (request,) = topics["apex-notify"].pull(1)
    nid = NotifyRequested.model_validate_json(request.data).notification_id
    return Alert(user.workspace, made, request, nid)


def test_a_failing_receiver_is_retried_then_recorded_undelivered(
    function: Fn, hook: Receiver, store: FirestoreBudgetStore, alert_to_hook: Alert
) -> None:
    made, request = alert_to_hook.budget, alert_to_hook.request
    hook.behaviour.status = 500
    for attempt in range(1, 6):
        # An error status: Pub/Sub redelivers, and after 5 attempts dead-letters.
        assert push(function, "notify_worker", request, attempt) == 503
        state = alert_to_hook.delivery(store)
        assert (state.status, state.attempts) == ("pending", attempt)
        assert state.last_error == "127.0.0.1 answered 500"
    received = hook.wait_for(5, 5)
    assert len(received) == 5
    assert len({r.body for r in received}) == 1  # the same bytes every time
    assert all(r.signed_by(made["webhook_secret"]) for r in received)
    assert [r.headers["x-apex-delivery-attempt"] for r in received] == ["1", "2", "3", "4", "5"]
    assert push(function, "deadletter_worker", request) == 204
    final = alert_to_hook.delivery(store)
    assert (final.status, final.attempts, final.last_error) == (
        "undelivered", 5, "127.0.0.1 answered 500"
    )  # fmt: skip
    # A late redelivery changes nothing and sends nothing.
    assert push(function, "notify_worker", request, 6) == 204
    assert len(hook.wait_for(6, 0.5)) == 5


def test_a_redirect_is_refused_delivery(
    function: Fn, hook: Receiver, store: FirestoreBudgetStore, alert_to_hook: Alert
) -> None:
    with receiver() as elsewhere:
        hook.behaviour.status = 307
        hook.behaviour.headers = {"Location": elsewhere.url("/stolen")}
        assert push(function, "notify_worker", alert_to_hook.request) == 503
        assert elsewhere.wait_for(1, 1.0) == []
    assert "redirects are not followed" in (alert_to_hook.delivery(store).last_error or "")


def test_a_webhook_removed_before_delivery_is_skipped(
    function: Fn, user: User, hook: Receiver, store: FirestoreBudgetStore, alert_to_hook: Alert
) -> None:
    removed = function("workspaces").patch(
        f"/{user.workspace}/budgets/{alert_to_hook.budget['budget_id']}",
        json={"webhook_url": None},
        headers=user.headers,
    )
    assert removed.status_code == 200
    assert push(function, "notify_worker", alert_to_hook.request) == 204
    assert hook.wait_for(1, 0.5) == []
    assert alert_to_hook.delivery(store).status == "skipped"


def test_without_the_local_setting_a_loopback_webhook_is_refused_at_creation(
    function: Fn, user: User, hook: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("APEX_WEBHOOKS_ALLOW_LOOPBACK")
    response = function("workspaces").post(
        f"/{user.workspace}/budgets",
        json={"name": "x", "monthly_usd": 1, "webhook_url": hook.url()},
        headers=user.headers,
    )
    assert response.status_code == 422
    assert response.get_json()["error"]["message"].startswith("webhook_url:")


def test_alerts_at_the_workspaces_own_prices_say_so(
    function: Fn,
    topics: dict[str, Captured],
    new_user: Callable[[], User],
    hook: Receiver,
    store: FirestoreBudgetStore,
    firestore_client: firestore.Client,
) -> None:
    """docs/prices.md: a budget's spend and its alerts follow the workspace's prices, and the
    alert's text (stored, sent, pushed to the pages) says "at your prices"; at list prices
    it does not."""
    texts: dict[str, list[str]] = {}
    for name, discount in (("yours", 30), ("list", None)):
        user = new_user()
        ws = user.workspace
        if discount is not None:
            put = function("workspaces").put(
                f"/{ws}/prices",
                json=[{"provider": "openai", "model": "gpt-4o", "discount_pct": discount}],
                headers=user.headers,
            )
            assert put.status_code == 200, put.get_json()
        yesterday = AT - timedelta(days=1)
        records = [usage(AT - timedelta(days=d), d, "base") for d in range(2, 9)]
        records += [usage(yesterday, i, "spike") for i in range(10)]
        listed = apply(firestore_client, ws, records)
        spent = listed * (100 - (discount or 0)) / 100 / 1e9
        monthly = round(spent / 0.6, 2)  # 60% spent: crosses 50%
        made = make_budget(
            function,
            user,
            {
                "name": name,
                "monthly_usd": monthly,
                "thresholds": [0.5],
                "anomalies": True,
                "webhook_url": hook.url("/"),
            },
        )
        tick(function, ws, AT)
        requests = topics["apex-notify"].pull(2)
        topics["apex-events"].pull(2)
        budget_id = f"b_{made['budget_id']}_202611_5000"
        assert ids(requests) == sorted(["a_20261119", budget_id])
        alert, anomaly = stored(store, ws, budget_id), stored(store, ws, "a_20261119")
        assert alert.spend_usd == round(spent, 2)
        for message in requests:
            assert push(function, "notify_worker", message) == 204
        bodies = [json.loads(r.body) for r in hook.wait_for(2 * (1 + len(texts)), 5)]
        sent = sorted(b["text"] for b in bodies if b["workspace_id"] == ws)
        assert sent == sorted([alert.text, anomaly.text])
        texts[name] = sent
    for text in texts["yours"]:
        assert text.endswith(" (at your prices)."), text
        assert "\n" not in text
    assert texts["yours"][0].startswith("Budget “yours” crossed 50% of $")
    for text in texts["list"]:
        assert "at your prices" not in text, text
