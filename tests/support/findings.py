"""Findings computed from the synthetic workspace, for the answer writers' tests (the default
writer, its numbers check, and Gemini's).

``devstack.synthetic.generate`` gives the usage (with its planted inefficiencies and anomaly),
``accumulate`` the daily rollups, and the reports below sum them the way the data agent
reports them. Triage is the real triage.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any

from devstack.synthetic import Manifest, PlantedInefficiency, generate
from shared.agents.triage.intent import analyze, decide_route
from shared.models.dimensions import Dimension
from shared.models.findings import (
    Anomaly,
    AnomalyDriver,
    BreakdownRow,
    DataReport,
    Findings,
    OptimizationReport,
    Recommendation,
    Trend,
    UnknownModel,
    UsageTotals,
)
from shared.models.period import PeriodRange, day_start
from shared.models.triage import TriageResponse
from shared.models.usage import UsageRecord, usage_record
from shared.usage.rollups import DailyRollup, UserDailyRollup, accumulate
from shared.usage.sketches import latency_quantile

END = date(2026, 11, 20)
DAYS = 30
NOW = day_start(END + timedelta(days=1))
PERIOD = PeriodRange(start=day_start(END - timedelta(days=DAYS - 1)), end=NOW)
UNKNOWN_MODEL = ("acme", "acme-llm-7")
_AnyRollup = DailyRollup | UserDailyRollup


def unknown_calls(count: int) -> list[UsageRecord]:
    provider, model = UNKNOWN_MODEL
    return [
        usage_record(
            ts=datetime(2026, 11, 10 + n % 5, 12, tzinfo=UTC),
            provider=provider,
            model=model,
            feature="prototype",
            input_tokens=900 + n,
            output_tokens=120,
            latency_ms=700,
        )
        for n in range(count)
    ]


@cache
def manifest() -> Manifest:
    return generate(end=END, days=DAYS).manifest


@cache
def _rollups(end: date, seed: int, unknown: int) -> tuple[list[DailyRollup], list[UserDailyRollup]]:
    records = generate(end=end, days=DAYS, seed=seed).records + unknown_calls(unknown)
    batch = accumulate(records)
    return list(batch.daily.values()), list(batch.users.values())


def _totals(rows: Sequence[DailyRollup] | Sequence[UserDailyRollup]) -> UsageTotals:
    requests = sum(r.requests for r in rows)
    errors = sum(r.errors for r in rows)
    latency: dict[str, int] = defaultdict(int)
    for row in rows:
        for bucket, count in getattr(row, "latency_sketch", {}).items():
            latency[bucket] += count
    p50, p95 = latency_quantile(latency, 0.5), latency_quantile(latency, 0.95)
    return UsageTotals(
        requests=requests,
        errors=errors,
        error_rate=round(errors / requests, 4) if requests else 0.0,
        input_tokens=sum(r.input_tokens for r in rows),
        cached_input_tokens=sum(r.cached_input_tokens for r in rows),
        output_tokens=sum(r.output_tokens for r in rows),
        cost_usd=round(sum(r.cost_nanousd for r in rows) / 1e9, 2),
        unpriced_requests=sum(r.unpriced_requests for r in rows),
        latency_p50_ms=None if p50 is None else round(p50, 1),
        latency_p95_ms=None if p95 is None else round(p95, 1),
    )


def _breakdown(
    rows: Sequence[DailyRollup], users: Sequence[UserDailyRollup]
) -> dict[Dimension, list[BreakdownRow]]:
    total_cost = sum(r.cost_nanousd for r in rows)
    keys: dict[Dimension, Callable[[DailyRollup], str]] = {
        "model": lambda r: r.model,
        "provider": lambda r: r.provider,
        "feature": lambda r: r.feature or "(none)",
        "day": lambda r: r.day,
    }

    def rows_by(items: Iterable[_AnyRollup], key: Callable[[Any], str]) -> list[BreakdownRow]:
        groups: dict[str, list[Any]] = defaultdict(list)
        for item in items:
            groups[key(item)].append(item)
        out = []
        for name, group in groups.items():
            share = sum(r.cost_nanousd for r in group) / total_cost if total_cost else 0.0
            out.append(
                BreakdownRow(**_totals(group).model_dump(), key=name, share_of_cost=round(share, 4))
            )
        return sorted(out, key=lambda r: (-r.cost_usd, r.key))

    breakdown = {dimension: rows_by(rows, key) for dimension, key in keys.items()}
    breakdown["user"] = rows_by(users, lambda r: r.user or "(none)")
    return breakdown


def _group(row: DailyRollup) -> tuple[str, str, str | None]:
    return row.provider, row.model, row.feature


def _anomalies(rows: Sequence[DailyRollup]) -> list[Anomaly]:
    by_day: dict[str, int] = defaultdict(int)
    for row in rows:
        by_day[row.day] += row.cost_nanousd
    days = sorted(by_day)
    found = []
    for index in range(7, len(days)):
        window = days[index - 7 : index]
        median = statistics.median(by_day[d] for d in window)
        day = days[index]
        if by_day[day] < 3 * median:
            continue

        def usual(row: DailyRollup, window: list[str] = window) -> list[int]:
            same = [r for r in rows if r.day in window and _group(r) == _group(row)]
            costs = [r.cost_nanousd for r in same] + [0] * (len(window) - len(same))
            return costs

        driver = max(
            (r for r in rows if r.day == day),
            key=lambda r: r.cost_nanousd - sum(usual(r)) / 7,
        )
        driver_median = statistics.median(usual(driver))
        found.append(
            Anomaly(
                day=day,
                cost_usd=round(by_day[day] / 1e9, 2),
                rolling_median_usd=round(median / 1e9, 2),
                ratio=round(by_day[day] / median, 2),
                driver=AnomalyDriver(
                    provider=driver.provider,
                    model=driver.model,
                    feature=driver.feature,
                    cost_usd=round(driver.cost_nanousd / 1e9, 2),
                    rolling_median_usd=round(driver_median / 1e9, 2),
                    increase_usd=round((driver.cost_nanousd - driver_median) / 1e9, 2),
                ),
            )
        )
    return found


def _unknown(rows: Sequence[DailyRollup]) -> list[UnknownModel]:
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for row in rows:
        if row.unpriced_requests:
            counts[(row.provider, row.model)] += row.unpriced_requests
    return [UnknownModel(provider=p, model=m, requests=n) for (p, m), n in sorted(counts.items())]


def data_report(*, unknown: int = 0) -> DataReport:
    rows, users = _rollups(END, 7, unknown)
    previous, _ = _rollups(END - timedelta(days=DAYS), 11, 0)
    totals, before = _totals(rows), _totals(previous)
    change = round(totals.cost_usd - before.cost_usd, 2)
    return DataReport(
        period=PERIOD,
        totals=totals,
        breakdown=_breakdown(rows, users),
        trend=Trend(
            previous_period=PERIOD.previous(),
            previous_cost_usd=before.cost_usd,
            cost_change_usd=change,
            cost_change_pct=round(change / before.cost_usd * 100, 1),
            previous_requests=before.requests,
            requests_change_pct=round(
                (totals.requests - before.requests) / before.requests * 100, 1
            ),
        ),
        anomalies=_anomalies(rows),
        unknown_models=_unknown(rows),
    )


_TITLES = {
    "cheaper_model": "Move {feature} from {model} to {target}",
    "prompt_caching": "Cache the long shared prompt prefix of {feature} on {model}",
    "batch_api": "Send {feature} through the {provider} batch API",
    "trim_outputs": "Cap the output length of {feature} on {model}",
    "response_cache": "Serve repeated identical {feature} requests from a cache",
    "failed_calls": "Fix the failing calls of {feature} on {model}",
    "deprecated_model": "Replace deprecated {model} with {target} in {feature}",
}


def _recommendation(item: PlantedInefficiency) -> Recommendation:
    fields = {"feature": item.feature, "model": item.model, "provider": item.provider}
    title = _TITLES[item.kind].format(**fields, target=item.target_model)
    evidence = ", ".join(f"{k} {v}" for k, v in item.evidence.items())
    return Recommendation(
        kind=item.kind,
        title=title,
        detail=f"Over {DAYS} days: {evidence}.",
        monthly_savings_usd=round(item.monthly_savings_usd, 2),
        confidence=0.8 if item.basis == "measured" else 0.4,
        basis=item.basis,
        evidence=dict(item.evidence),
        steps=[f"Change {item.feature} and watch its cost for a week"],
        provider=item.provider,
        model=item.model,
        feature=item.feature,
        target_model=item.target_model,
    )


def optimization_report(*, unknown: int = 0) -> OptimizationReport:
    recommendations = sorted(
        (_recommendation(item) for item in manifest().inefficiencies),
        key=lambda r: -r.monthly_savings_usd,
    )
    rows, _ = _rollups(END, 7, unknown)
    return OptimizationReport(
        period=PERIOD,
        recommendations=recommendations,
        total_monthly_savings_usd=round(sum(r.monthly_savings_usd for r in recommendations), 2),
        unknown_models=_unknown(rows),
    )


def triage(question: str, *, has_usage_data: bool = True) -> TriageResponse:
    rows, _ = _rollups(END, 7, 0)
    result = analyze(
        question,
        now=NOW,
        known_models={r.model for r in rows},
        known_features={r.feature for r in rows if r.feature},
        known_providers={r.provider for r in rows},
    )
    return TriageResponse.build(result, decide_route(result, has_usage_data=has_usage_data))


def synthetic_findings(question: str, *, unknown: int = 0, has_usage_data: bool = True) -> Findings:
    """The findings for ``question`` over the synthetic workspace, as the agents would hand
    them to the writer: only the agents triage routed to have a report."""
    response = triage(question, has_usage_data=has_usage_data)
    agents = response.route.agents
    return Findings(
        question=question,
        triage=response,
        data=data_report(unknown=unknown) if "data" in agents else None,
        optimization=optimization_report(unknown=unknown) if "optimization" in agents else None,
    )


COST_QUESTION = "What did we spend on LLMs in the last 30 days?"
SAVINGS_QUESTION = "How can we cut our LLM bill by 30%?"
ANOMALY_QUESTION = "Why did costs spike last week?"
USAGE_QUESTION = "What was the p95 latency and error rate of summarize_thread?"
