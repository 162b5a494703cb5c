"""The savings rules on hand-made rollups: the workload signals and tiers of the cheaper-model
rule, Gemini's explicit cache, and the maintained tier list itself."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from shared.model_tiers import TIER_ORDER, TIERS_FILE, model_tiers
from shared.price_book import PriceBook
from shared.usage.rollups import DailyRollup
from shared.usage.savings import Inefficiency, find_inefficiencies

AT = datetime(2026, 11, 20, tzinfo=UTC)


def row(provider: str, model: str, **fields: Any) -> DailyRollup:
    base: dict[str, Any] = {
        "day": "2026-11-20",
        "provider": provider,
        "model": model,
        "feature": "f",
        "requests": 1000,
        "input_tokens": 600_000,
        "output_tokens": 8_000,
        "min_input_tokens": 300,
        "hour_hist": {f"{h:02d}": 60 for h in range(7, 23)} | {"07": 100},
        "cost_nanousd": 10**9,
    }
    return DailyRollup(**(base | fields))


def found(*rows: DailyRollup, kind: str, book: PriceBook = PriceBook.LIST) -> Inefficiency:
    scan = find_inefficiencies(rows, days=1, price_at=AT, book=book)
    (item,) = [i for i in scan.inefficiencies if i.kind == kind]
    return item


def none_of(*rows: DailyRollup, kind: str) -> bool:
    scan = find_inefficiencies(rows, days=1, price_at=AT, book=PriceBook.LIST)
    return all(i.kind != kind for i in scan.inefficiencies)


def test_a_classifier_on_a_large_model_gets_the_small_tier() -> None:
    item = found(row("anthropic", "claude-opus-4-1"), kind="cheaper_model")
    assert [(t.model, t.tier) for t in item.targets] == [
        ("claude-haiku-5-5", "small"),
        ("claude-haiku-4-5", "small"),
    ]
    assert item.evidence["signal"] == "short_outputs"


def test_a_high_error_rate_keeps_the_target_one_tier_up() -> None:
    # 10% of the classifier's calls fail: not the smallest model, the medium tier.
    item = found(row("anthropic", "claude-opus-4-1", errors=100), kind="cheaper_model")
    assert {t.tier for t in item.targets} == {"medium"}
    assert all("sonnet" in t.model for t in item.targets)
    assert item.evidence["wanted_tier"] == "medium"


def test_long_inputs_with_short_outputs_get_the_medium_tier() -> None:
    reading = row("openai", "gpt-4o", input_tokens=5_000_000, output_tokens=150_000)
    item = found(reading, kind="cheaper_model")
    assert item.evidence["signal"] == "long_inputs_short_outputs"
    assert {t.tier for t in item.targets} == {"medium"}
    assert item.targets[0].model == "gpt-4o-mini"


def test_long_outputs_get_no_cheaper_model() -> None:
    assert none_of(row("openai", "gpt-4o", output_tokens=400_000), kind="cheaper_model")


def test_a_small_model_is_only_moved_within_its_tier() -> None:
    item = found(row("openai", "gpt-4.1-nano"), kind="cheaper_model")
    assert [(t.model, t.tier) for t in item.targets] == [("gpt-5-nano", "small")]


def test_the_targets_savings_are_the_same_tokens_at_their_prices() -> None:
    source = row("openai", "gpt-4o")
    item = found(source, kind="cheaper_model")
    book = PriceBook.LIST
    current = book.model_prices("openai", "gpt-4o", AT)
    for target in item.targets:
        prices = book.model_prices("openai", target.model, AT)
        expected = current.cost(600_000, 0, 8_000) - prices.cost(600_000, 0, 8_000)
        assert target.period_savings_usd == expected
    assert item.period_savings_usd == item.targets[0].period_savings_usd


def gemini(model: str, hours: dict[str, int]) -> DailyRollup:
    requests = sum(hours.values())
    return row(
        "google",
        model,
        requests=requests,
        input_tokens=requests * 3500,
        output_tokens=requests * 400,
        min_input_tokens=3000,
        hour_hist=hours,
    )


def test_gemini_caching_pays_storage_only_in_the_hours_worth_it() -> None:
    # Flash: $0.30 input, $0.03 cached, storage $1.00 per million tokens per hour. An hour
    # pays for its cache when c x 0.27 > 0.30 + 1.00, so from 5 calls on.
    item = found(gemini("gemini-2.5-flash", {"09": 30, "10": 4, "11": 12}), kind="prompt_caching")
    assert item.basis == "upper_bound"
    assert (item.evidence["mode"], item.evidence["storage_usd_per_mtok_hour"]) == ("gemini", 1.0)
    assert (item.evidence["cached_requests"], item.evidence["cached_hours"]) == (42, 2)
    expected = (42 * 3000 * Decimal("0.27") - 2 * 3000 * Decimal("1.30")) / 1_000_000
    assert item.period_savings_usd == expected


@pytest.mark.parametrize(
    ("model", "storage"),
    [("gemini-2.5-flash", "1.00"), ("gemini-3.7-flash", "0.50"), ("gemini-2.5-pro", "4.50")],
)
def test_gemini_storage_prices(model: str, storage: str) -> None:
    assert model_tiers().storage_usd_per_mtok_hour("google", model) == Decimal(storage)
    assert model_tiers().storage_usd_per_mtok_hour("anthropic", "claude-haiku-4-5") is None


def test_rollups_without_an_hour_histogram_claim_no_warm_cache() -> None:
    # Rollups written before hour_hist existed: no call is known to find the cache warm.
    old = row("openai", "gpt-4.1", min_input_tokens=5000, input_tokens=6_000_000, hour_hist={})
    assert none_of(old, kind="prompt_caching")


def test_openai_repeated_prefix_hashes_without_cache_reads_mean_a_short_prefix() -> None:
    long_prompts = row(
        "openai", "gpt-4.1", min_input_tokens=5000, input_tokens=6_000_000, output_tokens=300_000
    )
    assert found(long_prompts, kind="prompt_caching").basis == "upper_bound"
    # The hashes show the calls share a prefix, and OpenAI cached none of it by itself: the
    # prefix is shorter than 1,024 tokens; "the prompts do not start the same" would be false.
    hashed = long_prompts.model_copy(
        update={"prefix_hashed_requests": 1000, "prefix_repeat_requests": 900}
    )
    assert none_of(hashed, kind="prompt_caching")


@pytest.mark.parametrize(
    ("provider", "model", "tier", "propose"),
    [
        ("anthropic", "claude-haiku-4-5", "small", True),
        ("anthropic", "claude-sonnet-4-6", "medium", True),
        ("anthropic", "claude-opus-4-1", "large", True),
        ("anthropic", "claude-3-haiku", "large", False),
        ("aws", "global.anthropic.claude-haiku-4-5-20251001-v1:0", "small", True),
        ("openai", "gpt-4.1-nano", "small", True),
        ("openai", "gpt-4o-mini", "medium", True),
        ("openai", "gpt-4o", "large", True),
        ("openai", "o3", "large", False),
        ("openai", "gpt-4o-mini-transcribe", "large", False),
        ("google", "gemini-2.5-flash-lite", "small", True),
        ("google", "gemini-2.5-flash", "medium", True),
        ("google", "gemini-2.5-pro", "large", True),
        ("google", "gemini-3-flash-preview", "large", False),
    ],
)
def test_the_tier_list(provider: str, model: str, tier: str, propose: bool) -> None:
    tiers = model_tiers()
    assert (tiers.tier(provider, model), tiers.proposable(provider, model)) == (tier, propose)


def test_a_bad_pattern_in_the_list_is_refused_when_loaded(tmp_path: Path) -> None:
    text = TIERS_FILE.read_text(encoding="utf-8").replace('pattern: "-nano$"', 'pattern: "(-nano"')
    (tmp_path / "tiers.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(ValidationError, match="not a regular expression"):
        model_tiers(tmp_path / "tiers.yaml")


def test_an_unlisted_model_has_no_tier_and_is_never_proposed() -> None:
    assert model_tiers().tier("aws", "meta.llama3-1-8b-instruct-v1:0") is None
    assert not model_tiers().proposable("aws", "meta.llama3-1-8b-instruct-v1:0")


@pytest.mark.parametrize("provider", ["anthropic", "openai", "google"])
def test_the_list_covers_every_tier_of_the_main_providers(provider: str) -> None:
    # A stale list (families renamed in the price table) would leave a tier empty.
    tiers = model_tiers()
    proposable = {
        tiers.tier(provider, m.model)
        for m in PriceBook.LIST.chat_models(provider, AT)
        if tiers.proposable(provider, m.model)
    }
    assert proposable == set(TIER_ORDER)
