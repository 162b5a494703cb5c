"""The spend-anomaly rule: a day far above the rolling median of the days before it.

Rule: a day is anomalous when its total cost is at least ``ANOMALY_RATIO`` (3) times the
median of the ``ROLLING_WINDOW_DAYS`` (7) calendar days before it. A day of the window with
no usage counts as costing nothing (that is what it cost). A window whose median is zero
gives no baseline (a rise from nothing has no ratio, as a trend from zero has no
percentage), so such a day is not judged: a workspace's first days are never "anomalies".

Driver: of the (provider, model, feature) groups that ran that day, the one whose cost rose
the most over the median of its own costs in the same window (a group that did not run on
a window day counts zero there). Ties go to the first group in (provider, model, feature)
order, so the answer never depends on the order of the rows.

Pure: computed in exact integers (1e-9 USD) over ``usage_daily`` rollups; callers round.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import groupby
from operator import attrgetter
from typing import Final

from shared.usage.rollups import DailyRollup
from shared.usage.savings import GroupKey, group_order

ANOMALY_RATIO: Final = 3.0
ROLLING_WINDOW_DAYS: Final = 7
_day_of: Final = attrgetter("day")
_cost_of: Final = attrgetter("cost_nanousd")


@dataclass(frozen=True, slots=True)
class SpendDriver:
    """The group that drove an anomalous day: its cost that day and its own rolling median."""

    provider: str
    model: str
    feature: str | None
    cost_nanousd: int
    rolling_median_nanousd: int

    @property
    def increase_nanousd(self) -> int:
        return self.cost_nanousd - self.rolling_median_nanousd


@dataclass(frozen=True, slots=True)
class SpendAnomaly:
    """A day at least ``ANOMALY_RATIO`` times the rolling median of the 7 days before it."""

    day: str
    cost_nanousd: int
    rolling_median_nanousd: int
    driver: SpendDriver

    @property
    def ratio(self) -> float:
        return self.cost_nanousd / self.rolling_median_nanousd


def window_days(day: str, length: int = ROLLING_WINDOW_DAYS) -> list[str]:
    """The ``length`` UTC days before ``day`` (``YYYY-MM-DD``), oldest first."""
    first = date.fromisoformat(day)
    return [(first - timedelta(days=back)).isoformat() for back in range(length, 0, -1)]


def daily_costs(rollups: Iterable[DailyRollup]) -> dict[str, int]:
    """Total cost (1e-9 USD) per day."""
    totals: dict[str, int] = {}
    # Rows come by day from the store: runs of one day summed at C speed.
    for day, run in groupby(rollups, _day_of):
        totals[day] = totals.get(day, 0) + sum(map(_cost_of, run))
    return totals


def _median(costs: Mapping[str, int], window: Sequence[str]) -> int:
    # The window has an odd number of days, so the median is one of the values: an integer.
    return int(statistics.median(costs.get(day, 0) for day in window))


def find_anomalies(
    rollups: Iterable[DailyRollup],
    days: Iterable[str] | None = None,
    *,
    day_costs: Mapping[str, int] | None = None,
) -> list[SpendAnomaly]:
    """The anomalous days among ``days`` (default: every day with rows), oldest first.

    The rows must cover the 7 days before each day to judge (the rolling window).
    ``day_costs``: the rows' ``daily_costs`` if the caller has them (the rows are then read
    only for the driver of a day found anomalous).
    """
    rows: list[DailyRollup] | None = None
    if day_costs is None:
        rows = list(rollups)
        day_costs = daily_costs(rows)
    totals = day_costs
    by_group: dict[GroupKey, dict[str, int]] | None = None  # for drivers: only if one is found
    found = []
    for day in sorted(set(totals if days is None else days)):
        window = window_days(day)
        median = _median(totals, window)
        cost = totals.get(day, 0)
        if median == 0 or cost < ANOMALY_RATIO * median:
            continue
        if by_group is None:
            by_group = _costs_by_group(rollups if rows is None else rows)
        found.append(
            SpendAnomaly(
                day=day,
                cost_nanousd=cost,
                rolling_median_nanousd=median,
                driver=_driver(by_group, day, window),
            )
        )
    return found


def _costs_by_group(rows: Iterable[DailyRollup]) -> dict[GroupKey, dict[str, int]]:
    """Cost (1e-9 USD) per (provider, model, feature) and day."""
    by_group: dict[GroupKey, dict[str, int]] = {}
    for row in rows:
        costs = by_group.setdefault((row.provider, row.model, row.feature), {})
        costs[row.day] = costs.get(row.day, 0) + row.cost_nanousd
    return by_group


def _driver(
    by_group: dict[GroupKey, dict[str, int]], day: str, window: Sequence[str]
) -> SpendDriver:
    """The group that ran on ``day`` whose cost rose the most over its own window median."""
    drivers = [
        SpendDriver(
            provider=provider,
            model=model,
            feature=feature,
            cost_nanousd=costs[day],
            rolling_median_nanousd=_median(costs, window),
        )
        for (provider, model, feature), costs in sorted(
            by_group.items(), key=lambda item: group_order(item[0])
        )
        if day in costs
    ]
    return max(drivers, key=lambda driver: driver.increase_nanousd)
