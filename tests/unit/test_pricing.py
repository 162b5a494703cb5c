"""Prices come from genai-prices; unknown models are unpriced, never free."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import genai_prices
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared import pricing

AT = datetime(2026, 11, 1, 12, tzinfo=UTC)


def table_price(
    provider: str, model: str, i: int, c: int, o: int, *, batch: bool = False
) -> Decimal:
    usage = genai_prices.Usage(input_tokens=i, cache_read_tokens=c, output_tokens=o)
    context = {"processing": "batch"} if batch else None
    calc = genai_prices.calc_price(
        usage, model, provider_id=provider, genai_request_timestamp=AT, price_context=context
    )
    return calc.total_price


def test_cost_matches_the_table_and_charges_cached_tokens_at_the_cache_rate() -> None:
    cost = pricing.call_cost(
        "openai", "gpt-4o", input_tokens=1000, cached_input_tokens=400, output_tokens=100, at=AT
    )
    prices = pricing.model_prices("openai", "gpt-4o", AT)
    assert prices.cached_input_mtok < prices.input_mtok
    expected = 600 * prices.input_mtok + 400 * prices.cached_input_mtok + 100 * prices.output_mtok
    assert cost == expected / 1_000_000
    assert cost == table_price("openai", "gpt-4o", 1000, 400, 100)


def test_batch_calls_use_the_batch_price_variant() -> None:
    standard = pricing.call_cost(
        "openai", "gpt-4o", input_tokens=1000, cached_input_tokens=0, output_tokens=100, at=AT
    )
    batched = pricing.call_cost(
        "openai",
        "gpt-4o",
        input_tokens=1000,
        cached_input_tokens=0,
        output_tokens=100,
        at=AT,
        batch=True,
    )
    assert batched < standard
    assert batched == table_price("openai", "gpt-4o", 1000, 0, 100, batch=True)
    assert pricing.model_prices("openai", "gpt-4o", AT, batch=True).input_mtok < (
        pricing.model_prices("openai", "gpt-4o", AT).input_mtok
    )


@pytest.mark.parametrize(
    ("provider", "model"),
    [("openai", "acme-9000"), ("no-such-provider", "gpt-4o"), (None, "acme-9000")],
)
def test_unknown_models_raise_instead_of_costing_zero(provider: str | None, model: str) -> None:
    with pytest.raises(pricing.UnknownModelError) as info:
        pricing.call_cost(
            provider, model, input_tokens=10, cached_input_tokens=0, output_tokens=10, at=AT
        )
    assert info.value.model == model
    with pytest.raises(pricing.UnknownModelError):
        pricing.model_prices(provider, model, AT)


def test_a_model_listed_without_token_prices_is_unpriced() -> None:
    # gemma-3 is in the table for google, but with no prices at all.
    with pytest.raises(pricing.UnknownModelError, match="no token prices"):
        pricing.call_cost(
            "google", "gemma-3", input_tokens=10, cached_input_tokens=0, output_tokens=10, at=AT
        )


def test_provider_is_inferred_from_the_model_when_absent() -> None:
    assert pricing.resolve_provider(None, "gpt-4o") == "openai"
    assert pricing.resolve_provider(None, "claude-sonnet-4-6") == "anthropic"
    assert pricing.resolve_provider(None, "acme-9000") == pricing.UNKNOWN_PROVIDER
    assert pricing.resolve_provider("azure", "gpt-4o") == "azure"


def test_deprecation_comes_from_the_table() -> None:
    assert pricing.is_deprecated("cohere", "command-light")
    assert pricing.is_deprecated("google", "gemini-2.0-flash")
    assert not pricing.is_deprecated("openai", "gpt-4o")
    assert pricing.model_prices("cohere", "command-light", AT).deprecated


def test_cheaper_models_start_with_the_family_and_are_all_cheaper() -> None:
    current = pricing.model_prices("openai", "gpt-4o", AT)
    candidates = pricing.cheaper_models("openai", "gpt-4o", AT)
    assert candidates[0].model == "gpt-4o-mini"
    assert len(candidates) > 3
    for candidate in candidates:
        assert candidate.provider == "openai"
        assert not candidate.deprecated
        assert candidate.input_mtok <= current.input_mtok
        assert candidate.output_mtok <= current.output_mtok
        assert candidate.list_price_mtok < current.list_price_mtok
    # Speech and transcription-only models are never proposed for a chat workload.
    assert "tts-1" not in {c.model for c in candidates}
    assert "gpt-4o-mini-tts" not in {c.model for c in candidates}


def test_deprecated_replacement_is_the_closest_step_down() -> None:
    replacement = pricing.deprecated_replacement("cohere", "command-light", AT)
    assert replacement is not None
    assert replacement.model == "command-r"
    assert not replacement.deprecated
    assert pricing.deprecated_replacement("openai", "gpt-4o", AT) is None


def test_aggregate_records_cost_requests_times_the_average_call() -> None:
    one = pricing.call_cost(
        "openai", "gpt-4o", input_tokens=500, cached_input_tokens=100, output_tokens=50, at=AT
    )
    many = pricing.call_cost(
        "openai",
        "gpt-4o",
        input_tokens=5000,
        cached_input_tokens=1000,
        output_tokens=500,
        at=AT,
        requests=10,
    )
    assert many == one * 10


def test_tiered_models_go_through_the_tables_calculator() -> None:
    # claude-sonnet-4-5 charges more above 200k prompt tokens: not a linear price.
    prices = pricing.model_prices("anthropic", "claude-sonnet-4-5", AT)
    assert prices.tiered
    assert not prices.linear
    big = pricing.call_cost(
        "anthropic",
        "claude-sonnet-4-5",
        input_tokens=300_000,
        cached_input_tokens=0,
        output_tokens=1000,
        at=AT,
    )
    assert big == table_price("anthropic", "claude-sonnet-4-5", 300_000, 0, 1000)
    assert big > prices.cost(300_000, 0, 1000)


MODELS = [
    ("openai", "gpt-4o"),
    ("openai", "gpt-4.1"),
    ("openai", "gpt-4o-mini"),
    ("anthropic", "claude-sonnet-4-6"),
    ("anthropic", "claude-haiku-4-5"),
    ("cohere", "command-light"),
    ("google", "gemini-2.5-flash-lite"),
    ("aws", "amazon.nova-lite-v1:0"),
]


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(MODELS),
    st.integers(0, 2_000_000),
    st.data(),
    st.integers(0, 200_000),
    st.booleans(),
)
def test_cost_equals_the_tables_calculator(
    model: tuple[str, str], i: int, data: st.DataObject, o: int, batch: bool
) -> None:
    provider, name = model
    c = data.draw(st.integers(0, i))
    ours = pricing.call_cost(
        provider, name, input_tokens=i, cached_input_tokens=c, output_tokens=o, at=AT, batch=batch
    )
    assert ours == table_price(provider, name, i, c, o, batch=batch)


def test_linear_fast_path_is_taken_only_for_plain_token_prices() -> None:
    assert pricing.model_prices("openai", "gpt-4o", AT).linear
    assert pricing.model_prices("cohere", "command-light", AT).linear
    # Audio input prices: the table's calculator decides.
    assert not pricing.model_prices("google", "gemini-2.5-flash-lite", AT).linear


def test_lookups_are_memoized() -> None:
    def cost() -> Decimal:
        return pricing.call_cost(
            "openai", "gpt-4.1", input_tokens=10, cached_input_tokens=0, output_tokens=1, at=AT
        )

    cost()
    misses = pricing._model_prices_cached.cache_info().misses
    for _ in range(50):
        cost()
    assert pricing._model_prices_cached.cache_info().misses == misses
    # Unknown models are remembered too: a miss is not re-searched on every record.
    for _ in range(3):
        with pytest.raises(pricing.UnknownModelError):
            pricing.model_prices("openai", "acme-memo", AT)
    info = pricing._lookup.cache_info()
    assert pricing._lookup("openai", "acme-memo") == pricing._lookup("openai", "acme-memo")
    assert pricing._lookup.cache_info().hits >= info.hits + 2


def test_nanousd_is_exact_and_rounds_half_even() -> None:
    assert pricing.to_nanousd(Decimal("0.0030")) == 3_000_000
    assert pricing.to_nanousd(Decimal("0.0000000005")) == 0
    assert pricing.to_nanousd(Decimal("0.0000000015")) == 2
