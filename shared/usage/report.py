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

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import groupby
from operator import attrgetter
from typing import Any, Final, TypeVar

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
from shared.usage.anomalies import (
    ROLLING_WINDOW_DAYS,
    SpendAnomaly,
    find_anomalies,
    window_days,
)
from shared.usage.memo import RowsMemo
from shared.usage.rollups import DailyRollup, UserDailyRollup
from shared.usage.savings import cents, nanousd_to_usd
from shared.usage.sketches import latency_quantiles

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
    if all(f is None for f in (filters.models, filters.providers, filters.features, filters.users)):
        return list(rows)
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
#
# A 30-day read of a large team holds tens of thousands of rollups, so the folds below sum
# field by field with C-level ``sum(map(getter, rows))`` and merge latency sketches once per
# group, not a model per row; ``breakdown`` sums each (day, provider, model) cell once and
# builds the model, provider and day breakdowns from the cells. Every figure is the one a
# straightforward row-by-row fold gives (tests/unit/test_usage_report_fold.py).

# The counters a total sums, in ``_Sum.counts`` order.
_COUNTERS: Final = (
    "requests",
    "errors",
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "cost_nanousd",
    "unpriced_requests",
)
_GETTERS: Final = tuple(attrgetter(name) for name in _COUNTERS)
_COST: Final = _COUNTERS.index("cost_nanousd")
_cost_of: Final = attrgetter("cost_nanousd")
_requests_of: Final = attrgetter("requests")
_cell_of: Final = attrgetter("day", "provider", "model")
_pair_of: Final = attrgetter("provider", "model")
_day_of: Final = attrgetter("day")
_REQUESTS: Final = _COUNTERS.index("requests")
_UNPRICED: Final = _COUNTERS.index("unpriced_requests")
# The dimensions of a (day, provider, model) cell, by index in its key.
_CELL_DIMENSIONS: Final[dict[Dimension, int]] = {"day": 0, "provider": 1, "model": 2}


@dataclass(slots=True)
class _Sum:
    """The summed counters (``_COUNTERS``) and merged latency sketch of some rows."""

    counts: list[int]
    latency: dict[str, int]


def _sum_rows(rows: Sequence[AnyRollup]) -> _Sum:
    latency: dict[str, int] = {}
    get = latency.get
    for row in rows:
        if isinstance(row, DailyRollup):
            for key, count in row.latency_sketch.items():
                latency[key] = get(key, 0) + count
    return _Sum([sum(map(getter, rows)) for getter in _GETTERS], latency)


def _merged(sums: Iterable[_Sum]) -> _Sum:
    """The sum of ``sums`` (one alone is itself: a ``_Sum`` is never changed once made)."""
    parts = list(sums)
    if len(parts) == 1:
        return parts[0]
    counts = [0] * len(_COUNTERS)
    if parts:
        counts = [sum(column) for column in zip(*(part.counts for part in parts), strict=True)]
    latency: dict[str, int] = {}
    get = latency.get
    for part in parts:
        for key, count in part.latency.items():
            latency[key] = get(key, 0) + count
    return _Sum(counts, latency)


def _usd(nanousd: int) -> float:
    return cents(nanousd_to_usd(nanousd))


def _rate(part: int, whole: int) -> float:
    return round(part / whole, _RATE_DIGITS) if whole else 0.0


def _change_pct(current: int, previous: int) -> float | None:
    # A change from zero has no percentage.
    return round((current - previous) / previous * 100, _PCT_DIGITS) if previous else None


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, _MS_DIGITS)


def _totals_fields(summed: _Sum) -> dict[str, Any]:
    requests, errors, input_tokens, cached, output, cost, unpriced = summed.counts
    p50, p95 = latency_quantiles(summed.latency, (0.5, 0.95))
    return {
        "requests": requests,
        "errors": errors,
        "error_rate": _rate(errors, requests),
        "input_tokens": input_tokens,
        "cached_input_tokens": cached,
        "output_tokens": output,
        "cost_usd": _usd(cost),
        "unpriced_requests": unpriced,
        "latency_p50_ms": _ms(p50),
        "latency_p95_ms": _ms(p95),
    }


def totals(rows: Iterable[AnyRollup]) -> UsageTotals:
    """Spend, requests, tokens, error rate and latency p50/p95 of the rows, summed.

    Latency comes from the merged sketches of ``DailyRollup`` rows (user rollups have none).
    Calls of models the table cannot price are counted in ``unpriced_requests``: their cost
    is unknown, not zero.
    """
    return UsageTotals(**_totals_fields(_sum_rows(list(rows))))


def _check_kind(rows: Sequence[AnyRollup], dimension: Dimension) -> None:
    if dimension == "day":
        return
    kinds = {type(row) for row in rows}
    if dimension == "user" and DailyRollup in kinds:
        raise ValueError("usage_daily rollups cannot be broken down by user")
    if dimension != "user" and UserDailyRollup in kinds:
        raise ValueError(f"per-user rollups cannot be broken down by {dimension}")


def _groups(rows: Sequence[AnyRollup], dimension: Dimension) -> dict[str, list[AnyRollup]]:
    """The rows by their value of ``dimension`` (no feature, no user: ``(none)``)."""
    _check_kind(rows, dimension)
    value_of = attrgetter(dimension)
    none = NONE_KEY if dimension in ("feature", "user") else None
    groups: dict[str, list[AnyRollup]] = {}
    for row in rows:
        value = value_of(row)
        if value is None:
            value = none
        group = groups.get(value)
        if group is None:
            groups[value] = [row]
        else:
            group.append(row)
    return groups


def _breakdown_rows(sums: Mapping[str, _Sum], dimension: Dimension) -> list[BreakdownRow]:
    """One row per value; ``day`` by day, others by cost desc then key."""
    costs = {value: summed.counts[_COST] for value, summed in sums.items()}
    total_cost = sum(costs.values())
    order = sorted(sums) if dimension == "day" else sorted(sums, key=lambda v: (-costs[v], v))
    return [
        BreakdownRow(
            **_totals_fields(sums[value]),
            key=value,
            share_of_cost=_rate(costs[value], total_cost),
        )
        for value in order
    ]


def breakdown_by(rows: Iterable[AnyRollup], dimension: Dimension) -> list[BreakdownRow]:
    """The rows' totals per value of one dimension; ``day`` by day, others by cost desc then key.

    ``user`` needs ``UserDailyRollup`` rows; ``model``, ``provider`` and ``feature`` need
    ``DailyRollup`` rows; ``day`` takes either.
    """
    groups = _groups(list(rows), dimension)
    return _breakdown_rows({value: _sum_rows(group) for value, group in groups.items()}, dimension)


def _cells(rows: Sequence[DailyRollup]) -> dict[tuple[str, str, str], _Sum]:
    """The rows summed per (day, provider, model).

    A day's rows come from the store in (provider, model, feature) order, so a cell's rows
    are consecutive: ``groupby`` finds the runs at C speed; runs of one cell that are not
    consecutive (rows in another order) are joined."""
    cells: dict[tuple[str, str, str], list[DailyRollup]] = {}
    for key, run in groupby(rows, _cell_of):
        cell = cells.get(key)
        if cell is None:
            cells[key] = list(run)
        else:
            cell.extend(run)
    return {key: _sum_rows(cell) for key, cell in cells.items()}


def breakdown(
    rows: Iterable[DailyRollup],
    user_rows: Iterable[UserDailyRollup],
    dimensions: Sequence[Dimension] = DIMENSIONS,
) -> dict[Dimension, list[BreakdownRow]]:
    """Totals per model, provider, feature, user and/or day (``user`` from ``user_rows``)."""
    daily, users = list(rows), list(user_rows)
    by_cell = [d for d in dimensions if d in _CELL_DIMENSIONS]
    cells: dict[tuple[str, str, str], _Sum] = {}
    # Rows of the wrong kind are refused by ``breakdown_by``, one dimension at a time.
    if len(by_cell) > 1 and all(type(row) is DailyRollup for row in daily):
        cells = _cells(daily)
    found: dict[Dimension, list[BreakdownRow]] = {}
    for dimension in dimensions:
        if dimension in by_cell and cells:
            index = _CELL_DIMENSIONS[dimension]
            grouped: dict[str, list[_Sum]] = {}
            for key, summed in cells.items():
                grouped.setdefault(key[index], []).append(summed)
            sums = {value: _merged(parts) for value, parts in grouped.items()}
            found[dimension] = _breakdown_rows(sums, dimension)
        else:
            found[dimension] = breakdown_by(users if dimension == "user" else daily, dimension)
    return found


# --- trend, anomalies, unknown models -----------------------------------------------------


def trend(
    rows: Iterable[AnyRollup], previous_rows: Iterable[AnyRollup], period: PeriodRange
) -> Trend:
    """Spend and requests of the period against ``previous_period(period)``.

    ``rows`` are the period's rollups, ``previous_rows`` those of the previous period.
    """
    current, previous = list(rows), list(previous_rows)
    return _trend(
        sum(map(_cost_of, current)),
        sum(map(_cost_of, previous)),
        sum(map(_requests_of, current)),
        sum(map(_requests_of, previous)),
        period,
    )


def _trend(
    cost: int, previous_cost: int, requests: int, previous_requests: int, period: PeriodRange
) -> Trend:
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
    return _anomalies(find_anomalies(rows_with_lookback, days_of(period)))


def _anomalies(found: Iterable[SpendAnomaly]) -> list[Anomaly]:
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
    return _unknown_models(unpriced)


def _unknown_models(unpriced: Mapping[tuple[str, str], int]) -> list[UnknownModel]:
    return [
        UnknownModel(provider=provider, model=model, requests=requests)
        for (provider, model), requests in sorted(
            unpriced.items(), key=lambda item: (-item[1], item[0])
        )
    ]


# --- day summaries: the same figures from per-day totals ----------------------------------
#
# A day's rows summed per model, provider and feature (and per user), so that a report over
# the period folds days x (models + providers + features + users) sums rather than every
# (day, provider, model, feature) row. A day's summary is kept while the very same row
# objects come again (``shared.usage.memo``).


@dataclass(frozen=True, slots=True)
class DaySummary:
    """One day's ``DailyRollup`` rows summed: in all, per (provider, model), per feature."""

    total: _Sum
    pairs: dict[tuple[str, str], _Sum]
    features: dict[str, _Sum]


def _summarize_day(rows: Sequence[DailyRollup]) -> DaySummary:
    cells: dict[tuple[str, str], list[DailyRollup]] = {}
    for key, run in groupby(rows, _pair_of):
        cell = cells.get(key)
        if cell is None:
            cells[key] = list(run)
        else:
            cell.extend(run)
    pairs = {key: _sum_rows(cell) for key, cell in cells.items()}
    return DaySummary(
        total=_merged(pairs.values()),
        pairs=pairs,
        features={value: _sum_rows(group) for value, group in _groups(rows, "feature").items()},
    )


def _summarize_user_day(rows: Sequence[UserDailyRollup]) -> dict[str, _Sum]:
    return {value: _sum_rows(group) for value, group in _groups(rows, "user").items()}


# As many rows as the store keeps decoded (``DECODED_ROWS``): mostly the same objects, so
# the memo adds the summaries (small) rather than rows (~2 KB each).
_SUMMARIES: Final[RowsMemo[Any]] = RowsMemo(50_000)


def _by_day(rows: Iterable[_R]) -> dict[str, list[_R]]:
    days: dict[str, list[_R]] = {}
    for day, run in groupby(rows, _day_of):
        found = days.get(day)
        if found is None:
            days[day] = list(run)
        else:
            found.extend(run)
    return days


class Summaries:
    """The report's figures for unfiltered rows from per-day summaries (the same figures
    as ``totals``, ``breakdown``, ``trend``, ``anomalies`` and ``unknown_models`` of the
    rows: tests/unit/test_usage_report_fold.py)."""

    def __init__(self, rows: Sequence[DailyRollup], user_rows: Sequence[UserDailyRollup]) -> None:
        self._rows = rows
        self._days: dict[str, DaySummary] = {
            day: _SUMMARIES.of(run, _summarize_day) for day, run in _by_day(rows).items()
        }
        self._users: dict[str, dict[str, _Sum]] = {
            day: _SUMMARIES.of(run, _summarize_user_day) for day, run in _by_day(user_rows).items()
        }
        self._pair_sums: dict[tuple[str, ...], dict[tuple[str, str], _Sum]] = {}

    def _of(self, days: Iterable[str]) -> list[DaySummary]:
        return [self._days[day] for day in days if day in self._days]

    def _pairs(self, days: Sequence[str]) -> dict[tuple[str, str], _Sum]:
        """The days summed per (provider, model): the model and provider breakdowns and the
        totals merge these (a few per model) rather than every day's."""
        found = self._pair_sums.get(tuple(days))
        if found is None:
            grouped: dict[tuple[str, str], list[_Sum]] = {}
            for summary in self._of(days):
                for key, part in summary.pairs.items():
                    grouped.setdefault(key, []).append(part)
            found = {key: _merged(parts) for key, parts in grouped.items()}
            self._pair_sums[tuple(days)] = found
        return found

    def totals(self, days: Sequence[str]) -> UsageTotals:
        return UsageTotals(**_totals_fields(_merged(self._pairs(days).values())))

    def breakdown(
        self, days: Sequence[str], dimensions: Sequence[Dimension]
    ) -> dict[Dimension, list[BreakdownRow]]:
        found: dict[Dimension, list[BreakdownRow]] = {}
        for dimension in dimensions:
            grouped: dict[str, list[_Sum]] = {}
            if dimension == "day":
                grouped = {day: [self._days[day].total] for day in days if day in self._days}
            elif dimension == "user":
                for day in days:
                    for value, part in self._users.get(day, {}).items():
                        grouped.setdefault(value, []).append(part)
            elif dimension == "feature":
                for summary in self._of(days):
                    for value, part in summary.features.items():
                        grouped.setdefault(value, []).append(part)
            else:
                index = 0 if dimension == "provider" else 1
                for key, part in self._pairs(days).items():
                    grouped.setdefault(key[index], []).append(part)
            sums = {value: _merged(parts) for value, parts in grouped.items()}
            found[dimension] = _breakdown_rows(sums, dimension)
        return found

    def trend(self, days: Sequence[str], period: PeriodRange) -> Trend:
        current, previous = self._of(days), self._of(previous_days(period))
        return _trend(
            sum(s.total.counts[_COST] for s in current),
            sum(s.total.counts[_COST] for s in previous),
            sum(s.total.counts[_REQUESTS] for s in current),
            sum(s.total.counts[_REQUESTS] for s in previous),
            period,
        )

    def anomalies(self, period: PeriodRange) -> list[Anomaly]:
        days = [*lookback_days(period), *days_of(period)]
        costs = {day: s.total.counts[_COST] for day in days if (s := self._days.get(day))}
        return _anomalies(
            # The rows of days outside the window are never read for a driver: all may go.
            find_anomalies(self._rows, days_of(period), day_costs=costs)
        )

    def unknown_models(self, days: Sequence[str]) -> list[UnknownModel]:
        pairs = self._pairs(days).items()
        return _unknown_models(
            {key: part.counts[_UNPRICED] for key, part in pairs if part.counts[_UNPRICED]}
        )


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
