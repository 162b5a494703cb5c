"""The optimization agent: ranked, priced recommendations for a period (DESIGN §8)."""

from __future__ import annotations

from shared.agents.data import load_rollups
from shared.agents.trace import AgentTrace
from shared.models.findings import OptimizationReport
from shared.models.period import PeriodRange
from shared.store.usage import UsageStore
from shared.usage import report
from shared.usage.recommend import recommend


def optimize(
    trace: AgentTrace,
    usage: UsageStore,
    workspace_id: str,
    period: PeriodRange,
    *,
    min_monthly_savings_usd: float = 0.0,
) -> OptimizationReport:
    days = report.days_of(period)
    trace.think(
        "Profile each (provider, model, feature) workload over the period and test it "
        "against every recommendation rule; price each saving from the price table at "
        f"{days[-1]} and extrapolate to a 30-day month."
    )
    rows = load_rollups(trace, usage, workspace_id, days)
    result = trace.tool(
        "price_recommendations",
        {"period": period, "min_monthly_savings_usd": min_monthly_savings_usd},
        lambda: recommend(rows, period, min_monthly_savings_usd=min_monthly_savings_usd),
    )
    trace.completed(result)
    return result
