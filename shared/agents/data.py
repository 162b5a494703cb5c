"""The data agent: the workspace's usage in a period, as tool calls the user sees (DESIGN §8).

Reads the rollups once, then computes totals, breakdowns, the trend and anomalies, each a
tool call with its real arguments, result and timing. ``agents_data`` runs the same code
(its events are not kept), so the function and the chat always agree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import attrgetter

from shared.agents.trace import AgentTrace
from shared.errors import ValidationFailed
from shared.models.dimensions import DIMENSIONS, Dimension
from shared.models.findings import Anomaly, DataReport, DriverDay, UsageFilters, UsageTotals
from shared.models.period import PeriodRange
from shared.price_book import PriceBook
from shared.store.interfaces import UsageStore
from shared.usage import report
from shared.usage.anomalies import window_days
from shared.usage.repricing import prices_basis, reprice
from shared.usage.rollups import DailyRollup, UserDailyRollup

Rollups = tuple[list[DailyRollup], list[UserDailyRollup]]
ANOMALY_RULE = "day cost >= 3x the median of the 7 days before it"
_day_of = attrgetter("day")


def load_rollups(
    trace: AgentTrace,
    usage: UsageStore,
    workspace_id: str,
    days: Sequence[str],
    book: PriceBook,
) -> list[DailyRollup]:
    """The daily rollups of ``days`` at the workspace's prices (``book``, each day by the
    entries in force on it: ``shared.usage.repricing``)."""
    return trace.tool(
        "query_usage_rollups",
        {
            "workspace_id": workspace_id,
            "first_day": days[0],
            "last_day": days[-1],
            "prices": prices_basis(book),
        },
        lambda: reprice(usage.daily(workspace_id, days[0], days[-1]), book),
        lambda rows: {"rows": len(rows), "days_with_usage": len(set(map(_day_of, rows)))},
    )


def load_user_rollups(
    trace: AgentTrace, usage: UsageStore, workspace_id: str, days: Sequence[str], book: PriceBook
) -> list[UserDailyRollup]:
    """The per-user rollups of ``days`` at the workspace's prices."""
    return trace.tool(
        "query_user_rollups",
        {
            "workspace_id": workspace_id,
            "first_day": days[0],
            "last_day": days[-1],
            "prices": prices_basis(book),
        },
        lambda: reprice(usage.users(workspace_id, days[0], days[-1]), book),
        lambda rows: {"rows": len(rows)},
    )


def measure(
    trace: AgentTrace,
    usage: UsageStore,
    workspace_id: str,
    period: PeriodRange,
    *,
    filters: UsageFilters | None = None,
    dimensions: Sequence[Dimension] = DIMENSIONS,
    on_rollups: Callable[[list[DailyRollup]], None] | None = None,
    book: PriceBook,
) -> DataReport:
    """The data report, every cost at ``book``'s prices (the workspace's). ``on_rollups``
    is handed the daily rollups read (unfiltered, repriced), so the run's next agent can
    price the same snapshot."""
    filters = filters or UsageFilters()
    try:
        report.check_filters(filters)
    except ValueError as e:
        raise ValidationFailed(f"filters: {e}") from e
    days = report.days_needed(period)
    trace.think(
        f"Read the daily rollups from {days[0]} to {days[-1]} (the period, the period before "
        "it for the trend, and a week of lookback for anomalies), then measure."
    )
    if filters.users is not None:
        # Per-user rollups carry no model or feature: one report over them.
        per_user = load_user_rollups(trace, usage, workspace_id, days, book)
        result = trace.tool(
            "usage_report_by_user",
            {"period": period, "filters": filters},
            lambda: report.build_data_report([], per_user, period, filters=filters).model_copy(
                update={"prices": prices_basis(book)}
            ),
        )
        trace.completed(result)
        return result
    loaded = load_rollups(trace, usage, workspace_id, days, book)
    if on_rollups is not None:
        on_rollups(loaded)
    unfiltered = filters == UsageFilters()
    user_rows: list[UserDailyRollup] = []
    if "user" in dimensions and unfiltered:
        # Only the period's own days: the user breakdown needs no trend or lookback.
        own = report.days_of(period)
        user_rows = load_user_rollups(trace, usage, workspace_id, own, book)
    shown_dimensions = [d for d in dimensions if d != "user" or unfiltered]
    current_days = report.days_of(period)
    if unfiltered:
        # Every row: the figures from per-day summaries (``report.Summaries``), the same as
        # the folds below give.
        summed = report.Summaries(loaded, user_rows)
        result = DataReport(
            period=period,
            totals=trace.tool(
                "usage_totals", {"period": period}, lambda: summed.totals(current_days)
            ),
            breakdown=trace.tool(
                "usage_breakdown",
                {"period": period, "group_by": shown_dimensions},
                lambda: summed.breakdown(current_days, shown_dimensions),
            ),
            trend=trace.tool(
                "usage_trend",
                {"period": period, "previous_period": report.previous_period(period)},
                lambda: summed.trend(current_days, period),
            ),
            anomalies=trace.tool(
                "spend_anomalies",
                {"period": period, "rule": ANOMALY_RULE},
                lambda: summed.anomalies(period),
            ),
            unknown_models=summed.unknown_models(current_days),
            prices=prices_basis(book),
        )
        trace.completed(result)
        return result
    rows = report.filter_rows(loaded, filters)
    current = report.on_days(rows, current_days)
    previous = report.on_days(rows, report.previous_days(period))
    result = DataReport(
        period=period,
        totals=trace.tool("usage_totals", {"period": period}, lambda: report.totals(current)),
        breakdown=trace.tool(
            "usage_breakdown",
            {"period": period, "group_by": shown_dimensions},
            lambda: report.breakdown(current, [], shown_dimensions),
        ),
        trend=trace.tool(
            "usage_trend",
            {"period": period, "previous_period": report.previous_period(period)},
            lambda: report.trend(current, previous, period),
        ),
        anomalies=trace.tool(
            "spend_anomalies",
            {"period": period, "rule": ANOMALY_RULE},
            lambda: report.anomalies(rows, period),
        ),
        unknown_models=report.unknown_models(current),
        prices=prices_basis(book),
    )
    trace.completed(result)
    return result


def driver_days(rows: Sequence[DailyRollup], anomalies: Sequence[Anomaly]) -> list[DriverDay]:
    """Each anomaly's driver on its day against the days before it (the rolling window),
    from the rollups the data step read (they include the window: ``days_needed``), so a
    later "why?" is answered from what this run measured (DESIGN §13)."""
    found = []
    for anomaly in anomalies:
        driver = anomaly.driver
        window = window_days(anomaly.day)
        own = [
            r
            for r in rows
            if (r.provider, r.model, r.feature) == (driver.provider, driver.model, driver.feature)
        ]
        that_day = report.totals(r for r in own if r.day == anomaly.day)
        before = report.totals(r for r in own if r.day in window)
        found.append(
            DriverDay(
                day=anomaly.day,
                provider=driver.provider,
                model=driver.model,
                feature=driver.feature,
                that_day=that_day,
                days_before=len(window),
                before=before,
                requests_per_day_before=round(before.requests / len(window), 1),
                cost_per_day_before_usd=round(before.cost_usd / len(window), 2),
                input_tokens_per_request=_per_request(that_day, that_day.input_tokens),
                input_tokens_per_request_before=_per_request(before, before.input_tokens),
                output_tokens_per_request=_per_request(that_day, that_day.output_tokens),
                output_tokens_per_request_before=_per_request(before, before.output_tokens),
            )
        )
    return found


def _per_request(totals: UsageTotals, tokens: int) -> float | None:
    return round(tokens / totals.requests, 1) if totals.requests else None
