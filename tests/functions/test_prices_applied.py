"""The workspace's prices in every read, through the real functions (docs/prices.md): costs
re-priced by the entries' effective dates when the book changes (days before ``from``
unchanged, days after at the new prices, to the cent), a private model priced instead of
unknown, and what-if repricing on ``agents_optimization``."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from flask.testing import FlaskClient
from google.cloud import firestore

from shared import pricing
from shared.models.budgets import BudgetTick, NotificationFrame
from shared.models.usage import UsageRecord, usage_record
from shared.store.usage import FirestoreUsageStore
from shared.usage.whatif import CAVEAT
from tests.support.functions import Captured, User, envelope

Fn = Callable[[str], FlaskClient]
D = Decimal
FIRST = date(2026, 10, 1)
DAYS = 10
DISCOUNT_FROM = "2026-10-06"
PERIOD = {"start": "2026-10-01", "end": "2026-10-10"}
PRIVATE = "acme-support-ft-1"


def _records() -> list[UsageRecord]:
    found = []
    for i in range(DAYS):
        at = datetime.combine(FIRST + timedelta(days=i), datetime.min.time(), UTC)
        for k in range(3):
            found.append(
                usage_record(
                    ts=at + timedelta(hours=9, minutes=k),
                    provider="openai",
                    model="gpt-4o",
                    feature="summarize",
                    user=f"u-{k}",
                    input_tokens=20_000 + 37 * i + k,
                    cached_input_tokens=4_000,
                    output_tokens=900 + i,
                )
            )
        found.append(
            usage_record(
                ts=at + timedelta(hours=22),
                provider="openai",
                model="gpt-4o",
                feature="nightly",
                batch=True,
                input_tokens=60_000,
                output_tokens=5_000 + i,
            )
        )
        found.append(
            usage_record(
                ts=at + timedelta(hours=12),
                provider="openai",
                model="gpt-4o-mini",
                feature="classify",
                input_tokens=3_000,
                output_tokens=20,
            )
        )
        found.append(
            usage_record(
                ts=at + timedelta(hours=13),
                provider="openai",
                model=PRIVATE,
                feature="support",
                input_tokens=5_000,
                output_tokens=400,
            )
        )
    return found


RECORDS = _records()


def _list_cost(record: UsageRecord) -> Decimal:
    return pricing.call_cost(
        record.provider,
        record.model,
        input_tokens=record.input_tokens,
        cached_input_tokens=record.cached_input_tokens,
        output_tokens=record.output_tokens,
        at=record.ts,
        batch=record.batch,
    )


def _cents(usd: Decimal) -> float:
    return float(usd.quantize(D("0.01"), rounding=ROUND_HALF_EVEN))


@pytest.fixture
def loaded(user: User, firestore_client: firestore.Client) -> User:
    FirestoreUsageStore(firestore_client).apply(user.workspace, RECORDS)
    return user


def _data(function: Fn, user: User) -> dict[str, Any]:
    response = function("agents_data").post(
        "/",
        headers=user.headers,
        json={"period": PERIOD, "group_by": ["day", "model", "feature", "provider", "user"]},
    )
    assert response.status_code == 200, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def _put(function: Fn, user: User, book: list[dict[str, Any]]) -> None:
    response = function("workspaces").put(
        f"/{user.workspace}/prices", json=book, headers=user.headers
    )
    assert response.status_code == 200, response.get_json()


def test_a_price_change_reprices_history_by_its_effective_date(function: Fn, loaded: User) -> None:
    before = _data(function, loaded)
    assert before["prices"] == "list"
    assert before["unknown_models"] == [{"provider": "openai", "model": PRIVATE, "requests": DAYS}]
    priced = [r for r in RECORDS if r.model != PRIVATE]
    assert before["totals"]["cost_usd"] == _cents(sum((_list_cost(r) for r in priced), D(0)))

    _put(
        function,
        loaded,
        [
            {"provider": "openai", "model": "gpt-4o", "discount_pct": 25, "from": DISCOUNT_FROM},
            {"provider": "openai", "model": PRIVATE, "input_mtok": 0.5, "output_mtok": 2},
        ],
    )
    after = _data(function, loaded)
    assert after["prices"] == "workspace"
    assert after["unknown_models"] == []

    def expected(record: UsageRecord) -> Decimal:
        if record.model == PRIVATE:
            return (record.input_tokens * D("0.5") + record.output_tokens * D(2)) / 1_000_000
        cost = _list_cost(record)
        if record.model == "gpt-4o" and record.day >= DISCOUNT_FROM:
            return cost * D("0.75")
        return cost

    days_before = {r["key"]: r for r in before["breakdown"]["day"]}
    for row in after["breakdown"]["day"]:
        own = [r for r in RECORDS if r.day == row["key"]]
        assert row["cost_usd"] == _cents(sum((expected(r) for r in own), D(0))), row["key"]
        listed = days_before[row["key"]]["cost_usd"]
        private = _cents(sum((expected(r) for r in own if r.model == PRIVATE), D(0)))
        if row["key"] < DISCOUNT_FROM:
            # Unchanged, but for the private model now priced.
            assert row["cost_usd"] == pytest.approx(listed + private, abs=0.011)
        else:
            assert row["cost_usd"] < listed + private
    assert after["totals"]["cost_usd"] == _cents(sum((expected(r) for r in RECORDS), D(0)))
    assert after["totals"]["unpriced_requests"] == 0
    by_model = {r["key"]: r["cost_usd"] for r in after["breakdown"]["model"]}
    assert by_model[PRIVATE] == _cents(
        sum((expected(r) for r in RECORDS if r.model == PRIVATE), D(0))
    )
    by_user = sum(r["cost_usd"] for r in after["breakdown"]["user"])
    assert by_user == pytest.approx(after["totals"]["cost_usd"], abs=0.01 * DAYS)
    # The trend compares like with like: the previous period had no usage.
    assert after["trend"]["previous_cost_usd"] == 0


def test_what_if_reprices_a_features_measured_tokens_at_another_models_prices(
    function: Fn, loaded: User
) -> None:
    api = function("agents_optimization")
    response = api.post(
        "/",
        headers=loaded.headers,
        json={"period": PERIOD, "what_if": {"model": "claude-3-5-haiku", "feature": "summarize"}},
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["prices"] == "list"
    what = body["what_if"]
    target = pricing.model_prices(None, "claude-3-5-haiku", datetime(2026, 10, 10, tzinfo=UTC))
    own = [r for r in RECORDS if r.feature == "summarize"]
    tokens = [sum(getattr(r, f) for r in own) for f in ("input_tokens", "cached_input_tokens")]
    output = sum(r.output_tokens for r in own)
    what_if_usd = target.cost(tokens[0], tokens[1], output)
    current_usd = sum((_list_cost(r) for r in own), D(0))
    assert what["provider"] == "anthropic"
    assert what["model"] == "claude-3-5-haiku-latest"
    assert what["feature"] == "summarize"
    assert what["requests"] == len(own)
    assert what["what_if_cost_usd"] == _cents(what_if_usd)
    assert what["current_cost_usd"] == _cents(current_usd)
    assert what["difference_usd"] == _cents(what_if_usd - current_usd)
    assert what["difference_usd"] < 0
    assert what["output_usd_per_mtok"] == float(target.output_mtok)
    assert what["caveat"] == CAVEAT
    assert "tokenizer" in what["caveat"]
    assert what["prices"] == "list"
    [source] = what["sources"]
    assert (source["model"], source["input_tokens"], source["output_tokens"]) == (
        "gpt-4o",
        tokens[0],
        output,
    )

    # The whole workspace, batch tokens at the target's batch prices; at the workspace's
    # prices once it has some: the target's discount applies and the answer says so.
    _put(function, loaded, [{"provider": "anthropic", "model": "claude-3-5-haiku-latest",
                             "discount_pct": 10}])  # fmt: skip
    whole = api.post(
        "/",
        headers=loaded.headers,
        json={"period": PERIOD, "what_if": {"model": "claude-3-5-haiku"}},
    ).get_json()
    assert whole["prices"] == "workspace"
    assert whole["what_if"]["prices"] == "workspace"
    assert whole["what_if"]["feature"] is None
    assert whole["what_if"]["requests"] == len(RECORDS)
    assert {s["model"] for s in whole["what_if"]["sources"]} == {"gpt-4o", "gpt-4o-mini", PRIVATE}
    batch = pricing.model_prices(
        None, "claude-3-5-haiku", datetime(2026, 10, 10, tzinfo=UTC), batch=True
    )
    every = sum(
        ((batch if r.batch else target).cost(r.input_tokens, r.cached_input_tokens,
                                              r.output_tokens) for r in RECORDS),
        D(0),
    )  # fmt: skip
    assert whole["what_if"]["what_if_cost_usd"] == _cents(every * D("0.9"))
    private = next(s for s in whole["what_if"]["sources"] if s["model"] == PRIVATE)
    assert private["unpriced_requests"] == DAYS
    assert private["current_cost_usd"] == 0


@pytest.mark.parametrize(
    ("what_if", "names"),
    [
        ({"model": "no-such-model-9"}, "what_if.model: model 'no-such-model-9' is not priced"),
        ({"model": "gpt-4o", "provider": "nobody"}, "what_if.model: model 'gpt-4o'"),
        ({"model": "gpt-4o", "tier": "small"}, "what_if.tier"),
        ({"model": ""}, "what_if.model"),
        ({"feature": "summarize"}, "what_if.model: Field required"),
    ],
)
def test_an_unknown_or_bad_target_is_a_422_naming_it(
    function: Fn, loaded: User, what_if: dict[str, Any], names: str
) -> None:
    response = function("agents_optimization").post(
        "/", headers=loaded.headers, json={"period": PERIOD, "what_if": what_if}
    )
    assert response.status_code == 422, response.get_json()
    assert names in response.get_json()["error"]["message"]


# --- budgets at the workspace's prices -------------------------------------------------------

TICK_AT = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def _gpt4o_calls(at: datetime, n: int) -> list[UsageRecord]:
    return [
        usage_record(
            ts=at - timedelta(minutes=i + 1),
            provider="openai",
            model="gpt-4o",
            feature="summarize",
            user=f"budget-{i}",
            input_tokens=10_000,
            output_tokens=1_000,
        )
        for i in range(n)
    ]


def test_budgets_spend_and_alerts_are_at_the_workspaces_prices(
    function: Fn, user: User, firestore_client: firestore.Client, topics: dict[str, Captured]
) -> None:
    ws = user.workspace
    now = datetime.now(UTC)
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    this_month = _gpt4o_calls(max(now, month_start + timedelta(minutes=10)), 3)
    last_month = _gpt4o_calls(TICK_AT - timedelta(hours=2), 4)
    FirestoreUsageStore(firestore_client).apply(ws, this_month + last_month)
    listed_now = sum((_list_cost(r) for r in this_month), D(0))
    listed_then = sum((_list_cost(r) for r in last_month), D(0))
    # 85% of the budget at list prices (crosses 50% and 80%); 59.5% at 30% off (only 50%).
    monthly = round(float(listed_then) / 0.85, 2)
    made = function("workspaces").post(
        f"/{ws}/budgets", json={"name": "Prod", "monthly_usd": monthly}, headers=user.headers
    )
    assert made.status_code == 201, made.get_json()
    budget_id = made.get_json()["budget_id"]
    assert made.get_json()["spend_usd"] == _cents(listed_now)

    _put(function, user, [{"provider": "openai", "model": "gpt-4o", "discount_pct": 30}])
    listed = function("workspaces").get(f"/{ws}/budgets", headers=user.headers).get_json()
    [budget] = listed["budgets"]
    assert budget["spend_usd"] == _cents(listed_now * D("0.7"))

    tick = BudgetTick(workspace_id=ws, at=TICK_AT)
    message = SimpleNamespace(
        data=tick.model_dump_json().encode(),
        attributes=tick.attributes(),
        message_id=uuid.uuid4().hex,
    )
    pushed = function("budget_worker").post("/", json=envelope(message))
    assert pushed.status_code == 204, pushed.get_data(as_text=True)
    # No webhook: each alert is a frame for the workspace's sockets (docs/budgets.md).
    [frame] = topics["apex-events"].pull(1)
    alert = NotificationFrame.model_validate_json(frame.data).notification
    assert alert.notification_id == f"b_{budget_id}_202611_5000"
    assert topics["apex-events"].empty()
