"""The optimization agent's recommendations: the planted inefficiencies, priced as planted.

The synthetic workspace plants inefficiencies of every kind with known monthly savings
(``workspace.manifest``); hand-made rollups pin the wording, filtering and edge cases. Every
saving shown is recomputed here from the evidence it shows, to the cent.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from devstack.synthetic import SyntheticWorkspace, generate
from shared import pricing
from shared.models.findings import (
    UPPER_BOUND_MAX_CONFIDENCE,
    OptimizationReport,
    Recommendation,
    UnknownModel,
)
from shared.models.period import AbsolutePeriod, PeriodRange
from shared.models.recommendations import KINDS
from shared.models.usage import usage_record
from shared.usage.recommend import BASE_CONFIDENCE, LOW_VOLUME_FACTOR, recommend
from shared.usage.rollups import DailyRollup, accumulate

END = date(2026, 11, 20)
PERIOD = AbsolutePeriod(start="2026-10-22", end="2026-11-20").resolve()


def period(first: str, last: str) -> PeriodRange:
    """The whole UTC days ``first`` to ``last`` (inclusive)."""
    return AbsolutePeriod(start=first, end=last).resolve()


def failing(day: str = "2026-11-20", **fields: Any) -> DailyRollup:
    """A gpt-4o feature that only trips the failed-calls rule: 10% errors, $5 spent on them."""
    base: dict[str, Any] = {
        "day": day,
        "provider": "openai",
        "model": "gpt-4o",
        "feature": "extract",
        "requests": 100,
        "errors": 10,
        "input_tokens": 50_000,
        "output_tokens": 20_000,  # 200 a call: not short enough for a cheaper model
        "min_input_tokens": 500,  # too short a prefix to cache
        "cost_nanousd": 50 * 10**9,
        "error_cost_nanousd": 5 * 10**9,
    }
    return DailyRollup(**(base | fields))


@pytest.fixture(scope="module")
def workspace() -> SyntheticWorkspace:
    # Every case: one plant of each kind and issue 14's second plants.
    return generate(end=END, all_cases=True)


@pytest.fixture(scope="module")
def rollups(workspace: SyntheticWorkspace) -> list[DailyRollup]:
    return list(accumulate(workspace.records).daily.values())


@pytest.fixture(scope="module")
def full(rollups: list[DailyRollup]) -> OptimizationReport:
    return recommend(rollups, PERIOD)


def test_every_planted_kind_is_recommended_at_its_manifest_savings(
    workspace: SyntheticWorkspace, full: OptimizationReport
) -> None:
    found = {(r.kind, r.feature): r for r in full.recommendations}
    planted = {(item.kind, item.feature): item for item in workspace.manifest.inefficiencies}
    # Nothing but the plants.
    assert set(found) == set(planted)
    assert {kind for kind, _ in found} == set(KINDS)
    for key, item in planted.items():
        rec = found[key]
        # Within 1%, or within the half cent that rounding to the cent may add.
        tolerance = max(0.01 * item.monthly_savings_usd, 0.005)
        assert abs(rec.monthly_savings_usd - item.monthly_savings_usd) <= tolerance, key
        assert (rec.provider, rec.model, rec.target_model, rec.basis) == (
            item.provider,
            item.model,
            item.target_model,
            item.basis,
        )
        assert [t.model for t in rec.targets] == [model for model, _ in item.targets]


def test_ranked_by_savings_and_totalled(full: OptimizationReport) -> None:
    savings = [r.monthly_savings_usd for r in full.recommendations]
    assert savings == sorted(savings, reverse=True)
    assert (full.recommendations[0].kind, full.recommendations[0].feature) == (
        "prompt_caching",
        "support_agent",
    )
    assert full.total_monthly_savings_usd == pytest.approx(sum(savings), abs=1e-9)
    # Only the first target of a cheaper-model recommendation counts.
    assert full.total_monthly_savings_usd == 50.39
    assert full.unknown_models == []


def recomputed(rec: Recommendation) -> Decimal:
    """The period saving, from nothing but the recommendation's evidence (the formulas of
    shared.usage.savings, written out again)."""
    e = rec.evidence

    def price(key: str) -> Decimal:
        return Decimal(str(e[key]))

    def tokens(prefix: str) -> tuple[int, int, int]:
        return (
            int(e[f"{prefix}input_tokens"]),
            int(e[f"{prefix}cached_input_tokens"]),
            int(e[f"{prefix}output_tokens"]),
        )

    def cost(t: tuple[int, int, int], prefix: str) -> Decimal:
        i, c, o = t
        return (
            (i - c) * price(f"{prefix}input_usd_per_mtok")
            + c * price(f"{prefix}cached_input_usd_per_mtok")
            + o * price(f"{prefix}output_usd_per_mtok")
        ) / 1_000_000

    if rec.kind in ("cheaper_model", "deprecated_model"):
        return cost(tokens(""), "") - cost(tokens(""), "target_")
    if rec.kind == "batch_api":
        return cost(tokens("candidate_"), "") - cost(tokens("candidate_"), "batch_")
    if rec.kind == "trim_outputs":
        return int(e["excess_output_tokens"]) * price("output_usd_per_mtok") / 1_000_000
    if rec.kind in ("response_cache", "failed_calls"):
        return price("repeat_cost_usd" if rec.kind == "response_cache" else "error_cost_usd")
    assert rec.kind == "prompt_caching"
    prefix = int(e["prefix_tokens"])
    read = price("input_usd_per_mtok") - price("cached_input_usd_per_mtok")
    if e["mode"] == "gemini":
        upkeep = price("input_usd_per_mtok") + price("storage_usd_per_mtok_hour")
        cached, hours = int(e["cached_requests"]), int(e["cached_hours"])
        return (cached * prefix * read - hours * prefix * upkeep) / 1_000_000
    premium = max(price("cache_write_usd_per_mtok") - price("input_usd_per_mtok"), Decimal(0))
    warm, cold = int(e["warm_requests"]), int(e["cold_requests"])
    return (warm * prefix * read - cold * prefix * premium) / 1_000_000


def to_the_cent(period: Decimal, days: int) -> float:
    return float((period / days * 30).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN))


def test_every_saving_shown_is_recomputed_from_its_evidence_to_the_cent(
    full: OptimizationReport,
) -> None:
    assert {r.kind for r in full.recommendations} == set(KINDS)
    for rec in full.recommendations:
        days = int(rec.evidence["days"])
        period = recomputed(rec)
        assert to_the_cent(period, days) == rec.monthly_savings_usd, (rec.kind, rec.feature)
        assert f"${rec.monthly_savings_usd:,.2f}/month" in rec.detail, rec.kind
        assert (
            float(period.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN))
            == (rec.evidence["period_savings_usd"])
        )
        # A second target is priced from its own evidence too.
        if len(rec.targets) == 2:
            tokens = (
                int(rec.evidence["input_tokens"]),
                int(rec.evidence["cached_input_tokens"]),
                int(rec.evidence["output_tokens"]),
            )
            second = {k[len("second_") :]: v for k, v in rec.evidence.items() if "second_" in k}
            again = rec.model_copy(update={"evidence": {**rec.evidence, **second}})
            assert tokens[0] > 0
            assert to_the_cent(recomputed(again), days) == rec.targets[1].monthly_savings_usd


def test_the_text_says_measured_or_upper_bound(full: OptimizationReport) -> None:
    for rec in full.recommendations:
        amount = f"${rec.monthly_savings_usd:,.2f}/month"
        if rec.basis == "measured":
            assert f"saves {amount}" in rec.detail, rec.kind
            assert "would save up to" not in rec.detail, rec.kind
        else:
            assert f"would save up to {amount}" in rec.detail, rec.kind
            assert "saves " not in rec.detail, rec.kind
            assert "do not show" in rec.detail, rec.kind
        # The sentence the records could never prove is gone.
        assert "repeat a prefix" not in rec.detail, rec.kind


def test_an_upper_bound_never_gets_a_measured_confidence(full: OptimizationReport) -> None:
    measured = [r.confidence for r in full.recommendations if r.basis == "measured"]
    upper = [r.confidence for r in full.recommendations if r.basis == "upper_bound"]
    assert upper
    assert measured
    assert max(upper) <= UPPER_BOUND_MAX_CONFIDENCE < min(BASE_CONFIDENCE.values())
    assert max(upper) < min(measured)
    # The model refuses one that claims more.
    rec = next(r for r in full.recommendations if r.basis == "upper_bound")
    with pytest.raises(ValidationError, match="upper bound"):
        Recommendation.model_validate({**rec.model_dump(), "confidence": 0.6})


def test_cheaper_model_shows_the_numbers_behind_it(
    workspace: SyntheticWorkspace, full: OptimizationReport
) -> None:
    rec = next(r for r in full.recommendations if r.feature == "classify_ticket")
    assert rec.title == "Move feature `classify_ticket` from gpt-4o to gpt-5-nano"
    records = [r for r in workspace.records if r.feature == "classify_ticket"]
    inputs, outputs = sum(r.input_tokens for r in records), sum(r.output_tokens for r in records)
    assert rec.evidence["requests"] == len(records)
    assert rec.evidence["input_tokens"] == inputs
    assert rec.evidence["output_tokens"] == outputs
    assert rec.evidence["mean_output_tokens"] == round(outputs / len(records), 1)
    assert (rec.evidence["signal"], rec.evidence["wanted_tier"]) == ("short_outputs", "small")
    at = workspace.manifest.price_at
    gpt4o = pricing.model_prices("openai", "gpt-4o", at)
    nano = pricing.model_prices("openai", "gpt-5-nano", at)
    assert rec.evidence["input_usd_per_mtok"] == float(gpt4o.input_mtok)
    assert rec.evidence["target_output_usd_per_mtok"] == float(nano.output_mtok)
    assert rec.evidence["days"] == 30
    assert [(t.model, t.tier) for t in rec.targets] == [
        ("gpt-5-nano", "small"),
        ("gpt-4.1-nano", "small"),
    ]
    for text in (
        f"{inputs:,} input",
        f"{outputs:,} output",
        "$2.50/$10.00",
        "$0.05/$0.40",
        "classification-like",
        "Second choice: gpt-4.1-nano at $0.10/$0.40",
        "may count the same text in more or fewer tokens",
    ):
        assert text in rec.detail
    assert f"${rec.targets[1].monthly_savings_usd:,.2f}/month less" in rec.detail
    assert 1 <= len(rec.steps) <= 4
    assert rec.confidence == BASE_CONFIDENCE["cheaper_model"]


def test_each_kind_has_a_specific_title(full: OptimizationReport) -> None:
    titles = {r.feature: r.title for r in full.recommendations}
    assert titles == {
        "classify_ticket": "Move feature `classify_ticket` from gpt-4o to gpt-5-nano",
        "route_email": "Move feature `route_email` from claude-opus-4-1 to claude-haiku-5-5",
        "contract_review": (
            "Reorder the prompts of feature `contract_review` on gpt-4.1 so they start the same"
        ),
        "support_agent": (
            "Cache the repeated prompt prefix of feature `support_agent` on claude-sonnet-4-6"
        ),
        "nightly_digest": "Send feature `nightly_digest` on gpt-4o through the batch API",
        "nightly_report": "Send feature `nightly_report` on gpt-4.1 through the batch API",
        "summarize_thread": (
            "Cap the output of feature `summarize_thread` on claude-sonnet-4-6 at 768 tokens"
        ),
        "faq_answer": "Cache responses to repeated requests of feature `faq_answer` on gpt-4o",
        "kb_lookup": ("Cache responses to repeated requests of feature `kb_lookup` on gpt-4o-mini"),
        "extract_invoice": "Fix the failing calls of feature `extract_invoice` on gpt-4.1",
        "legacy_tagging": (
            "Replace deprecated command-light with command-r in feature `legacy_tagging`"
        ),
    }
    for rec in full.recommendations:
        assert 1 <= len(rec.steps) <= 4, rec.kind
        assert 0 < rec.confidence <= 1, rec.kind


def test_sure_kinds_are_more_confident_than_guesses(full: OptimizationReport) -> None:
    confidence = {r.feature: r.confidence for r in full.recommendations}
    assert confidence["extract_invoice"] > confidence["classify_ticket"]
    assert confidence["classify_ticket"] > confidence["summarize_thread"]
    assert confidence["legacy_tagging"] > confidence["support_agent"]
    # Measured caching (prefix hashes) against an upper bound (an assumed prefix).
    assert confidence["support_agent"] > confidence["contract_review"]
    # No end user at all against a schedule inferred from the hours.
    assert confidence["nightly_digest"] > confidence["nightly_report"]


def test_min_monthly_savings_filters_and_the_total_follows(
    rollups: list[DailyRollup], full: OptimizationReport
) -> None:
    kept = recommend(rollups, PERIOD, min_monthly_savings_usd=4.0)
    assert {r.feature for r in kept.recommendations} == {
        "support_agent",
        "route_email",
        "summarize_thread",
        "faq_answer",
    }
    assert kept.total_monthly_savings_usd == pytest.approx(
        sum(r.monthly_savings_usd for r in kept.recommendations), abs=1e-9
    )
    # The threshold is inclusive.
    threshold = full.recommendations[2].monthly_savings_usd
    assert len(recommend(rollups, PERIOD, min_monthly_savings_usd=threshold).recommendations) == 3
    assert recommend(rollups, PERIOD, min_monthly_savings_usd=1_000.0).recommendations == []
    assert (
        recommend(rollups, PERIOD, min_monthly_savings_usd=1_000.0).total_monthly_savings_usd == 0
    )


def test_only_the_period_counts_and_its_days_set_the_month(
    workspace: SyntheticWorkspace, rollups: list[DailyRollup]
) -> None:
    last_10 = period("2026-11-11", "2026-11-20")
    rec = next(
        r for r in recommend(rollups, last_10).recommendations if r.feature == "classify_ticket"
    )
    at = datetime(2026, 11, 20, tzinfo=UTC)
    current = pricing.model_prices("openai", "gpt-4o", at)
    target = pricing.model_prices("openai", "gpt-5-nano", at)
    saved = Decimal(0)
    for r in workspace.records:
        if r.feature == "classify_ticket" and r.day >= "2026-11-11":
            tokens = (r.input_tokens, r.cached_input_tokens, r.output_tokens)
            saved += current.cost(*tokens) - target.cost(*tokens)
    assert rec.evidence["days"] == 10
    assert rec.monthly_savings_usd == round(float(saved / 10 * 30), 2)


def test_failed_calls_priced_exactly_from_a_hand_made_rollup() -> None:
    found = recommend([failing()], period("2026-11-20", "2026-11-20"))
    assert len(found.recommendations) == 1
    rec = found.recommendations[0]
    assert rec.kind == "failed_calls"
    assert rec.title == "Fix the failing calls of feature `extract` on gpt-4o"
    # $5 wasted in one day: $150 in a 30-day month.
    assert (rec.monthly_savings_usd, found.total_monthly_savings_usd) == (150.0, 150.0)
    assert rec.evidence["error_share"] == 0.1
    assert rec.evidence["errors"] == 10
    assert "10 of the 100 calls of feature `extract` (10.0%) failed" in rec.detail
    assert rec.confidence == BASE_CONFIDENCE["failed_calls"]
    assert rec.target_model is None


def test_few_calls_lower_the_confidence() -> None:
    found = recommend(
        [failing(requests=40, errors=4, output_tokens=8_000)], period("2026-11-20", "2026-11-20")
    )
    (rec,) = found.recommendations
    assert rec.confidence == round(BASE_CONFIDENCE["failed_calls"] * LOW_VOLUME_FACTOR, 2) == 0.68


def test_a_rule_that_saves_nothing_recommends_nothing() -> None:
    # Errors above the threshold but nothing spent on them: nothing to save.
    free = failing(error_cost_nanousd=0)
    assert recommend([free], period("2026-11-20", "2026-11-20")).recommendations == []


def test_a_model_unknown_to_the_price_table_is_listed_not_priced() -> None:
    ts = datetime(2026, 11, 20, 9, tzinfo=UTC)
    records = [
        usage_record(
            ts=ts + timedelta(minutes=n),
            provider="acme",
            model="acme-private-llm",
            feature="summarize",
            status="error",  # would trip the failed-calls rule if it could be priced
            input_tokens=5000,
            output_tokens=5,
        )
        for n in range(7)
    ]
    rows = list(accumulate(records).daily.values())
    assert rows[0].unpriced_requests == 7
    found = recommend([*rows, failing()], period("2026-11-20", "2026-11-20"))
    assert found.unknown_models == [
        UnknownModel(provider="acme", model="acme-private-llm", requests=7)
    ]
    assert [r.model for r in found.recommendations] == ["gpt-4o"]


def test_empty_input_recommends_nothing() -> None:
    found = recommend([], PERIOD)
    assert (found.recommendations, found.total_monthly_savings_usd) == ([], 0.0)
    assert found.unknown_models == []
    assert found.period == PERIOD


def test_results_are_the_same_whatever_the_order_of_the_rows(
    rollups: list[DailyRollup], full: OptimizationReport
) -> None:
    assert recommend(list(reversed(rollups)), PERIOD) == full
    assert OptimizationReport.model_validate_json(full.model_dump_json()) == full
