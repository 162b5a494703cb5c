"""The optimization agent: ranked, priced recommendations for a period (DESIGN §8)."""

from __future__ import annotations

from collections.abc import Sequence

from shared.agents.data import load_rollups
from shared.agents.trace import AgentTrace
from shared.models.findings import OptimizationReport
from shared.models.period import PeriodRange
from shared.store.interfaces import UsageStore
from shared.usage import report
from shared.usage.recommend import recommend
from shared.usage.rollups import DailyRollup


def optimize(
    trace: AgentTrace,
    usage: UsageStore,
    workspace_id: str,
    period: PeriodRange,
    *,
    min_monthly_savings_usd: float = 0.0,
    measured: Sequence[DailyRollup] | None = None,
) -> OptimizationReport:
    """``measured``: the daily rollups the run's data agent read (a superset of the period's
    days); priced as they are instead of read again, so both agents report on one snapshot."""
    days = report.days_of(period)
    trace.think(
        "Profile each (provider, model, feature) workload over the period and test it "
        "against every recommendation rule; price each saving from the price table at "
        f"{days[-1]} and extrapolate to a 30-day month."
    )
    if measured is None:
        rows = load_rollups(trace, usage, workspace_id, days)
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
        lambda: recommend(rows, period, min_monthly_savings_usd=min_monthly_savings_usd),
    )
    trace.completed(result)
    return result
