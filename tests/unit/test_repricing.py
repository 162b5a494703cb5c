"""Rollups read at the workspace's prices: each day by the entry in force on it, from the
rollups' own token sums, exact against pricing every record by hand."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from shared import pricing
from shared.models.usage import UsageRecord, usage_record
from shared.price_book import PriceBook, PriceEntry
from shared.usage.repricing import reprice
from shared.usage.rollups import DailyRollup, UserDailyRollup, accumulate

D = Decimal
START = datetime(2026, 10, 1, 10, tzinfo=UTC)
DAYS = [START + timedelta(days=i) for i in range(4)]
PRIVATE = "acme-support-ft-1"


def rec(at: datetime, **fields: Any) -> UsageRecord:
    base: dict[str, Any] = {
        "ts": at,
        "provider": "openai",
        "model": "gpt-4o",
        "feature": "summarize",
        "user": "u-1",
        "input_tokens": 12_000,
        "cached_input_tokens": 2_000,
        "output_tokens": 700,
    }
    base.update(fields)
    return usage_record(**base)


def records() -> list[UsageRecord]:
    found = []
    for i, day in enumerate(DAYS):
        found += [
            rec(day, input_tokens=10_000 + i, output_tokens=500 + i),
            rec(day, user=None, input_tokens=3_000, cached_input_tokens=0, output_tokens=90),
            rec(day, user=None, batch=True, input_tokens=50_000, output_tokens=4_000),
            rec(day, status="error", error_type="timeout", output_tokens=0),
            rec(day, request_hash="h", input_tokens=900, cached_input_tokens=0),
            # The same request again, from someone else (a record of its own).
            rec(day, request_hash="h", input_tokens=900, cached_input_tokens=0, user="u-2"),
            rec(day, model="gpt-4o-mini", input_tokens=4_000, output_tokens=300),
            rec(day, model=PRIVATE, input_tokens=8_000, cached_input_tokens=0, output_tokens=100),
        ]
    return found


def rows() -> tuple[list[DailyRollup], list[UserDailyRollup]]:
    batch = accumulate(records())
    assert sum(r.requests for r in batch.daily.values()) == len(records())
    return list(batch.daily.values()), list(batch.users.values())


def priced(record: UsageRecord, book: PriceBook) -> Decimal:
    """A record at the book's prices of its day, by hand."""
    at = datetime.combine(record.ts.date(), datetime.min.time(), UTC)
    prices = book.model_prices(record.provider, record.model, at, batch=record.batch)
    return prices.cost(record.input_tokens, record.cached_input_tokens, record.output_tokens)


def total(found: list[Any]) -> int:
    return sum(r.cost_nanousd for r in found)


def test_the_list_book_returns_the_rows_as_they_are() -> None:
    daily, users = rows()
    assert all(a is b for a, b in zip(reprice(daily, PriceBook.LIST), daily, strict=True))
    assert all(a is b for a, b in zip(reprice(users, PriceBook.LIST), users, strict=True))


def test_a_discount_from_a_day_reprices_that_day_on_and_leaves_the_days_before() -> None:
    daily, users = rows()
    book = PriceBook.of(
        [PriceEntry("openai", "gpt-4o", discount_pct=D(20), from_=date(2026, 10, 3))]
    )
    got = reprice(daily, book)
    for before, after in zip(daily, got, strict=True):
        if before.model != "gpt-4o" or before.day < "2026-10-03":
            assert after is before
            continue
        for name in ("cost", "no_user_cost", "batch_cost", "error_cost", "repeat_cost"):
            field = f"{name}_nanousd"
            assert getattr(after, field) == round(getattr(before, field) * D("0.8")), field
        assert after.input_tokens == before.input_tokens
    # The discount to the cent against every record priced by hand at the book's prices.
    own = [r for r in records() if r.model == "gpt-4o" and r.day >= "2026-10-03"]
    expected = sum((priced(r, book) for r in own), D(0))
    repriced = sum(r.cost_nanousd for r in got if r.model == "gpt-4o" and r.day >= "2026-10-03")
    assert abs(D(repriced) / 10**9 - expected) < D("0.000001")
    # Per-user rows agree with the daily ones, day by day.
    got_users = reprice(users, book)
    for day in {r.day for r in daily}:
        assert total([r for r in got_users if r.day == day]) == total(
            [r for r in got if r.day == day]
        )


def test_explicit_prices_reprice_from_the_tokens_batch_at_the_batch_ratio() -> None:
    daily, users = rows()
    book = PriceBook.of([PriceEntry("openai", "gpt-4o", input_mtok=D("2"), output_mtok=D(8))])
    got = reprice(daily, book)
    for day in sorted({r.day for r in daily}):
        [row] = [r for r in got if r.day == day and r.model == "gpt-4o"]
        own = [r for r in records() if r.day == day and r.model == "gpt-4o"]
        assert row.cost_nanousd == pricing.to_nanousd(sum((priced(r, book) for r in own), D(0)))
        batched = [r for r in own if r.batch]
        assert row.batch_cost_nanousd == pricing.to_nanousd(
            sum((priced(r, book) for r in batched), D(0))
        )
        no_user = [r for r in own if r.user is None and not r.batch]
        assert row.no_user_cost_nanousd == pricing.to_nanousd(
            sum((priced(r, book) for r in no_user), D(0))
        )
    standard = book.model_prices("openai", "gpt-4o", START)
    batch = book.model_prices("openai", "gpt-4o", START, batch=True)
    listed = pricing.model_prices("openai", "gpt-4o", START)
    listed_batch = pricing.model_prices("openai", "gpt-4o", START, batch=True)
    assert batch.output_mtok == D(8) * listed_batch.output_mtok / listed.output_mtok
    assert standard.output_mtok == D(8)
    got_users = reprice(users, book)
    assert total(got_users) == total(got)


def test_a_private_model_unpriced_at_ingest_is_priced_by_the_book() -> None:
    daily, _ = rows()
    [before] = [r for r in daily if r.model == PRIVATE and r.day == "2026-10-01"]
    assert before.unpriced_requests == 1
    assert before.cost_nanousd == 0
    book = PriceBook.of([PriceEntry("openai", PRIVATE, input_mtok=D("0.5"), output_mtok=D(2))])
    [after] = [r for r in reprice(daily, book) if r.model == PRIVATE and r.day == "2026-10-01"]
    assert after.unpriced_requests == 0
    assert after.cost_nanousd == pricing.to_nanousd(
        (D(8_000) * D("0.5") + D(100) * D(2)) / 1_000_000
    )
    # A discount alone cannot price it: it stays unpriced, never free.
    unpriced = reprice(daily, PriceBook.of([PriceEntry("openai", PRIVATE, discount_pct=D(5))]))
    assert [r for r in unpriced if r.model == PRIVATE] == [r for r in daily if r.model == PRIVATE]
