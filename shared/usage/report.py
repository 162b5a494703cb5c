"""The data agent's computations: totals, breakdowns, trend and anomalies over daily rollups.

Pure functions (no I/O, no clock) from the ``usage_daily`` and ``usage_daily_users`` rollups
of ``shared.usage.rollups`` to the ``shared.models.findings`` models. Each is shown to the
user as a tool call, so arguments are plain and results JSON-serializable.

Rollups are per UTC day, so a period is read as the whole UTC days it overlaps
(``days_of``); the caller reads the rollups of ``days_needed(period)``:

- the period's own days;
- for the trend, the same number of whole days just before them (``previous_period``);
- for anomalies, the ``ROLLING_WINDOW_DAYS`` days before the period (``lookback_days``),
  the rolling median of its first days.

Money is summed in exact integers (1e-9 USD) and rounded to the cent only in the results;
rates and shares to 4 decimals, percentages to 0.1, latencies to 0.1 ms, so the numbers an
answer quotes are the numbers here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import date, timedelta
from typing import Final, TypeVar

from shared.models.dimensions import DIMENSIONS, Dimension
from shared.models.findings import (
    NONE_KEY,
    Anomaly,
    AnomalyDriver,
    BreakdownRow,
    DataReport,
    Trend,
    UnknownModel,
    UsageFilters,
    UsageTotals,
)
from shared.models.period import MAX_PERIOD_DAYS, PeriodRange, day_start
from shared.usage.anomalies import ROLLING_WINDOW_DAYS, find_anomalies, window_days
from shared.usage.rollups import DailyRollup, UserDailyRollup
from shared.usage.savings import cents, nanousd_to_usd
from shared.usage.sketches import latency_quantile

AnyRollup = DailyRollup | UserDailyRollup
_R = TypeVar("_R", DailyRollup, UserDailyRollup)

_RATE_DIGITS: Final = 4
_PCT_DIGITS: Final = 1
_MS_DIGITS: Final = 1
_ONE_DAY: Final = timedelta(days=1)
# Dimensions the per-user rollups can answer (they carry no provider, model or feature).
USER_ROLLUP_DIMENSIONS: Final[tuple[Dimension, ...]] = ("user", "day")


# --- which days ---------------------------------------------------------------------------


def days_of(period: PeriodRange) -> list[str]:
    """The UTC days (``YYYY-MM-DD``) the half-open range ``[start, end)`` overlaps, in order."""
    first = period.start.date()
    last = (period.end - timedelta(microseconds=1)).date()
    return [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]


def previous_period(period: PeriodRange) -> PeriodRange:
    """The whole UTC days just before the period, as many as it overlaps (for the trend).

    For a period on day boundaries this is ``period.previous()``; otherwise it is widened to
    whole days like the period itself, so the two never share a day (capped at 366 days).
    """
    days = days_of(period)
    start = day_start(date.fromisoformat(days[0]))
    length = min(len(days), MAX_PERIOD_DAYS)
    return PeriodRange(start=start - length * _ONE_DAY, end=start)


def previous_days(period: PeriodRange) -> list[str]:
    """The days the trend compares the period with."""
    return days_of(previous_period(period))


def lookback_days(period: PeriodRange) -> list[str]:
    """The days before the period that the rolling median of its first days needs."""
    return window_days(days_of(period)[0], ROLLING_WINDOW_DAYS)


def days_needed(period: PeriodRange) -> list[str]:
    """Every day ``build_data_report`` reads: the previous period, the lookback, the period."""
    return sorted({*previous_days(period), *lookback_days(period), *days_of(period)})


def on_days(rows: Iterable[_R], days: Iterable[str]) -> list[_R]:
    """The rows of the given days (to split what ``days_needed`` read among the computations)."""
    wanted = set(days)
    return [row for row in rows if row.day in wanted]


# --- filters ------------------------------------------------------------------------------


def check_filters(filters: UsageFilters) -> None:
    """Reject a user filter combined with the others: user rollups have no model or feature."""
    if filters.users is not None and (
        filters.models is not None or filters.providers is not None or filters.features is not None
    ):
        raise ValueError(
            "a users filter cannot be combined with models, providers or features: "
            "per-user usage is not broken down by model or feature"
        )


def _allowed(value: str | None, allowed: Sequence[str] | None) -> bool:
    return allowed is None or (NONE_KEY if value is None else value) in allowed


def filter_rows(rows: Iterable[_R], filters: UsageFilters) -> list[_R]:
    """The rows the filters keep (``(none)`` selects calls with no feature or no user).

    ``DailyRollup`` rows are filtered by model, provider and feature, ``UserDailyRollup``
    rows by user: each kind of rollup only by what it carries.
    """
    kept: list[_R] = []
    for row in rows:
        if isinstance(row, UserDailyRollup):
            keep = _allowed(row.user, filters.users)
        else:
            keep = (
                _allowed(row.model, filters.models)
                and _allowed(row.provider, filters.providers)
                and _allowed(row.feature, filters.features)
            )
        if keep:
            kept.append(row)
    return kept


# --- totals and breakdowns ----------------------------------------------------------------


def _usd(nanousd: int) -> float:
    return cents(nanousd_to_usd(nanousd))


def _rate(part: int, whole: int) -> float:
    return round(part / whole, _RATE_DIGITS) if whole else 0.0


def _change_pct(current: int, previous: int) -> float | None:
    # A change from zero has no percentage.
    return round((current - previous) / previous * 100, _PCT_DIGITS) if previous else None


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, _MS_DIGITS)


def totals(rows: Iterable[AnyRollup]) -> UsageTotals:
    """Spend, requests, tokens, error rate and latency p50/p95 of the rows, summed.

    Latency comes from the merged sketches of ``DailyRollup`` rows (user rollups have none).
    Calls of models the table cannot price are counted in ``unpriced_requests``: their cost
    is unknown, not zero.
    """
    requests = errors = input_tokens = cached = output = cost = unpriced = 0
    latency: dict[str, int] = {}
    for row in rows:
        requests += row.requests
        errors += row.errors
        input_tokens += row.input_tokens
        cached += row.cached_input_tokens
        output += row.output_tokens
        cost += row.cost_nanousd
        unpriced += row.unpriced_requests
        if isinstance(row, DailyRollup):
            for key, count in row.latency_sketch.items():
                latency[key] = latency.get(key, 0) + count
    return UsageTotals(
        requests=requests,
        errors=errors,
        error_rate=_rate(errors, requests),
        input_tokens=input_tokens,
        cached_input_tokens=cached,
        output_tokens=output,
        cost_usd=_usd(cost),
        unpriced_requests=unpriced,
        latency_p50_ms=_ms(latency_quantile(latency, 0.5)),
        latency_p95_ms=_ms(latency_quantile(latency, 0.95)),
    )


def _key_of(dimension: Dimension) -> Callable[[AnyRollup], str]:
    def key(row: AnyRollup) -> str:
        if dimension == "day":
            return row.day
        if isinstance(row, UserDailyRollup):
            if dimension != "user":
                raise ValueError(f"per-user rollups cannot be broken down by {dimension}")
            return row.user or NONE_KEY
        if dimension == "user":
            raise ValueError("usage_daily rollups cannot be broken down by user")
        if dimension == "model":
            return row.model
        if dimension == "provider":
            return row.provider
        return row.feature or NONE_KEY

    return key


def breakdown_by(rows: Iterable[AnyRollup], dimension: Dimension) -> list[BreakdownRow]:
    """The rows' totals per value of one dimension; ``day`` by day, others by cost desc then key.

    ``user`` needs ``UserDailyRollup`` rows; ``model``, ``provider`` and ``feature`` need
    ``DailyRollup`` rows; ``day`` takes either.
    """
    key = _key_of(dimension)
    groups: dict[str, list[AnyRollup]] = {}
    for row in rows:
        groups.setdefault(key(row), []).append(row)
    costs = {value: sum(row.cost_nanousd for row in group) for value, group in groups.items()}
    total_cost = sum(costs.values())
    order = sorted(groups) if dimension == "day" else sorted(groups, key=lambda v: (-costs[v], v))
    return [
        BreakdownRow(
            **totals(groups[value]).model_dump(),
            key=value,
            share_of_cost=_rate(costs[value], total_cost),
        )
        for value in order
    ]


def breakdown(
    rows: Iterable[DailyRollup],
    user_rows: Iterable[UserDailyRollup],
    dimensions: Sequence[Dimension] = DIMENSIONS,
) -> dict[Dimension, list[BreakdownRow]]:
    """Totals per model, provider, feature, user and/or day (``user`` from ``user_rows``)."""
    daily, users = list(rows), list(user_rows)
    return {
        dimension: breakdown_by(users if dimension == "user" else daily, dimension)
        for dimension in dimensions
    }


# --- trend, anomalies, unknown models -----------------------------------------------------


def trend(
    rows: Iterable[AnyRollup], previous_rows: Iterable[AnyRollup], period: PeriodRange
) -> Trend:
    """Spend and requests of the period against ``previous_period(period)``.

    ``rows`` are the period's rollups, ``previous_rows`` those of the previous period.
    """
    current, previous = list(rows), list(previous_rows)
    cost = sum(row.cost_nanousd for row in current)
    previous_cost = sum(row.cost_nanousd for row in previous)
    requests = sum(row.requests for row in current)
    previous_requests = sum(row.requests for row in previous)
    return Trend(
        previous_period=previous_period(period),
        previous_cost_usd=_usd(previous_cost),
        cost_change_usd=cents(nanousd_to_usd(cost - previous_cost)),
        cost_change_pct=_change_pct(cost, previous_cost),
        previous_requests=previous_requests,
        requests_change_pct=_change_pct(requests, previous_requests),
    )


def anomalies(rows_with_lookback: Iterable[DailyRollup], period: PeriodRange) -> list[Anomaly]:
    """The period's days costing at least 3x the median of the 7 days before them.

    ``rows_with_lookback`` holds the period's rollups and those of ``lookback_days(period)``;
    the rule and the driver are those of ``shared.usage.anomalies``.
    """
    found = find_anomalies(rows_with_lookback, days_of(period))
    return [
        Anomaly(
            day=item.day,
            cost_usd=_usd(item.cost_nanousd),
            rolling_median_usd=_usd(item.rolling_median_nanousd),
            ratio=round(item.ratio, 2),
            driver=AnomalyDriver(
                provider=item.driver.provider,
                model=item.driver.model,
                feature=item.driver.feature,
                cost_usd=_usd(item.driver.cost_nanousd),
                rolling_median_usd=_usd(item.driver.rolling_median_nanousd),
                increase_usd=cents(nanousd_to_usd(item.driver.increase_nanousd)),
            ),
        )
        for item in found
    ]


def unknown_models(rows: Iterable[DailyRollup]) -> list[UnknownModel]:
    """Models with calls the price table could not price, most unpriced calls first."""
    unpriced: dict[tuple[str, str], int] = {}
    for row in rows:
        if row.unpriced_requests > 0:
            key = (row.provider, row.model)
            unpriced[key] = unpriced.get(key, 0) + row.unpriced_requests
    return [
        UnknownModel(provider=provider, model=model, requests=requests)
        for (provider, model), requests in sorted(
            unpriced.items(), key=lambda item: (-item[1], item[0])
        )
    ]


# --- the report ---------------------------------------------------------------------------


def build_data_report(
    rows: Iterable[DailyRollup],
    user_rows: Iterable[UserDailyRollup],
    period: PeriodRange,
    *,
    filters: UsageFilters | None = None,
    dimensions: Sequence[Dimension] = DIMENSIONS,
) -> DataReport:
    """The data agent's report for the period: totals, breakdowns, trend, anomalies.

    ``rows`` and ``user_rows`` are the rollups of ``days_needed(period)`` (other days are
    ignored). Filters apply before anything is computed. With a ``users`` filter the report is
    computed from the per-user rollups, which carry no provider, model, feature or latency:
    only the ``user`` and ``day`` breakdowns, no latency, and no anomalies (a driver is a
    model and feature). With a model, provider or feature filter the ``user`` breakdown is
    left out, as per-user rollups cannot be filtered by those.
    """
    filters = filters or UsageFilters()
    check_filters(filters)
    current_days, earlier_days = days_of(period), previous_days(period)
    if filters.users is not None:
        users = filter_rows(user_rows, filters)
        current_users = on_days(users, current_days)
        return DataReport(
            period=period,
            totals=totals(current_users),
            breakdown={
                dimension: breakdown_by(current_users, dimension)
                for dimension in dimensions
                if dimension in USER_ROLLUP_DIMENSIONS
            },
            trend=trend(current_users, on_days(users, earlier_days), period),
            anomalies=[],
        )
    daily = filter_rows(rows, filters)
    current = on_days(daily, current_days)
    filtered = any(f is not None for f in (filters.models, filters.providers, filters.features))
    return DataReport(
        period=period,
        totals=totals(current),
        breakdown=breakdown(
            current,
            on_days(user_rows, current_days),
            [d for d in dimensions if not (filtered and d == "user")],
        ),
        trend=trend(current, on_days(daily, earlier_days), period),
        anomalies=anomalies(on_days(daily, [*lookback_days(period), *current_days]), period),
        unknown_models=unknown_models(current),
    )
