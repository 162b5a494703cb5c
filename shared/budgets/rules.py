"""What a budget has spent and where it is heading (DESIGN §11), pure over daily rollups.

- The month is the UTC calendar month of the moment judged; month to date is its days up
  to and including today (today so far).
- Forecast: month to date plus the run rate of the last 7 full UTC days (yesterday and
  the 6 before it; today is partial) times what is left of the month (the rest of today
  included). Month to date plus the rest, not the rate times the whole month: early in a
  month with a spike the rate alone would forecast less than what is already spent.
- A threshold ``t`` is crossed by actual spend when month to date >= ``t`` x monthly, else
  by forecast when the forecast is; each fires once per budget, month and threshold (the
  notification id is that key).
- An anomaly: yesterday judged by the data agent's rule (``shared.usage.anomalies``) over
  the whole workspace's spend, once per day.

Money is summed in exact integers (1e-9 USD) and turned into USD at the end.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Final

from shared.answer.default import usd
from shared.models.budgets import (
    BudgetDoc,
    BudgetScope,
    CrossedBy,
    NotificationDoc,
    Period,
    threshold_key,
)
from shared.usage.anomalies import ROLLING_WINDOW_DAYS, SpendAnomaly, find_anomalies
from shared.usage.rollups import DailyRollup

RATE_DAYS: Final = 7
NANO: Final = 1_000_000_000
SECONDS_A_DAY: Final = 86_400


@dataclass(frozen=True, slots=True)
class Month:
    """The UTC calendar month of ``now``, and the days a tick reads for it (worked out once:
    a tick asks for them for every budget)."""

    now: datetime
    today: date = field(init=False)
    days: int = field(init=False)
    key: str = field(init=False)  # YYYYMM
    label: str = field(init=False)  # YYYY-MM
    # What is left of the month, the rest of today included, in days.
    days_left: float = field(init=False)

    def __post_init__(self) -> None:
        now = self.now.astimezone(UTC)
        today = now.date()
        days = calendar.monthrange(today.year, today.month)[1]
        midnight = datetime(now.year, now.month, now.day, tzinfo=UTC)
        rest_of_today = 1.0 - (now - midnight).total_seconds() / SECONDS_A_DAY
        fields = {
            "today": today,
            "days": days,
            "key": f"{today.year:04d}{today.month:02d}",
            "label": f"{today.year:04d}-{today.month:02d}",
            "days_left": (days - today.day) + rest_of_today,
        }
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    @property
    def first(self) -> date:
        return self.today.replace(day=1)

    @property
    def last(self) -> date:
        return self.today.replace(day=self.days)

    @property
    def period(self) -> Period:
        return Period(start=self.first.isoformat(), end=self.last.isoformat())

    @property
    def yesterday(self) -> date:
        return self.today - timedelta(days=1)

    def read_range(self) -> tuple[str, str]:
        """The first and last day a tick reads: the month so far, the rate's 7 days and
        the anomaly window before yesterday (all of them UTC days)."""
        earliest = min(self.first, self.yesterday - timedelta(days=ROLLING_WINDOW_DAYS))
        return earliest.isoformat(), self.today.isoformat()


@dataclass(frozen=True, slots=True)
class Standing:
    """A budget this month: spend so far and the forecast, in 1e-9 USD."""

    spend_nanousd: int
    forecast_nanousd: int

    @property
    def spend_usd(self) -> float:
        return round(self.spend_nanousd / NANO, 2)

    @property
    def forecast_usd(self) -> float:
        return round(self.forecast_nanousd / NANO, 2)


# (provider, model, feature) -> (month to date, the rate's 7 days), in 1e-9 USD.
GroupTotals = dict[tuple[str, str, str | None], tuple[int, int]]


def group_totals(rows: Iterable[DailyRollup], month: Month) -> GroupTotals:
    """The rows (covering ``month.read_range()``) summed per group, once for every budget:
    a workspace has tens of groups and may have 1,000 budgets."""
    first = month.first.isoformat()
    today = month.today.isoformat()
    rate_first = (month.today - timedelta(days=RATE_DAYS)).isoformat()
    rate_last = month.yesterday.isoformat()
    totals: GroupTotals = {}
    for row in rows:
        key = (row.provider, row.model, row.feature)
        spend, rate = totals.get(key, (0, 0))
        if first <= row.day <= today:
            spend += row.cost_nanousd
        if rate_first <= row.day <= rate_last:
            rate += row.cost_nanousd
        totals[key] = (spend, rate)
    return totals


def in_scope(group: tuple[str, str, str | None], scope: BudgetScope) -> bool:
    provider, model, feature = group
    return (
        (scope.feature is None or feature == scope.feature)
        and (scope.model is None or model == scope.model)
        and (scope.provider is None or provider == scope.provider)
    )


def standing(budget: BudgetDoc, totals: GroupTotals, month: Month) -> Standing:
    """Month to date and forecast of ``budget`` from the workspace's ``group_totals``."""
    spend = rate = 0
    for group, (group_spend, group_rate) in totals.items():
        if in_scope(group, budget.scope):
            spend += group_spend
            rate += group_rate
    forecast = spend + round(rate / RATE_DAYS * month.days_left)
    return Standing(spend, forecast)


@dataclass(frozen=True, slots=True)
class Crossing:
    threshold: float
    crossed_by: CrossedBy


def crossings(budget: BudgetDoc, now: Standing) -> list[Crossing]:
    """Every threshold of ``budget`` crossed, and whether by actual spend or by forecast."""
    found = []
    for threshold in budget.thresholds:
        line = threshold * budget.monthly_usd * NANO
        if now.spend_nanousd >= line:
            found.append(Crossing(threshold, "actual"))
        elif now.forecast_nanousd >= line:
            found.append(Crossing(threshold, "forecast"))
    return found


def budget_notification_id(budget_id: str, month: Month, threshold: float) -> str:
    return f"b_{budget_id}_{month.key}_{threshold_key(threshold)}"


def anomaly_notification_id(day: date) -> str:
    return f"a_{day.strftime('%Y%m%d')}"


def _percent(fraction: float) -> str:
    return f"{fraction * 100:,.4g}%"


def _at_prices(custom: bool) -> str:
    """What a text adds when the spend is at the workspace's own prices (docs/prices.md:
    every figure priced by the workspace's book says so)."""
    return " (at your prices)" if custom else ""


def budget_alert(
    budget: BudgetDoc,
    month: Month,
    crossing: Crossing,
    now: Standing,
    at: datetime,
    *,
    custom_prices: bool = False,
) -> NotificationDoc:
    """The notification of one threshold crossed (its text a one-line Slack message).
    ``custom_prices``: the spend is at the workspace's own prices, and the text says so."""
    limit = usd(budget.monthly_usd)
    share = _percent(crossing.threshold)
    if crossing.crossed_by == "actual":
        text = (
            f"Budget “{budget.name}” crossed {share} of {limit} for {month.label}: "
            f"{usd(now.spend_usd)} spent so far, forecast {usd(now.forecast_usd)}"
            f"{_at_prices(custom_prices)}."
        )
    else:
        text = (
            f"Budget “{budget.name}” is forecast to cross {share} of {limit} in {month.label}: "
            f"forecast {usd(now.forecast_usd)}, {usd(now.spend_usd)} spent so far"
            f"{_at_prices(custom_prices)}."
        )
    return NotificationDoc(
        notification_id=budget_notification_id(budget.budget_id, month, crossing.threshold),
        workspace_id=budget.workspace_id,
        kind="budget",
        text=text,
        created_at=at,
        period=month.period,
        spend_usd=now.spend_usd,
        budget_id=budget.budget_id,
        budget_name=budget.name,
        threshold=crossing.threshold,
        crossed_by=crossing.crossed_by,
        forecast_usd=now.forecast_usd,
        monthly_usd=budget.monthly_usd,
    )


def yesterdays_anomaly(rows: Sequence[DailyRollup], month: Month) -> SpendAnomaly | None:
    """Yesterday's spend anomaly, if it was one (the rows cover the 7 days before it)."""
    found = find_anomalies(rows, days=[month.yesterday.isoformat()])
    return found[0] if found else None


def anomaly_alert(
    workspace_id: str, anomaly: SpendAnomaly, at: datetime, *, custom_prices: bool = False
) -> NotificationDoc:
    driver = anomaly.driver
    feature = f", feature {driver.feature}" if driver.feature else ""
    spend = anomaly.cost_nanousd / NANO
    median = anomaly.rolling_median_nanousd / NANO
    text = (
        f"Spend anomaly on {anomaly.day}: {usd(spend)}, {anomaly.ratio:.1f}x the 7-day median "
        f"of {usd(median)}; driven by {driver.provider} {driver.model}{feature} "
        f"({usd(driver.cost_nanousd / NANO)}){_at_prices(custom_prices)}."
    )
    return NotificationDoc(
        notification_id=anomaly_notification_id(date.fromisoformat(anomaly.day)),
        workspace_id=workspace_id,
        kind="anomaly",
        text=text,
        created_at=at,
        period=Period(start=anomaly.day, end=anomaly.day),
        spend_usd=round(spend, 2),
        detail={
            "day": anomaly.day,
            "rolling_median_usd": round(median, 2),
            "ratio": round(anomaly.ratio, 2),
            "driver": {
                "provider": driver.provider,
                "model": driver.model,
                "feature": driver.feature,
                "cost_usd": round(driver.cost_nanousd / NANO, 2),
                "rolling_median_usd": round(driver.rolling_median_nanousd / NANO, 2),
            },
        },
    )


def webhook_body(doc: NotificationDoc) -> dict[str, object]:
    """The webhook's JSON (DESIGN §11), the same bytes on every attempt: built from the stored
    notification only. ``notification_id`` lets a receiver drop a repeated delivery
    (delivery is at least once)."""
    body: dict[str, object] = {
        "text": doc.text,
        "kind": doc.kind,
        "notification_id": doc.notification_id,
        "workspace_id": doc.workspace_id,
    }
    if doc.kind == "budget":
        body |= {
            "budget_id": doc.budget_id,
            "budget_name": doc.budget_name,
            "threshold": doc.threshold,
            "crossed_by": doc.crossed_by,
        }
    body["spend_usd"] = doc.spend_usd
    if doc.kind == "budget":
        body |= {"forecast_usd": doc.forecast_usd, "monthly_usd": doc.monthly_usd}
    else:
        body["detail"] = doc.detail
    body["period"] = {"start": doc.period.start, "end": doc.period.end}
    body["ts"] = (
        doc.created_at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )
    return body
