"""The optimization agent: ranked, priced recommendations for a period (DESIGN §8), and
what-if repricing when asked (docs/prices.md)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from shared import pricing
from shared.agents.data import load_rollups
from shared.agents.trace import AgentTrace
from shared.errors import ValidationFailed
from shared.models.findings import OptimizationReport
from shared.models.period import PeriodRange
from shared.models.triage import WhatIfSpec
from shared.price_book import PriceBook
from shared.store.interfaces import UsageStore
from shared.usage import report
from shared.usage.recommend import recommend
from shared.usage.repricing import prices_basis
from shared.usage.rollups import DailyRollup
from shared.usage.whatif import check_target, what_if


def check_what_if(spec: WhatIfSpec, book: PriceBook, period: PeriodRange) -> None:
    """422 naming the target when neither the table nor the workspace prices it."""
    try:
        check_target(spec, book, report.days_of(period))
    except pricing.UnknownModelError as e:
        raise ValidationFailed(f"what_if.model: {e}") from e


def optimize(
    trace: AgentTrace,
    usage: UsageStore,
    workspace_id: str,
    period: PeriodRange,
    *,
    book: PriceBook,
    min_monthly_savings_usd: float = 0.0,
    measured: Sequence[DailyRollup] | None = None,
    what_if_spec: WhatIfSpec | None = None,
    unpriced_what_if: Literal["refuse", "report"] = "refuse",
) -> OptimizationReport:
    """``measured``: the daily rollups the run's data agent read (a superset of the period's
    days, at the workspace's prices already); priced as they are instead of read again, so
    both agents report on one snapshot. ``book``: the workspace's prices and allowed models.
    ``what_if_spec``: also reprice the period's tokens at that model's prices; a target
    nobody prices is refused (422) or, for the chat, ``report``-ed in the result."""
    days = report.days_of(period)
    unpriced = None
    if what_if_spec is not None:
        try:
            check_what_if(what_if_spec, book, period)
        except ValidationFailed:
            if unpriced_what_if == "refuse":
                raise
            unpriced, what_if_spec = what_if_spec, None
    at_prices = "the workspace's prices" if book.custom else "the price table"
    trace.think(
        "Profile each (provider, model, feature) workload over the period and test it "
        f"against every recommendation rule; price each saving at {at_prices} at "
        f"{days[-1]} and extrapolate to a 30-day month."
        + (
            f" Then price the period's measured tokens at {what_if_spec.model}'s prices."
            if what_if_spec is not None
            else ""
        )
    )
    if measured is None:
        rows = load_rollups(trace, usage, workspace_id, days, book)
    else:
        rows = trace.tool(
            "reuse_measured_rollups",
            {"workspace_id": workspace_id, "first_day": days[0], "last_day": days[-1]},
            lambda: report.on_days(measured, days),
            lambda found: {"rows": len(found), "read_by": "data agent, this run"},
        )
    result = trace.tool(
        "price_recommendations",
        {"period": period, "min_monthly_savings_usd": min_monthly_savings_usd},
        lambda: recommend(
            rows, period, min_monthly_savings_usd=min_monthly_savings_usd, book=book
        ).model_copy(update={"prices": prices_basis(book)}),
    )
    if unpriced is not None:
        result = result.model_copy(update={"what_if_unpriced": unpriced})
    if what_if_spec is not None:
        spec = what_if_spec
        priced = trace.tool(
            "what_if_repricing",
            {
                "model": spec.model,
                "provider": spec.provider,
                "feature": spec.feature,
                "period": period,
                "prices": prices_basis(book),
            },
            lambda: what_if(rows, spec, book, days),
        )
        result = result.model_copy(update={"what_if": priced})
    trace.completed(result)
    return result
