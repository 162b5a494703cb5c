"""A what-if question in the chat (issue 14 item 7) through ``agents_execute`` and each
step's worker: triage names the target, the optimization agent reprices the measured
tokens, and the answer's first sentence answers the question with those numbers, its caveat
stated; at the workspace's prices once it has some ("at your prices")."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

import pytest
from flask.testing import FlaskClient
from google.cloud import firestore

from shared import pricing
from shared.answer.default import usd
from shared.models.usage import UsageRecord, usage_record
from shared.store.usage import FirestoreUsageStore
from shared.usage.whatif import CAVEAT
from tests.functions.test_conversation import Turn, ask
from tests.support.functions import Captured, User

Fn = Callable[[str], FlaskClient]
QUESTION = "what would summarize have cost on claude-3-5-haiku last month?"


def _last_month() -> tuple[date, date]:
    first_this = datetime.now(UTC).date().replace(day=1)
    last = first_this - timedelta(days=1)
    return last.replace(day=1), last


def _records() -> list[UsageRecord]:
    first, last = _last_month()
    found = []
    day = first
    while day <= last:
        at = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=10)
        for k in range(2):
            found.append(
                usage_record(
                    ts=at + timedelta(minutes=k),
                    provider="openai",
                    model="gpt-4o",
                    feature="summarize",
                    user=f"u-{k}",
                    input_tokens=30_000 + day.day,
                    cached_input_tokens=6_000,
                    output_tokens=1_200 + k,
                )
            )
        found.append(
            usage_record(
                ts=at,
                provider="openai",
                model="gpt-4o-mini",
                feature="chat",
                input_tokens=2_000,
                output_tokens=100,
            )
        )
        day += timedelta(days=1)
    return found


def _cents(usd_value: Decimal) -> float:
    return float(usd_value.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN))


@pytest.fixture
def chat(
    function: Fn, topics: dict[str, Captured], firestore_client: firestore.Client, user: User
) -> Callable[[str], Turn]:
    FirestoreUsageStore(firestore_client).apply(user.workspace, _records())

    def send(message: str) -> Turn:
        return ask(function, topics, firestore_client, user, message)

    return send


def test_a_what_if_question_is_answered_first_from_the_repriced_tokens(
    chat: Callable[[str], Turn], function: Fn, user: User
) -> None:
    turn = chat(QUESTION)
    what_if = turn.triage.entities.what_if
    assert what_if is not None
    assert (what_if.model, what_if.feature) == ("claude-3-5-haiku", "summarize")
    assert turn.agents == ["triage", "data", "optimization"]
    found = turn.agent("optimization")["what_if"]

    _, last = _last_month()
    target = pricing.model_prices(
        None, "claude-3-5-haiku", datetime.combine(last, datetime.min.time(), UTC)
    )
    own = [r for r in _records() if r.feature == "summarize"]
    expected = target.cost(
        sum(r.input_tokens for r in own),
        sum(r.cached_input_tokens for r in own),
        sum(r.output_tokens for r in own),
    )
    current = sum(
        (
            pricing.call_cost(
                r.provider, r.model, input_tokens=r.input_tokens,
                cached_input_tokens=r.cached_input_tokens, output_tokens=r.output_tokens, at=r.ts,
            )
            for r in own
        ),
        Decimal(0),
    )  # fmt: skip
    assert found["what_if_cost_usd"] == _cents(expected)
    assert found["current_cost_usd"] == _cents(current)
    assert found["requests"] == len(own)

    first = turn.text.split("\n\n")[0]
    assert first.startswith("**On `claude-3-5-haiku-latest`, `summarize` would have cost about ")
    assert usd(_cents(expected)) in first
    assert usd(_cents(current)) in first
    assert "(at list prices)" in first
    saved = current - expected
    assert f"{usd(_cents(saved))} ({saved / current * 100:.1f}%) less" in first
    # The target is priced, not reported as a model the usage ran on.
    assert "`claude-3-5-haiku`: no calls" not in turn.text
    assert CAVEAT in turn.text

    # The workspace's own price for the target: the same question, at its prices.
    put = function("workspaces").put(
        f"/{user.workspace}/prices",
        json=[{"provider": "anthropic", "model": "claude-3-5-haiku-latest", "discount_pct": 50}],
        headers=user.headers,
    )
    assert put.status_code == 200, put.get_json()
    again = chat(QUESTION)
    first = again.text.split("\n\n")[0]
    assert "(at your prices)" in first
    assert usd(_cents(expected / 2)) in first
    assert again.agent("optimization")["prices"] == "workspace"
    assert re.search(r"\*\*Spend on feature `summarize` for .*\*\* at your prices", again.text), (
        again.text
    )


def test_a_what_if_on_a_model_nobody_prices_says_so_first_and_the_run_completes(
    chat: Callable[[str], Turn],
) -> None:
    turn = chat("what would summarize have cost on gpt-9-ultra last month?")
    assert turn.agents == ["triage", "data", "optimization"]
    optimization = turn.agent("optimization")
    assert optimization["what_if"] is None
    assert optimization["what_if_unpriced"] == {
        "model": "gpt-9-ultra",
        "provider": None,
        "feature": "summarize",
    }
    first = turn.text.split("\n\n")[0]
    assert first.startswith("**Apex cannot price `gpt-9-ultra`**")
    assert "would have cost on it" in first
