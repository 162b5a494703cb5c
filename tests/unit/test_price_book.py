"""A workspace's price book over the list prices: entries, dates, discounts, private models."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from shared import pricing
from shared.price_book import PriceBook, PriceEntry

AT = datetime(2026, 11, 1, 12, tzinfo=UTC)
D = Decimal


def test_the_list_book_prices_as_the_table_does() -> None:
    book = PriceBook.LIST
    assert not book.custom
    for batch in (False, True):
        assert book.model_prices("openai", "gpt-4o", AT, batch=batch) == pricing.model_prices(
            "openai", "gpt-4o", AT, batch=batch
        )
    assert book.chat_models("anthropic", AT) == pricing.chat_models("anthropic", AT)
    assert book.allows("openai", "gpt-4o")
    with pytest.raises(pricing.UnknownModelError):
        book.model_prices("acme", "private-model-1", AT)


def test_chat_models_are_the_providers_non_deprecated_token_priced_models() -> None:
    models = pricing.chat_models("anthropic", AT)
    names = {m.model for m in models}
    assert "claude-3-5-haiku-latest" in names
    assert all(not m.deprecated and m.provider == "anthropic" for m in models)
    assert pricing.chat_models("no-such-provider", AT) == ()


def test_explicit_prices_replace_the_list_ones_and_the_rest_stay() -> None:
    listed = pricing.model_prices("openai", "gpt-4o", AT)
    book = PriceBook.of([PriceEntry("openai", "gpt-4o", output_mtok=D("8"))])
    assert book.custom
    prices = book.model_prices("openai", "gpt-4o", AT)
    assert prices.output_mtok == D("8")
    assert prices.input_mtok == listed.input_mtok
    assert prices.cached_input_mtok == listed.cached_input_mtok
    # Another model of the same provider keeps its list prices.
    assert book.model_prices("openai", "gpt-4o-mini", AT) == pricing.model_prices(
        "openai", "gpt-4o-mini", AT
    )


def test_an_explicit_input_price_carries_the_cache_discount_proportionally() -> None:
    listed = pricing.model_prices("anthropic", "claude-3-5-haiku-latest", AT)
    assert listed.cache_write_mtok is not None
    book = PriceBook.of([PriceEntry("anthropic", "claude-3-5-haiku-latest", input_mtok=D("0.4"))])
    prices = book.model_prices("anthropic", "claude-3-5-haiku-latest", AT)
    ratio = D("0.4") / listed.input_mtok
    assert prices.input_mtok == D("0.4")
    assert prices.cached_input_mtok == listed.cached_input_mtok * ratio
    assert prices.cache_write_mtok == listed.cache_write_mtok * ratio
    assert prices.output_mtok == listed.output_mtok


def test_a_discount_applies_to_list_or_given_prices() -> None:
    listed = pricing.model_prices("openai", "gpt-4o", AT)
    off = PriceBook.of([PriceEntry("openai", "gpt-4o", discount_pct=D("20"))])
    prices = off.model_prices("openai", "gpt-4o", AT)
    assert prices.input_mtok == listed.input_mtok * D("0.8")
    assert prices.cached_input_mtok == listed.cached_input_mtok * D("0.8")
    assert prices.output_mtok == listed.output_mtok * D("0.8")
    both = PriceBook.of([PriceEntry("openai", "gpt-4o", output_mtok=D("8"), discount_pct=D("25"))])
    assert both.model_prices("openai", "gpt-4o", AT).output_mtok == D("6")
    assert both.model_prices("openai", "gpt-4o", AT).input_mtok == listed.input_mtok * D("0.75")


def test_a_dated_model_name_matches_the_entry_of_its_table_model() -> None:
    book = PriceBook.of([PriceEntry("openai", "gpt-4o", output_mtok=D("7"))])
    assert book.model_prices("openai", "gpt-4o-2024-08-06", AT).output_mtok == D("7")
    # No provider given: the table infers it.
    assert book.model_prices(None, "gpt-4o", AT).output_mtok == D("7")


def test_a_private_model_is_priced_by_its_entry_not_unknown() -> None:
    entry = PriceEntry(
        "openai", "ft:gpt-4o-mini:acme:support:1", input_mtok=D("0.3"), output_mtok=D("1.2")
    )
    book = PriceBook.of([entry])
    prices = book.model_prices("openai", entry.model, AT)
    assert (prices.input_mtok, prices.cached_input_mtok, prices.output_mtok) == (
        D("0.3"),
        D("0.3"),
        D("1.2"),
    )
    assert prices.linear
    assert not prices.tiered
    assert not prices.deprecated
    # A private model has no batch variant: its batch calls cost its entry's prices.
    assert book.model_prices("openai", entry.model, AT, batch=True) == prices
    assert prices in book.chat_models("openai", AT)
    assert len(book.chat_models("openai", AT)) == len(pricing.chat_models("openai", AT)) + 1
    # Only a discount for a model nobody prices: still unknown, never free.
    with pytest.raises(pricing.UnknownModelError, match="no input and output prices"):
        PriceBook.of([PriceEntry("acme", "m1", discount_pct=D("10"))]).model_prices(
            "acme", "m1", AT
        )


def test_the_latest_entry_in_force_wins_and_before_the_first_the_list_applies() -> None:
    listed = pricing.model_prices("openai", "gpt-4o", AT)
    book = PriceBook.of(
        [
            PriceEntry("openai", "gpt-4o", discount_pct=D("30"), from_=date(2026, 10, 15)),
            PriceEntry("openai", "gpt-4o", discount_pct=D("10"), from_=date(2026, 9, 1)),
        ]
    )

    def output(day: date) -> Decimal:
        at = datetime(day.year, day.month, day.day, 23, 59, tzinfo=UTC)
        return book.model_prices("openai", "gpt-4o", at).output_mtok

    assert output(date(2026, 8, 31)) == listed.output_mtok
    assert output(date(2026, 9, 1)) == listed.output_mtok * D("0.9")
    assert output(date(2026, 10, 14)) == listed.output_mtok * D("0.9")
    assert output(date(2026, 10, 15)) == listed.output_mtok * D("0.7")
    # An entry without a date is in force from the start, under dated ones.
    undated = PriceBook.of(
        [
            PriceEntry("openai", "gpt-4o", discount_pct=D("5")),
            PriceEntry("openai", "gpt-4o", discount_pct=D("50"), from_=date(2026, 10, 1)),
        ]
    )
    assert undated.model_prices("openai", "gpt-4o", datetime(2020, 1, 1, tzinfo=UTC)).output_mtok
    assert undated.model_prices("openai", "gpt-4o", AT).output_mtok == listed.output_mtok / 2


def test_batch_keeps_the_providers_batch_discount_on_a_negotiated_price() -> None:
    standard = pricing.model_prices("openai", "gpt-4o", AT)
    batch = pricing.model_prices("openai", "gpt-4o", AT, batch=True)
    assert batch.output_mtok < standard.output_mtok
    book = PriceBook.of([PriceEntry("openai", "gpt-4o", output_mtok=D("8"), discount_pct=D("10"))])
    got = book.model_prices("openai", "gpt-4o", AT, batch=True)
    assert got.output_mtok == D("8") * batch.output_mtok / standard.output_mtok * D("0.9")
    assert got.input_mtok == batch.input_mtok * D("0.9")


def test_allowed_models() -> None:
    book = PriceBook.of(allowed_models=[("openai", "gpt-4o-mini")])
    assert not book.custom
    assert book.allows("openai", "gpt-4o-mini")
    assert not book.allows("openai", "gpt-4o")
    assert not book.allows("anthropic", "gpt-4o-mini")
    # Matched through the table's names, like prices.
    dated = PriceBook.of(allowed_models=[("openai", "gpt-4o")])
    assert dated.allows("openai", "gpt-4o-2024-08-06")
    assert PriceBook.of(allowed_models=[]).allows("openai", "gpt-4o") is False
