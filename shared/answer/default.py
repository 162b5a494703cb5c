"""The default answer writer: deterministic text from the findings, no network, no model.

It writes five kinds of answer, by the route triage chose (``Route.answer``):

- ``findings``: first the answer to what was asked, in its own terms (the latency, the
  tokens, the requests, the error rate, the top feature, the anomaly's day and driver, the
  savings; for each intent the question asks, in its order), then the spend of the period
  and its trend, what the question named, the top cost drivers, anomalies with their
  driver, the ranked recommendations with their monthly savings and total, and the calls it
  could not price. Every number in the text comes from the findings
  (``shared.answer.numbers`` checks that in the tests); the sections follow the intent
  (savings first for ``optimization``, anomalies first for ``anomaly``, the measures asked
  before the spend for ``usage_question``).
- ``reference``: a finding of the thread's earlier answer the question refers to ("#2",
  "why?"): a recommendation's evidence and steps, an anomaly's driver and the driver's
  calls that day against the days before.
- ``clarify``: the question is unclear: the two likeliest readings, asked back.
- ``onboarding``: the workspace has no usage data; how to send it (OpenTelemetry traces to
  ``otlp_ingest`` first, then the ``usage_ingest`` function, both record forms with an
  example each, the importers).
- ``help``: what Apex can answer, with example questions.

Money is written ``$1,840.25``, shares of cost and error rates as percentages with one
decimal, confidences as whole percentages, ``cost_change_pct`` / ``requests_change_pct`` as
given (they are percentages already), latencies in whole milliseconds.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Final

from shared.answer.writer import WrittenAnswer
from shared.limits import MAX_INGEST_BODY_BYTES, MAX_INGEST_RECORDS, size_text
from shared.models.dimensions import Dimension
from shared.models.findings import (
    Anomaly,
    Answer,
    BreakdownRow,
    DataReport,
    DriverDay,
    Findings,
    OptimizationReport,
    PricesBasis,
    Recommendation,
    ReferencedFinding,
    UnknownModel,
    UsageTotals,
    WhatIf,
)
from shared.models.period import DAYS_PER_MONTH, PeriodRange
from shared.models.triage import Intent, SavingsTarget

# usage_ingest's limits (DESIGN §2).
INGEST_MAX_RECORDS: Final = MAX_INGEST_RECORDS
INGEST_MAX_SIZE: Final = size_text(MAX_INGEST_BODY_BYTES)
TOP_ROWS: Final = 3
# Dimensions shown as cost drivers, in order; at most two of them.
_DRIVER_DIMENSIONS: Final[tuple[Dimension, ...]] = ("model", "feature", "provider", "user")

# The two record forms, describing the same call (a test checks they parse to one record).
EXAMPLE_TS: Final = datetime(2026, 6, 1, 9, 30, tzinfo=UTC)
_EXAMPLE_START_NS: Final = int(EXAMPLE_TS.timestamp()) * 1_000_000_000
EXAMPLE_OTEL_ATTRIBUTES: Final[dict[str, str | int]] = {
    "gen_ai.provider.name": "openai",
    "gen_ai.operation.name": "chat",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.response.model": "gpt-4o-mini",
    "gen_ai.usage.input_tokens": 1200,
    "gen_ai.usage.cache_read.input_tokens": 800,
    "gen_ai.usage.output_tokens": 150,
    "enduser.id": "user-42",
    "apex.feature": "support_chat",
}
EXAMPLE_OTEL: Final[dict[str, object]] = {
    "start_time_unix_nano": _EXAMPLE_START_NS,
    "end_time_unix_nano": _EXAMPLE_START_NS + 640_000_000,
    "attributes": EXAMPLE_OTEL_ATTRIBUTES,
}
EXAMPLE_PLAIN: Final[dict[str, object]] = {
    "id": "call-0001",
    "ts": EXAMPLE_TS.strftime("%Y-%m-%dT%H:%M:%SZ"),
    "provider": "openai",
    "model": "gpt-4o-mini",
    "input_tokens": 1200,
    "cached_input_tokens": 800,
    "output_tokens": 150,
    "latency_ms": 640,
    "feature": "support_chat",
    "user": "user-42",
    "status": "ok",
}

# --- formatting -----------------------------------------------------------------------


def usd(amount: float) -> str:
    """``$1,840.25``; a negative amount ``-$12.50``."""
    sign = "-" if amount < 0 else ""
    return f"{sign}${abs(amount):,.2f}"


def _count(value: int) -> str:
    return f"{value:,}"


def _share(fraction: float) -> str:
    return f"{fraction * 100:.1f}%"


def _change(pct: float) -> str:
    return f"{pct:+.1f}%"


def _ms(value: float) -> str:
    return f"{value:,.0f} ms"


def _moment(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC")


def period_text(period: PeriodRange) -> str:
    """``2026-10-22 to 2026-11-20`` (whole days, end inclusive), else to the minute."""
    if period.start.time() == time.min and period.end.time() == time.min:
        last = (period.end - timedelta(days=1)).date()
        if last == period.start.date():
            return last.isoformat()
        return f"{period.start.date().isoformat()} to {last.isoformat()}"
    return f"{_moment(period.start)} to {_moment(period.end)}"


def _code(name: str) -> str:
    return f"`{name}`"


# --- the findings answer --------------------------------------------------------------


def _headline(data: DataReport, scope: str | None = None) -> str:
    totals, trend = data.totals, data.trend
    when = period_text(data.period)
    if totals.requests == 0:
        return f"No LLM calls were recorded for {when}."
    on = f" on {scope}" if scope else ""
    lines = [
        f"**Spend{on} for {when}: {usd(totals.cost_usd)}**{_at_your_prices(data.prices)} over "
        f"{_count(totals.requests)} requests."
    ]
    before = f"the previous period ({period_text(trend.previous_period)})"
    if trend.cost_change_pct is None:
        lines.append(f"There was no priced spend in {before}.")
    elif trend.cost_change_usd == 0:
        lines.append(f"That is the same as {before}, {usd(trend.previous_cost_usd)}.")
    else:
        direction = "up" if trend.cost_change_usd > 0 else "down"
        lines.append(
            f"That is {direction} {usd(abs(trend.cost_change_usd))} "
            f"({_change(trend.cost_change_pct)}) on {before}, "
            f"{usd(trend.previous_cost_usd)}."
        )
    if trend.requests_change_pct is not None:
        lines[-1] += f" Requests: {_change(trend.requests_change_pct)}."
    return " ".join(lines)


def _usage(data: DataReport) -> str:
    totals = data.totals
    parts = [
        f"Tokens: {_count(totals.input_tokens)} input "
        f"({_count(totals.cached_input_tokens)} read from cache), "
        f"{_count(totals.output_tokens)} output."
    ]
    if totals.latency_p50_ms is not None and totals.latency_p95_ms is not None:
        parts.append(
            f"Latency: p50 {_ms(totals.latency_p50_ms)}, p95 {_ms(totals.latency_p95_ms)}."
        )
    parts.append(f"Errors: {_count(totals.errors)} ({_share(totals.error_rate)} of requests).")
    return " ".join(parts)


def _row_summary(row: BreakdownRow) -> str:
    text = f"{usd(row.cost_usd)} ({_share(row.share_of_cost)} of spend), "
    text += f"{_count(row.requests)} requests"
    if row.unpriced_requests:
        text += f" ({_count(row.unpriced_requests)} not priced)"
    text += f", {_count(row.errors)} errors ({_share(row.error_rate)})"
    if row.latency_p50_ms is not None and row.latency_p95_ms is not None:
        text += f", latency p50 {_ms(row.latency_p50_ms)}, p95 {_ms(row.latency_p95_ms)}"
    return text


def _asked_about(findings: Findings, data: DataReport) -> str | None:
    entities = findings.triage.entities
    # A what-if's target is a model to price, not one the usage ran on.
    target = entities.what_if.model if entities.what_if else None
    wanted: list[tuple[Dimension, str]] = [
        *(("model", m.name) for m in entities.models if m.name != target),
        *(("feature", f.name) for f in entities.features),
        *(("provider", p.name) for p in entities.providers),
    ]
    lines = []
    for dimension, name in wanted:
        rows = data.breakdown.get(dimension)
        if rows is None:
            continue
        row = next((r for r in rows if r.key == name), None)
        if row is None:
            lines.append(f"- {dimension} {_code(name)}: no calls in this period.")
        else:
            lines.append(f"- {dimension} {_code(name)}: {_row_summary(row)}.")
    return "\n".join(lines) if lines else None


def _drivers(data: DataReport, asked: Sequence[Dimension]) -> str | None:
    """The top rows of two breakdowns, or of every one the question named ("by user")."""
    named = [d for d in asked if d in _DRIVER_DIMENSIONS]
    shown = max(2, len(named))
    lines = []
    for dimension in [*named, *(d for d in _DRIVER_DIMENSIONS if d not in named)]:
        rows = [row for row in data.breakdown.get(dimension, []) if row.cost_usd > 0]
        if not rows:
            continue
        top = sorted(rows, key=lambda r: (-r.cost_usd, r.key))[:TOP_ROWS]
        items = ", ".join(
            f"{_code(r.key)} {usd(r.cost_usd)} ({_share(r.share_of_cost)})" for r in top
        )
        scope = f" (top {len(top)} of {len(rows)})" if len(rows) > len(top) else ""
        lines.append(f"- By {dimension}{scope}: {items}.")
        if len(lines) == shown:
            break
    if not lines:
        return None
    return "**Top cost drivers**\n" + "\n".join(lines)


def _anomaly_line(anomaly: Anomaly) -> str:
    driver = anomaly.driver
    feature = f", feature {_code(driver.feature)}" if driver.feature else ""
    return (
        f"- **{anomaly.day}**: {usd(anomaly.cost_usd)}, {anomaly.ratio:.1f} times the rolling "
        f"median of {usd(anomaly.rolling_median_usd)}. Driver: {_code(driver.model)} "
        f"({driver.provider}){feature}, {usd(driver.cost_usd)} that day against a median of "
        f"{usd(driver.rolling_median_usd)} (+{usd(driver.increase_usd)})."
    )


def _anomalies(data: DataReport) -> str | None:
    if data.totals.requests == 0:
        return None
    if not data.anomalies:
        return "No spend anomalies: no day was far above the rolling median of the days before."
    return "**Anomalies**\n" + "\n".join(_anomaly_line(a) for a in data.anomalies)


def _recommendation_line(rank: int, rec: Recommendation) -> str:
    # The detail shows the numbers behind the saving; the evidence travels in the answer's
    # recommendations.
    return (
        f"{rank}. **{rec.title}**: {_savings_claim(rec)} "
        f"({_basis_and_confidence(rec)}). {rec.detail}"
    )


def _savings_claim(rec: Recommendation) -> str:
    """A measured saving is stated; an upper bound is the most it would save (DESIGN §8)."""
    amount = f"{usd(rec.monthly_savings_usd)}/month"
    return amount if rec.basis == "measured" else f"up to {amount}"


def _basis_and_confidence(rec: Recommendation) -> str:
    basis = "measured" if rec.basis == "measured" else "upper bound"
    return f"{basis}, confidence {rec.confidence * 100:.0f}%"


def _recommendations(report: OptimizationReport) -> str:
    if not report.recommendations:
        return (
            "**Recommendations**: none. No check (cheaper model, prompt caching, batch API, "
            "shorter outputs, response cache, failed calls, deprecated models) found savings "
            "in this period."
        )
    lines = [
        f"**Recommendations**, {usd(report.total_monthly_savings_usd)}/month in total"
        f"{_at_your_prices(report.prices)}, largest first:"
    ]
    lines += [_recommendation_line(i, r) for i, r in enumerate(report.recommendations, 1)]
    return "\n".join(lines)


def _at_your_prices(prices: PricesBasis) -> str:
    """Said wherever a cost is at the workspace's own prices (``PUT /{ws}/prices``)."""
    return " at your prices" if prices == "workspace" else ""


def _what_if_lead(report: OptimizationReport) -> str | None:
    """The what-if's answer: the period's tokens on the target model, against as they ran."""
    unpriced = report.what_if_unpriced
    if unpriced is not None:
        scope = _code(unpriced.feature) if unpriced.feature else "your usage"
        return (
            f"**Apex cannot price {_code(unpriced.model)}**: neither the price table nor your "
            f"workspace's prices know it, so it cannot say what {scope} would have cost on it. "
            "An admin can price it with PUT /{workspace}/prices (docs/prices.md)."
        )
    what = report.what_if
    if what is None:
        return None
    when = period_text(report.period)
    scope = _code(what.feature) if what.feature else "your usage"
    if what.requests == 0:
        return f"**{_capital(scope)} had no calls from {when} to reprice on {_code(what.model)}.**"
    prices = "at your prices" if what.prices == "workspace" else "at list prices"
    if what.difference_usd == 0:
        change = "the same"
    else:
        direction = "less" if what.difference_usd < 0 else "more"
        pct = what.difference_pct
        share = f" ({abs(pct):.1f}%)" if pct is not None else ""
        change = f"{usd(abs(what.difference_usd))}{share} {direction}"
    return (
        f"**On {_code(what.model)}, {scope} would have cost about {usd(what.what_if_cost_usd)} "
        f"from {when}** ({prices}), against {usd(what.current_cost_usd)} as it ran: {change}."
    )


def _per_mtok(price: float) -> str:
    """A price per million tokens as the table gives it (``$0.075``, not ``$0.08``)."""
    return usd(price) if round(price, 2) == price else f"${price:,.6g}"


def _what_if_section(what: WhatIf) -> str:
    """The what-if's numbers per source model, and its caveat (never left out)."""
    prices = "your prices" if what.prices == "workspace" else "list prices"
    lines = [
        f"**What-if on {_code(what.model)}** ({what.provider}, {prices}: "
        f"{_per_mtok(what.input_usd_per_mtok)} input, {_per_mtok(what.cached_input_usd_per_mtok)} "
        f"cached input, {_per_mtok(what.output_usd_per_mtok)} output per million tokens):"
    ]
    for source in what.sources:
        unpriced = (
            f"; {_count(source.unpriced_requests)} of its requests are not priced as they ran"
            if source.unpriced_requests
            else ""
        )
        lines.append(
            f"- {_code(source.model)} ({source.provider}): {_count(source.requests)} requests, "
            f"{_count(source.input_tokens)} input tokens ({_count(source.cached_input_tokens)} "
            f"cached), {_count(source.output_tokens)} output: {usd(source.current_cost_usd)} as "
            f"it ran, {usd(source.what_if_cost_usd)} on {_code(what.model)}{unpriced}."
        )
    lines.append(f"_{what.caveat}_")
    return "\n".join(lines)


def _monthly_spend(data: DataReport) -> float:
    days = data.period.duration / timedelta(days=1)
    return data.totals.cost_usd / days * DAYS_PER_MONTH


def _target(target: SavingsTarget, report: OptimizationReport, data: DataReport | None) -> str:
    """Whether the savings reach the question's target; says so without new numbers."""
    total = report.total_monthly_savings_usd
    reached: bool | None = None
    if target.kind == "amount" and target.monthly_usd is not None:
        reached = total >= target.monthly_usd
    elif data is not None and data.totals.cost_usd > 0:
        spend = _monthly_spend(data)
        if target.kind == "percent" and target.percent is not None:
            reached = total >= spend * target.percent / 100
        elif target.kind == "budget" and target.monthly_usd is not None:
            reached = spend - total <= target.monthly_usd
    if reached is None:
        return f'These savings cannot be compared with your target ("{target.phrase}").'
    verdict = "reach" if reached else "fall short of"
    return f'Together, these savings {verdict} your target ("{target.phrase}").'


def _unpriced(findings: Findings) -> str | None:
    unknown: dict[tuple[str, str], UnknownModel] = {}
    for report in (findings.data, findings.optimization):
        for model in report.unknown_models if report is not None else ():
            unknown.setdefault((model.provider, model.model), model)
    unpriced = findings.data.totals.unpriced_requests if findings.data is not None else 0
    if not unknown and not unpriced:
        return None
    names = "; ".join(
        f"{_code(m.model)} ({m.provider}, {_count(m.requests)} requests)" for m in unknown.values()
    )
    calls = f"{_count(unpriced)} requests went to models" if unpriced else "Some models"
    which = f": {names}" if names else ""
    return (
        f"**Not priced**: {calls} the price table does not know{which}. They are counted, "
        "not priced: the spend and savings above leave them out."
    )


# --- the first sentences: the question's own answer --------------------------------------

# Ranking words: "which feature costs the most", "top models", "biggest spender".
_PERCENTILE: Final = re.compile(r"\bp(?P<p>[0-9]{2,3}(?:\.[0-9])?)\b", re.IGNORECASE)
_MEASURED_PERCENTILES: Final = ("50", "95")


def _filtered_scope(findings: Findings) -> str | None:
    """The workspace's own models, features and providers the question named: the data
    agent measured only them (``UsageFilters``), so the totals are theirs."""
    entities = findings.triage.entities
    # A what-if's target is priced, not measured (the data agent does not filter by it).
    target = entities.what_if.model if entities.what_if else None
    models = [_code(m.name) for m in entities.models if m.known and m.name != target]
    features = [_code(f.name) for f in entities.features if f.known]
    providers = [_code(p.name) for p in entities.providers if p.known]
    parts = []
    if models:
        parts.append(_names(models))
    if features:
        parts.append(("feature " if len(features) == 1 else "features ") + _names(features))
    if providers:
        parts.append(("provider " if len(providers) == 1 else "providers ") + _names(providers))
    return " in ".join(parts) if parts else None


def _names(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _provider_row(findings: Findings, data: DataReport) -> tuple[str, BreakdownRow | None] | None:
    """A provider the question named that the workspace does not know by that name (known
    ones are a filter): its breakdown row, if any."""
    providers = [p for p in findings.triage.entities.providers if not p.known]
    if not providers:
        return None
    name = providers[0].name
    row = next((r for r in data.breakdown.get("provider", []) if r.key == name), None)
    return name, row


def _ranked(findings: Findings) -> Dimension | None:
    """The breakdown the question ranks ("which feature costs the most", "top models")."""
    return next((d for d in findings.triage.entities.group_by if d in _DRIVER_DIMENSIONS), None)


def _cost_lead(findings: Findings, data: DataReport) -> str:
    when = period_text(data.period)
    ranked = _ranked(findings)
    rows = [r for r in data.breakdown.get(ranked, []) if r.cost_usd > 0] if ranked else []
    if rows:
        top = max(rows, key=lambda r: (r.cost_usd, r.key))
        return (
            f"**{_code(top.key)} cost the most from {when}: {usd(top.cost_usd)}** "
            f"({_share(top.share_of_cost)} of spend, {_count(top.requests)} requests)."
        )
    provider = _provider_row(findings, data)
    if provider is not None and _filtered_scope(findings) is None:
        name, row = provider
        if row is None:
            return f"**Provider {_code(name)} had no calls from {when}.**"
        return (
            f"**Provider {_code(name)} cost {usd(row.cost_usd)} from {when}** "
            f"({_share(row.share_of_cost)} of spend, {_count(row.requests)} requests)."
        )
    return _headline(data, _filtered_scope(findings))


def _subject(findings: Findings) -> str:
    scope = _filtered_scope(findings)
    provider = _provider_row(findings, data) if (data := findings.data) else None
    if scope is None and provider is not None:
        return f"provider {_code(provider[0])}"
    return scope or "your workspace"


def _usage_lead(findings: Findings, data: DataReport) -> str:
    """One sentence per measure asked, in the order asked (requests and tokens if none)."""
    totals, when = data.totals, period_text(data.period)
    subject = _subject(findings)
    source = totals
    provider = _provider_row(findings, data)
    if _filtered_scope(findings) is None and provider is not None and provider[1] is not None:
        source = provider[1]
    ranked = _ranked(findings)
    rows = [r for r in data.breakdown.get(ranked, []) if r.requests > 0] if ranked else []
    sentences = []
    if rows:
        top = max(rows, key=lambda r: (r.requests, r.key))
        sentences.append(
            f"**{_code(top.key)} had the most requests from {when}: "
            f"{_count(top.requests)} of {_count(totals.requests)}.**"
        )
    metrics = [m for m in findings.triage.entities.metrics if m != "cost"] or (
        [] if rows else ["requests", "tokens"]
    )
    for metric in metrics:
        sentences.append(_metric_sentence(metric, subject, source, when, findings.question))
    return " ".join(sentences)


def _metric_sentence(
    metric: str, subject: str, totals: UsageTotals, when: str, question: str
) -> str:
    if metric == "latency":
        if totals.latency_p50_ms is None or totals.latency_p95_ms is None:
            return f"**No call of {subject} reported a latency from {when}.**"
        asked = [m["p"] for m in _PERCENTILE.finditer(question)]
        unmeasured = [p for p in asked if p not in _MEASURED_PERCENTILES]
        lead = (
            f"**The p95 latency of {subject} was {_ms(totals.latency_p95_ms)} from {when}** "
            f"(p50 {_ms(totals.latency_p50_ms)})."
        )
        if unmeasured:
            lead += (
                f" Apex keeps p50 and p95 only, not p{unmeasured[0]}: the latency histograms "
                "of the rollups give no finer tail."
            )
        return lead
    if metric == "tokens":
        return (
            f"**{_capital(subject)} used {_count(totals.input_tokens)} input tokens "
            f"({_count(totals.cached_input_tokens)} read from cache) and "
            f"{_count(totals.output_tokens)} output tokens from {when}.**"
        )
    if metric == "errors":
        return (
            f"**The error rate of {subject} was {_share(totals.error_rate)} from {when}**: "
            f"{_count(totals.errors)} failed calls of {_count(totals.requests)}."
        )
    if metric == "cache":
        return (
            f"**{_capital(subject)} read {_count(totals.cached_input_tokens)} of its "
            f"{_count(totals.input_tokens)} input tokens from the prompt cache from {when}.**"
        )
    return f"**{_capital(subject)} made {_count(totals.requests)} requests from {when}.**"


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:] if not text.startswith("`") else text


def _lead_anomaly(data: DataReport) -> Anomaly | None:
    return max(data.anomalies, key=lambda a: (a.cost_usd, a.day)) if data.anomalies else None


def _anomaly_lead(data: DataReport) -> str:
    anomaly = _lead_anomaly(data)
    if anomaly is None:
        return (
            f"**No day's spend stood out from {period_text(data.period)}**: none was far above "
            "the rolling median of the days before it."
        )
    driver = anomaly.driver
    feature = f" in feature {_code(driver.feature)}" if driver.feature else ""
    more = ""
    if len(data.anomalies) > 1:
        more = f" It is the costliest of {len(data.anomalies)} such days (listed below)."
    return (
        f"**Spend spiked on {anomaly.day}: {usd(anomaly.cost_usd)}, {anomaly.ratio:.1f} times "
        f"the rolling median of {usd(anomaly.rolling_median_usd)}, driven by "
        f"{_code(driver.model)} ({driver.provider}){feature}** "
        f"(+{usd(driver.increase_usd)} on its own median).{more}"
    )


def _savings_lead(report: OptimizationReport) -> str:
    if not report.recommendations:
        return f"**Apex found no savings for {period_text(report.period)}.**"
    top = report.recommendations[0]
    count = len(report.recommendations)
    which = "one recommendation" if count == 1 else f"{count} recommendations"
    return (
        f"**You could save {usd(report.total_monthly_savings_usd)}/month** with {which}; "
        f"the largest: {top.title} ({_savings_claim(top)})."
    )


def answer_lead(findings: Findings) -> str | None:
    """The first sentences: each intent the question asks, answered in its own terms, in
    the order asked."""
    data, optimization = findings.data, findings.optimization
    if data is not None and data.totals.requests == 0:
        return None  # the headline says there were no calls
    # A what-if names what it asks: its answer comes first.
    sentences: list[str | None] = [_what_if_lead(optimization)] if optimization else []
    for intent in findings.triage.entities.intents or [findings.triage.intent]:
        if intent is Intent.COST_ANALYSIS and data is not None:
            sentences.append(_cost_lead(findings, data))
        elif intent is Intent.USAGE_QUESTION and data is not None:
            sentences.append(_usage_lead(findings, data))
        elif intent is Intent.ANOMALY and data is not None:
            sentences.append(_anomaly_lead(data))
        elif intent is Intent.OPTIMIZATION and optimization is not None:
            sentences.append(_savings_lead(optimization))
    return " ".join(dict.fromkeys(s for s in sentences if s)) or None


def findings_text(findings: Findings) -> str:
    """The ``findings`` answer: what the agents measured and recommend, in Markdown."""
    data, optimization = findings.data, findings.optimization
    intent = findings.triage.intent
    sections: dict[str, str | None] = {}
    lead = answer_lead(findings)
    if data is not None:
        headline = _headline(data, _filtered_scope(findings))
        if lead is None or headline in lead:
            sections["headline"] = lead or headline
        elif intent is Intent.USAGE_QUESTION:
            # The measures asked first; the spend only after them.
            sections["headline"] = lead
            sections["spend"] = headline
        else:
            sections["headline"] = f"{lead} {headline}"
        sections["asked"] = _asked_about(findings, data)
        if intent is Intent.USAGE_QUESTION and data.totals.requests:
            sections["usage"] = _usage(data)
        sections["drivers"] = _drivers(data, findings.triage.entities.group_by)
        sections["anomalies"] = _anomalies(data)
    elif lead is not None:
        sections["headline"] = lead
    if optimization is not None:
        if optimization.what_if is not None:
            sections["what_if"] = _what_if_section(optimization.what_if)
        sections["recommendations"] = _recommendations(optimization)
        target = findings.triage.entities.savings_target
        if target is not None and optimization.recommendations:
            sections["target"] = _target(target, optimization, data)
    sections["unpriced"] = _unpriced(findings)
    if data is None and optimization is None:
        sections["headline"] = "The agents produced no measurements for this question."
    order = {
        Intent.OPTIMIZATION: ("headline", "asked", "recommendations", "target", "drivers"),
        Intent.ANOMALY: ("headline", "asked", "anomalies", "drivers"),
        Intent.USAGE_QUESTION: ("headline", "usage", "asked", "spend", "drivers"),
    }.get(intent, ("headline", "asked", "usage", "drivers"))
    order = (order[0], "what_if", *order[1:])
    order += tuple(name for name in sections if name not in order)
    return "\n\n".join(text for name in order if (text := sections.get(name)))


# --- onboarding and help --------------------------------------------------------------


def _json_block(record: dict[str, object]) -> str:
    return "```json\n" + json.dumps(record, indent=2) + "\n```"


def onboarding_text(ingest_url: str | None = None, otlp_url: str | None = None) -> str:
    """How to send usage data: OpenTelemetry traces first (what instrumented apps already
    emit), then the ingest function, both record forms, the importers."""
    where = f" at {ingest_url}" if ingest_url else ""
    url = ingest_url or "$USAGE_INGEST_URL"
    otlp_where = f" at {otlp_url}" if otlp_url else ""
    otlp = otlp_url or "$OTLP_INGEST_URL"
    otel_attributes = ", ".join(_code(name) for name in EXAMPLE_OTEL_ATTRIBUTES)
    return f"""\
There is no usage data in this workspace yet, so there is nothing to measure: Apex needs \
one usage record per LLM call. Here is how to send them.

**1. Already tracing with OpenTelemetry? Export the traces to the `otlp_ingest` \
function{otlp_where}.** Any OTLP/HTTP exporter works (protobuf or JSON, gzip or not): the \
OpenTelemetry SDKs with instrumentations such as `opentelemetry-instrumentation-openai-v2`, \
or an OpenTelemetry Collector's `otlphttp` exporter. Ask an admin for an ingest API key \
(`POST /<workspace>/keys` on the `workspaces` function with \
`{{"name": "otel", "scope": "ingest"}}`; the secret is shown once) and set:

```bash
export OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="{otlp}/v1/traces"
export OTEL_EXPORTER_OTLP_HEADERS="Authorization=Bearer%20$APEX_INGEST_KEY"
export OTEL_SERVICE_NAME=checkout   # the feature of spans without apex.feature
```

Each span with GenAI token counts (`gen_ai.usage.input_tokens` and \
`gen_ai.usage.output_tokens`, or the older `prompt_tokens` / `completion_tokens`) becomes \
a usage record, and so does a failed call with its model; other spans are skipped. The \
feature is the span's `apex.feature`, else the service's `service.name`. A GenAI span \
Apex cannot use is counted in the response's `partial_success`, with the reason.

**2. Or POST the records to the `usage_ingest` function{where}**, with your Firebase ID token \
in `Authorization: Bearer <ID token>`. The body is a JSON array of records \
(`Content-Type: application/json`) or NDJSON, one record per line \
(`Content-Type: application/x-ndjson`): at most {INGEST_MAX_RECORDS:,} records and \
{INGEST_MAX_SIZE} per request. The reply is `202 {{"accepted": ..., "rejected": \
[{{"index": ..., "error": ...}}]}}`; each rejected record's error names the field at fault. \
The records go to your workspace, and a record sent twice counts once (its `id`, or else a \
hash of its content).

```bash
curl -X POST "{url}" \\
  -H "Authorization: Bearer $FIREBASE_ID_TOKEN" \\
  -H "Content-Type: application/x-ndjson" \\
  --data-binary @usage.ndjson
```

**3. Each record takes either form.**

OpenTelemetry: a span with the GenAI semantic-convention attributes ({otel_attributes}; \
also `error.type` for a failed call). Latency is end minus start. \
`gen_ai.usage.input_tokens` includes the cached tokens; \
`gen_ai.usage.cache_read.input_tokens` says how many were read from cache. OTLP/JSON's \
attribute list (`[{{"key": ..., "value": {{"intValue": ...}}}}]`) is accepted too.

{_json_block(EXAMPLE_OTEL)}

Plain: `model`, `input_tokens` (including the cached ones), `output_tokens` and `ts` \
(ISO 8601; no offset means UTC) are required; `id`, `provider`, `cached_input_tokens`, \
`latency_ms`, `feature`, `user`, `status` (`ok` or `error`), `request_hash` (to find \
repeated identical requests) and `batch` (the call went through a batch API) are optional.

{_json_block(EXAMPLE_PLAIN)}

Tag each call with its feature (`feature` / `apex.feature`) and end user (`user` / \
`enduser.id`): spend is broken down by both, and savings are found per feature.

**4. Or import a provider's export** with the importers in `shared/ingest/`:
- AWS Bedrock: turn on model invocation logging to S3; \
`shared.ingest.bedrock.import_invocation_logs(s3_client, bucket, prefix)` reads the logs \
(`.json.gz` or `.json`) under the prefix. Put the feature in the request metadata \
(`apex.feature`).
- OpenAI: `shared.ingest.openai_export.import_usage_export(export, now=...)` reads pages of \
the organization usage API (`GET /v1/organization/usage/completions`, grouped by `model`); \
each project becomes a feature.

Once the records are in, ask again, for example "What did we spend last week?"."""


_HELP: Final = """\
Apex measures your team's LLM usage and finds ways to spend less. Ask about:

- **Spend**: what a period cost, by model, provider, feature, user or day, and the trend \
against the period before. "What did we spend on gpt-4o last week?"
- **Usage**: requests, tokens (input, cached, output), latency p50 and p95, error rates. \
"What was the p95 latency of summarize yesterday?"
- **Anomalies**: days whose spend was far above normal, and what drove them. \
"Why did costs spike on Tuesday?"
- **Savings**: ranked recommendations priced from the price table: a cheaper model, \
prompt caching, the batch API, shorter outputs, a response cache, failed and retried \
calls, deprecated models. "How can we cut our LLM bill by 30%?"
- **Sending usage data**: OpenTelemetry traces, the record formats, the ingest endpoint \
and the importers. \
"How do I send you my usage data?"

Answers are computed from your workspace's usage records and a maintained price table; \
a model the table does not know is reported as such, never priced at zero."""


def help_text(findings: Findings) -> str:
    """What Apex can answer, with example questions."""
    if findings.triage.route.data_sufficient:
        return _HELP
    return (
        _HELP + '\n\nThis workspace has no usage data yet: ask "How do I send usage data?" '
        "to get started."
    )


# --- answers from an earlier answer, and clarifying questions ------------------------------


def _evidence_value(key: str, value: float | int | str) -> str:
    if isinstance(value, str):
        return value
    if key.endswith("_usd_per_mtok"):
        return f"{usd(value)} per million tokens"
    if key.endswith("_usd"):
        return usd(value)
    if isinstance(value, int):
        return _count(value)
    return f"{value:,}"


def _evidence_name(key: str) -> str:
    """``input_usd_per_mtok`` -> "input price", ``repeat_cost_usd`` -> "repeat cost"."""
    return key.replace("_usd_per_mtok", "_price").removesuffix("_usd").replace("_", " ")


def _evidence(rec: Recommendation) -> str:
    lines = [
        f"- {_evidence_name(key)}: {_evidence_value(key, value)}"
        for key, value in rec.evidence.items()
    ]
    return "**The numbers behind it**\n" + "\n".join(lines)


def _steps(rec: Recommendation) -> str:
    return "**Steps**\n" + "\n".join(f"{i}. {step}" for i, step in enumerate(rec.steps, 1))


def _recommendation_answer(found: ReferencedFinding, rec: Recommendation) -> str:
    which = f"#{found.rank} of {found.of}, {rec.title}"
    when = f", from {period_text(found.period)}" if found.period is not None else ""
    if found.asks == "how":
        steps = "\n".join(f"{i}. {step}" for i, step in enumerate(rec.steps, 1))
        first = f"**To act on {which}** ({_savings_claim(rec)}), in this order:\n{steps}"
        return "\n\n".join([first, rec.detail, _evidence(rec)])
    saves = "saves" if rec.basis == "measured" else "would save"
    first = (
        f"**{which}, {saves} {_savings_claim(rec)}** ({_basis_and_confidence(rec)}{when}). "
        f"{rec.detail}"
    )
    parts = [first, _evidence(rec)]
    if found.asks == "more":
        parts.append(_steps(rec))
    return "\n\n".join(parts)


def _cause(driver_day: DriverDay) -> str | None:
    """Which of the driver's measures moved the most against the days before (words only:
    the numbers are in the sentence before)."""
    before_requests = driver_day.requests_per_day_before
    if driver_day.before.requests == 0:
        return (
            "It made no calls at all in the days before: a new workload, not a change of an "
            "old one."
        )
    ratios = {
        "more calls than usual": driver_day.that_day.requests / before_requests,
        "longer prompts": _ratio(
            driver_day.input_tokens_per_request, driver_day.input_tokens_per_request_before
        ),
        "longer answers": _ratio(
            driver_day.output_tokens_per_request, driver_day.output_tokens_per_request_before
        ),
    }
    cause, ratio = max(ratios.items(), key=lambda item: item[1])
    if ratio <= 1:
        return None
    return f"So the jump came mostly from {cause}."


def _ratio(now: float | None, before: float | None) -> float:
    return now / before if now is not None and before else 0.0


def _anomaly_answer(found: ReferencedFinding, anomaly: Anomaly) -> str:
    driver = anomaly.driver
    feature = f" in feature {_code(driver.feature)}" if driver.feature else ""
    first = (
        f"**Spend on {anomaly.day} was {usd(anomaly.cost_usd)}, {anomaly.ratio:.1f} times the "
        f"rolling median of {usd(anomaly.rolling_median_usd)}, because {_code(driver.model)} "
        f"({driver.provider}){feature} cost {usd(driver.cost_usd)} that day against a median "
        f"of {usd(driver.rolling_median_usd)} (+{usd(driver.increase_usd)}).**"
    )
    parts = [first]
    day = found.driver_day
    if day is not None:
        that = day.that_day
        calls = f"That day {_code(day.model)}{feature} made {_count(that.requests)} calls"
        if day.input_tokens_per_request is not None:
            calls += f" of {day.input_tokens_per_request:,} input tokens"
            if day.input_tokens_per_request_before is not None:
                calls += f" ({day.input_tokens_per_request_before:,} before)"
        if day.output_tokens_per_request is not None:
            calls += f" and {day.output_tokens_per_request:,} output tokens"
            if day.output_tokens_per_request_before is not None:
                calls += f" ({day.output_tokens_per_request_before:,} before)"
        calls += " on average"
        if day.before.requests:
            calls += (
                f", against {day.requests_per_day_before:,} calls a day over the "
                f"{day.days_before} days before"
            )
        calls += f"; {_count(that.errors)} of them failed."
        parts.append(calls)
        cause = _cause(day)
        if cause is not None:
            parts.append(cause)
    if found.of > 1:
        parts.append(f"It is #{found.rank} of the {found.of} anomalies of the earlier answer.")
    return " ".join(parts)


def reference_text(findings: Findings) -> str:
    """The answer to a question about a finding of the thread's earlier answer."""
    found = findings.references
    reference = findings.triage.entities.reference
    if len(found) == 1:
        item = found[0]
        if item.recommendation is not None:
            return _recommendation_answer(item, item.recommendation)
        if item.anomaly is not None:
            return _anomaly_answer(item, item.anomaly)
    kind = reference.kind if reference is not None else "recommendation"
    listed = reference.listed if reference is not None else 0
    phrase = f' ("{reference.phrase}")' if reference is not None else ""
    if listed == 0:
        return (
            f"The earlier answer in this thread had no {kind}s{phrase}, so there is none to "
            'explain. Ask for them first, for example "Where can we save?" or "Were there '
            'any spend spikes last month?".'
        )
    return (
        f"The earlier answer listed {listed} {kind}{'s' if listed > 1 else ''}, so there is no "
        f'such {kind}{phrase}. Ask about one of them by its number, for example "tell me more '
        'about #1".'
    )


def _reading(intent: Intent, findings: Findings) -> str:
    """One reading of an unclear question, in words, with what it named."""
    entities = findings.triage.entities
    names = [_code(m.name) for m in entities.models] + [_code(f.name) for f in entities.features]
    names += [_code(p.name) for p in entities.providers]
    scope = _names(names) if names else ""
    when = f" {entities.period.phrase}" if entities.period is not None else ""
    match intent:
        case Intent.COST_ANALYSIS:
            return f"what {scope or 'you'} {'cost' if scope else 'spent'}{when}"
        case Intent.USAGE_QUESTION:
            of = f" of {scope}" if scope else ""
            return f"the usage{of}{when} (requests, tokens, latency, errors)"
        case Intent.ANOMALY:
            of = f" on {scope}" if scope else ""
            return f"whether spend{of} spiked{when}, and why"
        case Intent.OPTIMIZATION:
            on = f" on {scope}" if scope else ""
            return f"how to spend less{on}{when}"
        case Intent.DATA_ONBOARDING:
            return "how to send your usage data to Apex"
        case _:
            return "what Apex can answer"


def clarify_text(findings: Findings) -> str:
    """An honest question back: the two likeliest readings, or the findings meant."""
    if len(findings.references) > 1:
        options = []
        for item in findings.references[:2]:
            if item.recommendation is not None:
                rec = item.recommendation
                options.append(f"#{item.rank}, {rec.title} ({usd(rec.monthly_savings_usd)}/month)")
            elif item.anomaly is not None:
                options.append(f"#{item.rank}, the spike on {item.anomaly.day}")
        more = len(findings.references) - 2
        rest = f" (or one of the {more} other matches)" if more > 0 else ""
        return (
            f"I'm not sure which one you mean. Did you mean {options[0]}, or {options[1]}{rest}? "
            'Ask again with its number, for example "tell me more about '
            f'#{findings.references[0].rank}".'
        )
    first, second = (findings.triage.entities.intents + [Intent.COST_ANALYSIS] * 2)[:2]
    return (
        f"I'm not sure what you mean. Did you mean {_reading(first, findings)}, or "
        f"{_reading(second, findings)}? Ask again in a few more words, for example "
        '"What did we spend last week?" or "How many tokens did we use last week?".'
    )


# --- the writer -----------------------------------------------------------------------


class DefaultWriter:
    """Writes every answer from the findings alone; ``ingest_url`` and ``otlp_url`` (the
    functions' URLs, when known) go in onboarding."""

    def __init__(self, *, ingest_url: str | None = None, otlp_url: str | None = None) -> None:
        self.ingest_url = ingest_url
        self.otlp_url = otlp_url

    def text(self, findings: Findings) -> str:
        kind = findings.triage.route.answer
        writers: dict[str, Callable[[Findings], str]] = {
            "findings": findings_text,
            "onboarding": lambda _: onboarding_text(self.ingest_url, self.otlp_url),
            "help": help_text,
            "reference": reference_text,
            "clarify": clarify_text,
        }
        return writers[kind](findings)

    def write(self, findings: Findings) -> WrittenAnswer:
        return WrittenAnswer(
            answer=Answer(text=self.text(findings), recommendations=recommendations(findings)),
            writer="default",
        )


def recommendations(findings: Findings) -> list[Recommendation]:
    """The answer's recommendations: the optimization report's, ranked as it ranks them; for
    an answer about an earlier recommendation, that one."""
    answer = findings.triage.route.answer
    if answer == "reference":
        return [f.recommendation for f in findings.references if f.recommendation is not None]
    if answer != "findings" or findings.optimization is None:
        return []
    return list(findings.optimization.recommendations)
