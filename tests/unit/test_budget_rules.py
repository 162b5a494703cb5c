"""The budget rules, pure (shared/budgets/rules.py, DESIGN §11): the UTC month, month to date,
the forecast from the last 7 full days, thresholds by actual or by forecast, the once-only
ids, and the webhook body built from the stored notification alone."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.budgets.rules import (
    Month,
    Standing,
    budget_alert,
    budget_notification_id,
    crossings,
    group_totals,
    standing,
    webhook_body,
)
from shared.models.budgets import BudgetDoc, BudgetScope
from shared.usage.rollups import DailyRollup

NANO = 1_000_000_000
AT = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def row(day: str, usd: float, model: str = "gpt-4o", feature: str | None = "chat") -> DailyRollup:
    return DailyRollup(
        day=day, provider="openai", model=model, feature=feature, cost_nanousd=int(usd * NANO)
    )


def budget(monthly: float, scope: BudgetScope | None = None) -> BudgetDoc:
    return BudgetDoc(
        budget_id="00000000000000ab",
        workspace_id="w",
        name="B",
        monthly_usd=monthly,
        scope=scope or BudgetScope(),
        thresholds=[0.5, 0.8, 1.0],
        created_by="u",
        created_at=AT,
        updated_at=AT,
    )


def test_the_month_is_the_utc_calendar_month() -> None:
    month = Month(AT)
    assert (month.key, month.label, month.days) == ("202611", "2026-11", 30)
    assert (month.period.start, month.period.end) == ("2026-11-01", "2026-11-30")
    assert month.days_left == pytest.approx(10.5)  # the rest of the 20th and 10 more days
    # The month, the rate's 7 days and the anomaly window before yesterday.
    assert month.read_range() == ("2026-11-01", "2026-11-20")
    early = Month(datetime(2026, 12, 2, 6, tzinfo=UTC))
    assert early.read_range() == ("2026-11-24", "2026-12-02")
    # 23:30 in New York on the 31st is already the 1st in UTC.
    late = Month(datetime.fromisoformat("2026-12-31T23:30:00-05:00"))
    assert late.key == "202701"
    assert late.days_left == pytest.approx(31 - 1 + 1 - 4.5 / 24)
    assert Month(datetime(2028, 2, 10, tzinfo=UTC)).days == 29


def test_month_to_date_and_forecast_from_the_last_seven_full_days() -> None:
    rows = [row(f"2026-11-{d:02d}", 10) for d in range(13, 20)]  # 13..19: $10 a day
    rows += [row("2026-11-20", 4), row("2026-10-31", 1000)]  # today so far; last month
    rows += [row("2026-11-05", 50)]  # in the month, before the rate's week
    now = standing(budget(1000), group_totals(rows, Month(AT)), Month(AT))
    assert now.spend_nanousd == (70 + 4 + 50) * NANO
    assert now.forecast_nanousd == (124 + 10 * 10.5) * NANO


def test_scope_counts_only_its_feature_model_and_provider() -> None:
    rows = [
        row("2026-11-20", 1, "gpt-4o", "chat"),
        row("2026-11-20", 2, "gpt-4o-mini", "chat"),
        row("2026-11-20", 4, "gpt-4o", "search"),
        row("2026-11-20", 8, "gpt-4o", None),
    ]
    totals = group_totals(rows, Month(AT))

    def spent(scope: BudgetScope) -> float:
        return standing(budget(10, scope), totals, Month(AT)).spend_nanousd / NANO

    assert spent(BudgetScope()) == 15
    assert spent(BudgetScope(feature="chat")) == 3
    assert spent(BudgetScope(model="gpt-4o")) == 13
    assert spent(BudgetScope(model="gpt-4o", feature="search")) == 4
    assert spent(BudgetScope(provider="openai")) == 15
    assert spent(BudgetScope(provider="anthropic")) == 0


def test_each_threshold_crossed_by_actual_else_by_forecast() -> None:
    b = budget(100)
    crossed = crossings(b, Standing(55 * NANO, 85 * NANO))
    assert [(c.threshold, c.crossed_by) for c in crossed] == [(0.5, "actual"), (0.8, "forecast")]
    assert crossings(b, Standing(49 * NANO, 49 * NANO)) == []
    assert [c.crossed_by for c in crossings(b, Standing(100 * NANO, 100 * NANO))] == ["actual"] * 3


def test_the_alert_id_is_its_once_only_key_and_the_body_its_stored_fields() -> None:
    b = budget(100)
    month = Month(AT)
    now = Standing(85 * NANO, 90 * NANO)
    (half, most) = crossings(b, now)[:2]
    assert budget_notification_id(b.budget_id, month, 0.8) == "b_00000000000000ab_202611_8000"
    doc = budget_alert(b, month, most, now, AT)
    assert doc.notification_id == "b_00000000000000ab_202611_8000"
    assert doc.text == (
        "Budget “B” crossed 80% of $100.00 for 2026-11: $85.00 spent so far, forecast $90.00."
    )
    body = webhook_body(doc)
    assert body == {
        "text": doc.text,
        "kind": "budget",
        "notification_id": doc.notification_id,
        "workspace_id": "w",
        "budget_id": "00000000000000ab",
        "budget_name": "B",
        "threshold": 0.8,
        "crossed_by": "actual",
        "spend_usd": 85.0,
        "forecast_usd": 90.0,
        "monthly_usd": 100.0,
        "period": {"start": "2026-11-01", "end": "2026-11-30"},
        "ts": "2026-11-20T12:00:00.000Z",
    }
    assert webhook_body(doc) == body  # the same every time
    forecast = budget_alert(b, month, crossings(b, Standing(10 * NANO, 60 * NANO))[0], now, AT)
    assert "forecast to cross 50% of $100.00" in forecast.text
    assert half.crossed_by == "actual"
