"""What-if repricing priced day by day: each day's measured tokens at the target's price in
force that day (issue 14 item 7, docs/prices.md), to the cent against every record priced by
hand."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import pytest

from shared import pricing
from shared.models.triage import WhatIfSpec
from shared.models.usage import UsageRecord, usage_record
from shared.price_book import PriceBook, PriceEntry
from shared.usage.repricing import reprice
from shared.usage.rollups import DailyRollup, accumulate
from shared.usage.whatif import check_target, what_if

D = Decimal
START = datetime(2026, 10, 1, 10, tzinfo=UTC)
DAYS = [(START + timedelta(days=i)).date().isoformat() for i in range(4)]
TARGET = "claude-3-5-haiku"
# The target's price changes inside the period: its list price until 2 October, the
# workspace's negotiated one (well away from the list's) from 3 October.
CHANGE = date(2026, 10, 3)
BOOK = PriceBook.of(
    [
        PriceEntry(
            "anthropic",
            TARGET,
            input_mtok=D("0.35"),
            cached_input_mtok=D("0.05"),
            output_mtok=D("1.7"),
            from_=CHANGE,
        )
    ]
)


def rec(day: int, **fields: Any) -> UsageRecord:
    base: dict[str, Any] = {
        "ts": START + timedelta(days=day),
        "provider": "openai",
        "model": "gpt-4o",
        "feature": "summarize",
        "user": "u-1",
        "input_tokens": 12_345 + 17 * day,
        "cached_input_tokens": 2_000,
        "output_tokens": 701 + day,
    }
    base.update(fields)
    return usage_record(**base)


def records() -> list[UsageRecord]:
    found = []
    for day in range(len(DAYS)):
        found += [
            rec(day),
            rec(day, input_tokens=80_000, cached_input_tokens=0, output_tokens=3_333),
            rec(day, user=None, batch=True, input_tokens=50_000, output_tokens=4_000),
            rec(day, model="gpt-4o-mini", input_tokens=4_000, output_tokens=300),
            rec(day, feature="classify", input_tokens=900, cached_input_tokens=0, output_tokens=3),
        ]
    return found


def rows(book: PriceBook) -> list[DailyRollup]:
    return reprice(list(accumulate(records()).daily.values()), book)


def by_hand(record: UsageRecord, book: PriceBook) -> Decimal:
    """The record's tokens at the target's prices of the record's day."""
    at = datetime.combine(record.ts.date(), datetime.min.time(), UTC)
    prices = book.model_prices(None, TARGET, at, batch=record.batch)
    return prices.cost(record.input_tokens, record.cached_input_tokens, record.output_tokens)


def cents(value: Decimal) -> float:
    return float(value.quantize(D("0.01"), rounding=ROUND_HALF_EVEN))


@pytest.mark.parametrize("feature", [None, "summarize"])
def test_each_days_tokens_are_priced_at_the_targets_price_of_that_day(
    feature: str | None,
) -> None:
    spec = WhatIfSpec(model=TARGET, feature=feature)
    got = what_if(rows(BOOK), spec, BOOK, DAYS)
    own = [r for r in records() if feature is None or r.feature == feature]
    expected = sum((by_hand(r, BOOK) for r in own), D(0))
    assert got.what_if_cost_usd == cents(expected)
    # The days before the change at the list price, the days from it at the book's: the
    # period's last day's prices alone would give another figure (the test can fail).
    last_day = BOOK.model_prices(None, TARGET, datetime(2026, 10, 4, tzinfo=UTC))
    at_last_day_only = sum(
        (
            BOOK.model_prices(None, TARGET, datetime(2026, 10, 4, tzinfo=UTC), batch=r.batch).cost(
                r.input_tokens, r.cached_input_tokens, r.output_tokens
            )
            for r in own
        ),
        D(0),
    )
    assert cents(expected) != cents(at_last_day_only)
    # Per source model, to the cent too; the prices shown are the last day's.
    for source in got.sources:
        mine = [r for r in own if r.model == source.model]
        assert source.what_if_cost_usd == cents(sum((by_hand(r, BOOK) for r in mine), D(0)))
    assert got.output_usd_per_mtok == float(last_day.output_mtok) == 1.7
    assert got.prices == "workspace"


def test_at_list_prices_a_period_is_priced_day_by_day_as_well() -> None:
    spec = WhatIfSpec(model=TARGET)
    got = what_if(rows(PriceBook.LIST), spec, PriceBook.LIST, DAYS)
    expected = sum((by_hand(r, PriceBook.LIST) for r in records()), D(0))
    assert got.what_if_cost_usd == cents(expected)
    assert got.prices == "list"


def test_a_target_priced_only_from_a_day_inside_the_period_is_refused() -> None:
    private = "acme-haiku-ft-1"
    book = PriceBook.of(
        [
            PriceEntry(
                "anthropic", private, input_mtok=D(1), output_mtok=D(2), from_=date(2026, 10, 2)
            )
        ]
    )
    spec = WhatIfSpec(model=private, provider="anthropic")
    check_target(spec, book, DAYS[1:])
    with pytest.raises(pricing.UnknownModelError):
        check_target(spec, book, DAYS)
    with pytest.raises(pricing.UnknownModelError):
        what_if(rows(book), spec, book, DAYS)
