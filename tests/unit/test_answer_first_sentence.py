"""Answers lead with the question's own answer (issue 15 item 4): the first sentence, for
each intent and each kind of thing a question names, over findings computed from the
synthetic workspace (tests/support/findings); every number still comes from the findings.
"""

from __future__ import annotations

import re

import pytest

from shared.agents.data import driver_days
from shared.agents.triage.context import next_context, referenced
from shared.agents.triage.intent import analyze, decide_route
from shared.answer import DefaultWriter
from shared.answer.default import period_text, usd
from shared.answer.numbers import check_text
from shared.models.context import ThreadContext
from shared.models.findings import Findings
from shared.models.triage import TriageResponse
from shared.usage.rollups import DailyRollup
from tests.support.findings import (
    END,
    NOW,
    PERIOD,
    _rollups,
    data_report,
    manifest,
    optimization_report,
    synthetic_findings,
)

WHEN = period_text(PERIOD)


def answer(findings: Findings) -> str:
    text = DefaultWriter().write(findings).answer.text
    assert check_text(text, findings) == [], text
    return text


def first_sentence(text: str) -> str:
    """Up to the end of the first sentence (a bold lead may hold inner periods: 2.5)."""
    match = re.match(r"(.+?[.?!](?:\*\*)?)(?:\s|$)", text, re.S)
    assert match is not None, text
    return match.group(1)


def test_a_spend_question_leads_with_the_period_s_spend() -> None:
    findings = synthetic_findings("What did we spend on LLMs in the last 30 days?")
    assert findings.data is not None
    totals = findings.data.totals
    assert first_sentence(answer(findings)) == (
        f"**Spend for {WHEN}: {usd(totals.cost_usd)}** over {totals.requests:,} requests."
    )


@pytest.mark.parametrize(
    ("question", "scope"),
    [
        ("What did we spend on gpt-4o last week?", "`gpt-4o`"),
        ("How much did summarize_thread cost?", "feature `summarize_thread`"),
        ("What did anthropic cost us?", "provider `anthropic`"),
        ("Spend of gpt-4o on faq_answer?", "`gpt-4o` in feature `faq_answer`"),
    ],
)
def test_a_spend_question_naming_something_leads_with_its_spend(question: str, scope: str) -> None:
    findings = synthetic_findings(question)
    assert findings.data is not None
    totals = findings.data.totals  # the data agent measured only what was named
    assert answer(findings).startswith(
        f"**Spend on {scope} for {WHEN}: {usd(totals.cost_usd)}** over {totals.requests:,}"
    )


def test_a_provider_the_workspace_does_not_have_is_said_to_have_no_calls() -> None:
    findings = synthetic_findings("What did we spend on azure?")
    assert first_sentence(answer(findings)) == f"**Provider `azure` had no calls from {WHEN}.**"


@pytest.mark.parametrize("dimension", ["feature", "model", "provider"])
def test_which_costs_the_most_leads_with_the_top_row(dimension: str) -> None:
    findings = synthetic_findings(f"Which {dimension} costs the most?")
    assert findings.data is not None
    top = max(findings.data.breakdown[dimension], key=lambda r: r.cost_usd)  # type: ignore[index]
    assert answer(findings).startswith(
        f"**`{top.key}` cost the most from {WHEN}: {usd(top.cost_usd)}** "
        f"({top.share_of_cost * 100:.1f}% of spend, {top.requests:,} requests)."
    )


def test_a_latency_question_leads_with_the_latency() -> None:
    findings = synthetic_findings("What's the p95 latency for gpt-4o?")
    assert findings.data is not None
    totals = findings.data.totals
    text = answer(findings)
    assert first_sentence(text) == (
        f"**The p95 latency of `gpt-4o` was {totals.latency_p95_ms:,.0f} ms from {WHEN}** "
        f"(p50 {totals.latency_p50_ms:,.0f} ms)."
    )
    assert "Spend on" not in text.split("\n\n")[0]  # the spend comes later, if at all


def test_a_percentile_apex_does_not_keep_is_said_so() -> None:
    text = answer(synthetic_findings("What was the p99 latency of summarize_thread?"))
    assert first_sentence(text).startswith("**The p95 latency of feature `summarize_thread` was")
    assert "Apex keeps p50 and p95 only, not p99" in text.split("\n\n")[0]


def test_a_tokens_question_leads_with_the_tokens() -> None:
    findings = synthetic_findings("How many tokens did summarize_thread use yesterday?")
    assert findings.data is not None
    totals = findings.data.totals
    assert first_sentence(answer(findings)) == (
        f"**Feature `summarize_thread` used {totals.input_tokens:,} input tokens "
        f"({totals.cached_input_tokens:,} read from cache) and {totals.output_tokens:,} output "
        f"tokens from {WHEN}.**"
    )


def test_a_requests_question_leads_with_the_requests() -> None:
    findings = synthetic_findings("How many requests did we make?")
    assert findings.data is not None
    assert first_sentence(answer(findings)) == (
        f"**Your workspace made {findings.data.totals.requests:,} requests from {WHEN}.**"
    )


def test_an_error_rate_question_leads_with_the_error_rate() -> None:
    findings = synthetic_findings("What's the error rate of gpt-4.1?")
    assert findings.data is not None
    totals = findings.data.totals
    assert answer(findings).startswith(
        f"**The error rate of `gpt-4.1` was {totals.error_rate * 100:.1f}% from {WHEN}**: "
        f"{totals.errors:,} failed calls of {totals.requests:,}."
    )


def test_a_cache_question_leads_with_the_cached_tokens() -> None:
    findings = synthetic_findings("What's our cache hit rate?")
    assert findings.data is not None
    totals = findings.data.totals
    assert first_sentence(answer(findings)) == (
        f"**Your workspace read {totals.cached_input_tokens:,} of its {totals.input_tokens:,} "
        f"input tokens from the prompt cache from {WHEN}.**"
    )


def test_which_model_is_used_most_leads_with_the_top_model_by_requests() -> None:
    findings = synthetic_findings("Which models do we use the most?")
    assert findings.data is not None
    top = max(findings.data.breakdown["model"], key=lambda r: r.requests)
    assert first_sentence(answer(findings)) == (
        f"**`{top.key}` had the most requests from {WHEN}: {top.requests:,} of "
        f"{findings.data.totals.requests:,}.**"
    )


def test_an_anomaly_question_leads_with_the_day_and_its_driver() -> None:
    findings = synthetic_findings("Why did costs spike last week?")
    assert findings.data is not None
    (anomaly,) = findings.data.anomalies
    planted = manifest().anomaly
    driver = anomaly.driver
    assert answer(findings).startswith(
        f"**Spend spiked on {planted.day}: {usd(anomaly.cost_usd)}, {anomaly.ratio:.1f} times "
        f"the rolling median of {usd(anomaly.rolling_median_usd)}, driven by "
        f"`{planted.model}` ({driver.provider}) in feature `{planted.feature}`** "
        f"(+{usd(driver.increase_usd)} on its own median)."
    )


def test_an_anomaly_question_with_no_anomaly_says_no_day_stood_out() -> None:
    findings = synthetic_findings("Any anomalies?")
    assert findings.data is not None
    calm = findings.model_copy(update={"data": findings.data.model_copy(update={"anomalies": []})})
    assert first_sentence(answer(calm)) == (
        f"**No day's spend stood out from {WHEN}**: none was far above the rolling median of "
        "the days before it."
    )


def test_a_savings_question_leads_with_the_savings() -> None:
    findings = synthetic_findings("How can we cut our LLM bill by 30%?")
    report = findings.optimization
    assert report is not None
    top = report.recommendations[0]
    assert answer(findings).startswith(
        f"**You could save {usd(report.total_monthly_savings_usd)}/month** with "
        f"{len(report.recommendations)} recommendations; the largest: {top.title} "
        f"({usd(top.monthly_savings_usd)}/month)."
    )


def test_spend_and_savings_answers_the_spend_first_then_the_savings() -> None:
    findings = synthetic_findings("What did we spend last month, and where can we save?")
    assert findings.triage.entities.intents == ["cost_analysis", "optimization"]
    assert findings.data is not None
    assert findings.optimization is not None
    paragraph = answer(findings).split("\n\n")[0]
    assert paragraph.startswith(f"**Spend for {WHEN}: {usd(findings.data.totals.cost_usd)}**")
    assert f"**You could save {usd(findings.optimization.total_monthly_savings_usd)}/month**" in (
        paragraph
    )


def test_latency_and_savings_answers_the_latency_first() -> None:
    findings = synthetic_findings("What's the latency of gpt-4o, and how can we save on it?")
    assert findings.triage.entities.intents == ["usage_question", "optimization"]
    text = answer(findings)
    assert text.startswith("**The p95 latency of `gpt-4o` was")
    assert "**You could save " in text.split("\n\n")[0]


# --- answers about an earlier answer ----------------------------------------------------


def _context(question: str) -> ThreadContext:
    findings = synthetic_findings(question)
    rows_data = findings.data
    return next_context(
        None,
        run_id="earlier",
        question=question,
        triaged=findings.triage,
        data=rows_data,
        optimization=findings.optimization,
        driver_days=driver_days(_rows(), rows_data.anomalies) if rows_data else (),
    )


def _rows() -> list[DailyRollup]:
    rows, _ = _rollups(END, 7, 0)  # the rollups data_report() sums
    return rows


def _follow(question: str, context: ThreadContext) -> Findings:
    result = analyze(
        question,
        now=NOW,
        known_models={m for m in ("gpt-4o", "gpt-4.1", "claude-sonnet-4-6")},
        context=context,
    )
    triaged = TriageResponse.build(result, decide_route(result, has_usage_data=True))
    return Findings(question=question, triage=triaged, references=referenced(context, triaged))


def test_tell_me_more_about_2_leads_with_recommendation_2() -> None:
    context = _context("What did we spend last month, and where can we save?")
    findings = _follow("tell me more about #2", context)
    second = optimization_report().recommendations[1]
    text = answer(findings)
    assert first_sentence(text) == (
        f"**#2 of 7, {second.title}, saves {usd(second.monthly_savings_usd)}/month** (measured, "
        f"confidence {second.confidence * 100:.0f}%, from {WHEN})."
    )
    assert second.detail in text
    assert "**Steps**\n1. " + second.steps[0] in text
    assert DefaultWriter().write(findings).answer.recommendations == [second]


def test_how_after_a_recommendation_leads_with_its_steps() -> None:
    context = _context("How can we cut our LLM bill by 30%?")
    findings = _follow("how?", context)
    top = optimization_report().recommendations[0]
    text = answer(findings)
    assert text.startswith(f"**To act on #1 of 7, {top.title}** ({usd(top.monthly_savings_usd)}")
    assert text.split("\n")[1] == f"1. {top.steps[0]}"


def test_why_after_an_anomaly_leads_with_its_driver_and_that_day() -> None:
    context = _context("Why did costs spike last week?")
    findings = _follow("why?", context)
    (anomaly,) = data_report().anomalies
    driver = anomaly.driver
    [found] = findings.references
    day = found.driver_day
    assert day is not None
    text = answer(findings)
    assert first_sentence(text) == (
        f"**Spend on {anomaly.day} was {usd(anomaly.cost_usd)}, {anomaly.ratio:.1f} times the "
        f"rolling median of {usd(anomaly.rolling_median_usd)}, because `{driver.model}` "
        f"({driver.provider}) in feature `{driver.feature}` cost {usd(driver.cost_usd)} that "
        f"day against a median of {usd(driver.rolling_median_usd)} "
        f"(+{usd(driver.increase_usd)}).**"
    )
    assert f"made {day.that_day.requests:,} calls" in text


def test_a_reference_to_a_finding_the_answer_did_not_have_says_so() -> None:
    context = _context("How can we cut our LLM bill by 30%?")
    text = answer(_follow("tell me more about #9", context))
    assert first_sentence(text) == (
        'The earlier answer listed 7 recommendations, so there is no such recommendation ("#9").'
    )


def test_an_ambiguous_reference_asks_which_one() -> None:
    context = _context("How can we cut our LLM bill by 30%?")
    findings = _follow("the caching one", context)
    assert findings.triage.route.answer == "clarify"
    caching = [
        (rank, rec)
        for rank, rec in enumerate(optimization_report().recommendations, 1)
        if rec.kind in ("prompt_caching", "response_cache")
    ]
    (first_rank, first), (second_rank, second) = caching
    text = answer(findings)
    assert first_sentence(text) == "I'm not sure which one you mean."
    assert f"Did you mean #{first_rank}, {first.title}" in text
    assert f"or #{second_rank}, {second.title}" in text


def test_an_unclear_question_offers_the_two_likeliest_readings() -> None:
    findings = synthetic_findings("gpt-4o last week?")
    assert findings.triage.route.answer == "clarify"
    text = answer(findings)
    assert first_sentence(text) == "I'm not sure what you mean."
    assert "Did you mean what `gpt-4o` cost last week, or the usage of `gpt-4o` last week" in text
