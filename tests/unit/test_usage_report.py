"""The data agent's computations: checked against sums recomputed straight from the records.

The synthetic workspace (30 days ending 2026-11-20, a planted anomaly on 2026-11-12) gives
realistic rollups; small hand-made rollups pin the edge cases.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import pytest

from devstack.synthetic import SyntheticWorkspace, generate
from shared.models.dimensions import DIMENSIONS
from shared.models.findings import NONE_KEY, DataReport, UsageFilters
from shared.models.period import AbsolutePeriod, PeriodRange
from shared.models.usage import UsageRecord, usage_record
from shared.usage import report
from shared.usage.rollups import (
    DailyRollup,
    RollupBatch,
    UserDailyRollup,
    accumulate,
    record_cost_nanousd,
)

END = date(2026, 11, 20)


def period(first: str, last: str) -> PeriodRange:
    """The whole UTC days ``first`` to ``last`` (inclusive)."""
    return AbsolutePeriod(start=first, end=last).resolve()


PERIOD = period("2026-10-22", "2026-11-20")


def cents(nanousd: int) -> float:
    return float((Decimal(nanousd) / 10**9).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN))


def cost_nano(record: UsageRecord) -> int:
    """The record's cost as ingest prices it (test_rollup checks that against the table)."""
    cost = record_cost_nanousd(record)
    assert cost is not None
    return cost


def row(day: str, cost_usd: float, *, feature: str | None = "f", **fields: Any) -> DailyRollup:
    base: dict[str, Any] = {
        "day": day,
        "provider": "openai",
        "model": "gpt-4o",
        "feature": feature,
        "requests": 10,
        "cost_nanousd": round(cost_usd * 1e9),
    }
    return DailyRollup(**(base | fields))


@pytest.fixture(scope="module")
def workspace() -> SyntheticWorkspace:
    return generate(end=END)


@pytest.fixture(scope="module")
def batch(workspace: SyntheticWorkspace) -> RollupBatch:
    return accumulate(workspace.records)


@pytest.fixture(scope="module")
def daily(batch: RollupBatch) -> list[DailyRollup]:
    return list(batch.daily.values())


@pytest.fixture(scope="module")
def users(batch: RollupBatch) -> list[UserDailyRollup]:
    return list(batch.users.values())


@pytest.fixture(scope="module")
def full_report(daily: list[DailyRollup], users: list[UserDailyRollup]) -> DataReport:
    return report.build_data_report(daily, users, PERIOD)


# --- which days ---------------------------------------------------------------------------


def test_days_of_a_day_aligned_period() -> None:
    days = report.days_of(PERIOD)
    assert (len(days), days[0], days[-1]) == (30, "2026-10-22", "2026-11-20")
    assert report.previous_period(PERIOD) == PERIOD.previous()
    assert report.previous_days(PERIOD)[0] == "2026-09-22"
    assert report.previous_days(PERIOD)[-1] == "2026-10-21"
    assert report.lookback_days(PERIOD) == [f"2026-10-{d}" for d in range(15, 22)]
    needed = report.days_needed(PERIOD)
    assert (len(needed), needed[0], needed[-1]) == (60, "2026-09-22", "2026-11-20")


def test_days_of_a_period_between_midnights_are_the_whole_days_it_touches() -> None:
    last_7d = PeriodRange(
        start=datetime(2026, 11, 13, 14, 30, tzinfo=UTC),
        end=datetime(2026, 11, 20, 14, 30, tzinfo=UTC),
    )
    assert report.days_of(last_7d) == [f"2026-11-{d}" for d in range(13, 21)]
    # The previous period never shares a day with the period: 8 whole days before it.
    assert report.previous_period(last_7d) == period("2026-11-05", "2026-11-12")
    one_day = PeriodRange(
        start=datetime(2026, 11, 20, tzinfo=UTC), end=datetime(2026, 11, 20, 0, 0, 1, tzinfo=UTC)
    )
    assert report.days_of(one_day) == ["2026-11-20"]


# --- totals and breakdowns ----------------------------------------------------------------


def test_totals_equal_sums_from_the_records(
    workspace: SyntheticWorkspace, full_report: DataReport
) -> None:
    records = workspace.records
    totals = full_report.totals
    errors = sum(1 for r in records if r.status == "error")
    assert totals.requests == len(records)
    assert totals.errors == errors
    assert totals.error_rate == round(errors / len(records), 4)
    assert totals.input_tokens == sum(r.input_tokens for r in records)
    assert totals.cached_input_tokens == sum(r.cached_input_tokens for r in records)
    assert totals.output_tokens == sum(r.output_tokens for r in records)
    assert totals.cost_usd == pytest.approx(cents(sum(cost_nano(r) for r in records)), abs=1e-6)
    assert totals.unpriced_requests == 0


def test_latency_percentiles_are_within_1_percent_of_the_true_ones(
    workspace: SyntheticWorkspace, full_report: DataReport
) -> None:
    latencies = sorted(r.latency_ms for r in workspace.records if r.latency_ms is not None)
    p50, p95 = full_report.totals.latency_p50_ms, full_report.totals.latency_p95_ms
    assert p50 is not None
    assert p95 is not None
    # The "lower" empirical quantiles, as the sketch computes them; the report rounds to 0.1.
    true_p50 = latencies[int(0.5 * (len(latencies) - 1))]
    true_p95 = latencies[int(0.95 * (len(latencies) - 1))]
    assert p50 == pytest.approx(true_p50, rel=0.01, abs=0.05)
    assert p95 == pytest.approx(true_p95, rel=0.01, abs=0.05)


@pytest.mark.parametrize("dimension", DIMENSIONS)
def test_every_breakdown_adds_up_to_the_totals(full_report: DataReport, dimension: str) -> None:
    rows = full_report.breakdown[dimension]  # type: ignore[index]
    totals = full_report.totals
    for field in ("requests", "errors", "input_tokens", "cached_input_tokens", "output_tokens"):
        assert sum(getattr(r, field) for r in rows) == getattr(totals, field), field
    # Each row is rounded to the cent on its own.
    assert abs(sum(r.cost_usd for r in rows) - totals.cost_usd) <= 0.005 * (len(rows) + 1)
    assert sum(r.share_of_cost for r in rows) == pytest.approx(1.0, abs=1e-3)
    assert len({r.key for r in rows}) == len(rows)


def test_breakdowns_by_cost_then_key_and_days_in_order(
    workspace: SyntheticWorkspace, full_report: DataReport
) -> None:
    features = full_report.breakdown["feature"]
    assert [r.cost_usd for r in features] == sorted((r.cost_usd for r in features), reverse=True)
    assert features[0].key == "summarize_thread"
    by_feature: dict[str | None, int] = defaultdict(int)
    for record in workspace.records:
        by_feature[record.feature] += cost_nano(record)
    assert {r.key: r.cost_usd for r in features} == {
        key: cents(cost) for key, cost in by_feature.items()
    }
    days = [r.key for r in full_report.breakdown["day"]]
    assert days == report.days_of(PERIOD)
    providers = {r.key: r.requests for r in full_report.breakdown["provider"]}
    assert providers == {
        p: sum(1 for r in workspace.records if r.provider == p)
        for p in ("openai", "anthropic", "cohere")
    }


def test_calls_with_no_user_or_feature_are_keyed_none(
    workspace: SyntheticWorkspace, full_report: DataReport
) -> None:
    by_user = {r.key: r for r in full_report.breakdown["user"]}
    no_user = [r for r in workspace.records if r.user is None]
    assert by_user[NONE_KEY].requests == len(no_user) > 0
    assert by_user[NONE_KEY].latency_p50_ms is None  # user rollups keep no latency
    rows = [row("2026-11-01", 1.0, feature=None), row("2026-11-01", 3.0, feature="b")]
    assert [(r.key, r.share_of_cost) for r in report.breakdown_by(rows, "feature")] == [
        ("b", 0.75),
        (NONE_KEY, 0.25),
    ]


def test_ties_in_cost_are_ordered_by_key() -> None:
    rows = [row("2026-11-01", 2.0, model="m-b"), row("2026-11-01", 2.0, model="m-a")]
    assert [r.key for r in report.breakdown_by(rows, "model")] == ["m-a", "m-b"]


def test_a_dimension_the_rollup_does_not_carry_is_refused() -> None:
    user_row = UserDailyRollup(
        day="2026-11-01", user="u", provider="openai", model="gpt-4o", requests=1
    )
    with pytest.raises(ValueError, match="model"):
        report.breakdown_by([user_row], "model")
    with pytest.raises(ValueError, match="user"):
        report.breakdown_by([row("2026-11-01", 1.0)], "user")


# --- trend --------------------------------------------------------------------------------


def test_trend_against_a_previous_period_with_known_numbers() -> None:
    week = period("2026-11-08", "2026-11-14")
    current = [row("2026-11-08", 30.0, requests=100), row("2026-11-14", 20.0, requests=50)]
    previous = [row("2026-11-01", 40.0, requests=200)]
    trend = report.trend(current, previous, week)
    assert trend.previous_period == period("2026-11-01", "2026-11-07")
    assert trend.previous_cost_usd == 40.0
    assert trend.cost_change_usd == 10.0
    assert trend.cost_change_pct == 25.0
    assert trend.previous_requests == 200
    assert trend.requests_change_pct == -25.0


def test_trend_from_nothing_has_no_percentage(full_report: DataReport) -> None:
    trend = full_report.trend
    assert trend.previous_cost_usd == 0.0
    assert trend.previous_requests == 0
    assert trend.cost_change_pct is None
    assert trend.requests_change_pct is None
    assert trend.cost_change_usd == full_report.totals.cost_usd


def test_trend_of_the_synthetic_halves(
    workspace: SyntheticWorkspace, daily: list[DailyRollup], users: list[UserDailyRollup]
) -> None:
    second_half = period("2026-11-06", "2026-11-20")
    built = report.build_data_report(daily, users, second_half)
    first = [r for r in workspace.records if r.day < "2026-11-06"]
    second = [r for r in workspace.records if r.day >= "2026-11-06"]
    first_cost, second_cost = sum(map(cost_nano, first)), sum(map(cost_nano, second))
    assert built.totals.requests == len(second)
    assert built.trend.previous_requests == len(first)
    assert built.trend.previous_cost_usd == cents(first_cost)
    assert built.trend.cost_change_usd == cents(second_cost - first_cost)
    assert built.trend.cost_change_pct == round((second_cost - first_cost) / first_cost * 100, 1)


# --- anomalies ----------------------------------------------------------------------------


def test_the_planted_anomaly_day_and_driver(
    workspace: SyntheticWorkspace, full_report: DataReport
) -> None:
    assert [a.day for a in full_report.anomalies] == ["2026-11-12"]
    anomaly = full_report.anomalies[0]
    planted = workspace.manifest.anomaly
    assert (anomaly.driver.feature, anomaly.driver.model, anomaly.driver.provider) == (
        planted.feature,
        planted.model,
        planted.provider,
    )
    day_cost = sum(cost_nano(r) for r in workspace.records if r.day == "2026-11-12")
    assert anomaly.cost_usd == cents(day_cost)
    window = [
        sum(cost_nano(r) for r in workspace.records if r.day == f"2026-11-{d:02d}")
        for d in range(5, 12)
    ]
    assert anomaly.rolling_median_usd == cents(int(statistics.median(window)))
    assert anomaly.ratio == round(day_cost / statistics.median(window), 2) >= 3
    research = sum(
        cost_nano(r)
        for r in workspace.records
        if r.day == "2026-11-12" and r.feature == "research_agent"
    )
    # The research agent never ran before: its own rolling median is zero.
    assert (anomaly.driver.cost_usd, anomaly.driver.rolling_median_usd) == (cents(research), 0.0)
    assert anomaly.driver.increase_usd == cents(research)


def test_only_days_inside_the_period_are_reported(daily: list[DailyRollup]) -> None:
    assert report.anomalies(daily, period("2026-11-13", "2026-11-20")) == []
    assert report.anomalies(daily, period("2026-11-01", "2026-11-11")) == []
    one_day = period("2026-11-12", "2026-11-12")
    assert [a.day for a in report.anomalies(daily, one_day)] == ["2026-11-12"]
    # Without the lookback the day has no baseline to be far above.
    only_that_day = [r for r in daily if r.day == "2026-11-12"]
    assert report.anomalies(only_that_day, one_day) == []


def test_the_driver_rose_most_over_its_own_median_and_missing_days_cost_nothing() -> None:
    days = [f"2026-11-{d:02d}" for d in range(1, 8)]
    rows = [row(day, 10.0, feature="a") for day in days]
    # "b" ran on 3 of the 7 days: its median is 0 (its mean would be ~3.86).
    rows += [row(day, 9.0, feature="b") for day in days[4:]]
    rows += [row("2026-11-08", 26.0, feature="a"), row("2026-11-08", 18.0, feature="b")]
    found = report.anomalies(rows, period("2026-11-08", "2026-11-08"))
    assert len(found) == 1
    anomaly = found[0]
    assert (anomaly.cost_usd, anomaly.rolling_median_usd, anomaly.ratio) == (44.0, 10.0, 4.4)
    assert (anomaly.driver.feature, anomaly.driver.rolling_median_usd) == ("b", 0.0)
    assert anomaly.driver.increase_usd == 18.0
    # A day just under 3x the median is not an anomaly.
    calm = [*rows[:-2], row("2026-11-08", 29.99, feature="a")]
    assert report.anomalies(calm, period("2026-11-08", "2026-11-08")) == []


def test_a_window_with_too_few_days_of_spend_gives_no_baseline() -> None:
    # 3 days of spend in the 7 before: the median is 0, so nothing is "far above" it.
    rows = [row(f"2026-11-0{d}", 1.0) for d in (5, 6, 7)] + [row("2026-11-08", 100.0)]
    assert report.anomalies(rows, period("2026-11-08", "2026-11-08")) == []
    rows.append(row("2026-11-04", 1.0))
    assert [a.ratio for a in report.anomalies(rows, period("2026-11-08", "2026-11-08"))] == [100.0]


# --- unknown models and filters -----------------------------------------------------------


def test_a_model_the_price_table_does_not_know_is_reported_not_free() -> None:
    ts = datetime(2026, 11, 2, 9, tzinfo=UTC)
    known = usage_record(
        ts=ts, provider="openai", model="gpt-4o", input_tokens=1000, output_tokens=10
    )
    unknown = [
        usage_record(
            ts=ts + timedelta(minutes=n),
            provider="acme",
            model="acme-private-llm",
            feature="f",
            input_tokens=5000,
            output_tokens=500,
        )
        for n in range(3)
    ]
    batch = accumulate([known, *unknown])
    one_day = period("2026-11-02", "2026-11-02")
    built = report.build_data_report(batch.daily.values(), batch.users.values(), one_day)
    assert built.totals.requests == 4
    assert built.totals.unpriced_requests == 3
    assert built.totals.cost_usd == cents(cost_nano(known))
    assert [m.model_dump() for m in built.unknown_models] == [
        {"provider": "acme", "model": "acme-private-llm", "requests": 3}
    ]
    models = {r.key: (r.unpriced_requests, r.cost_usd) for r in built.breakdown["model"]}
    assert models["acme-private-llm"] == (3, 0.0)


def test_filters_by_model_feature_and_none(
    workspace: SyntheticWorkspace, daily: list[DailyRollup], users: list[UserDailyRollup]
) -> None:
    filters = UsageFilters(models=["gpt-4o"], features=["faq_answer", "classify_ticket"])
    built = report.build_data_report(daily, users, PERIOD, filters=filters)
    kept = [
        r
        for r in workspace.records
        if r.model == "gpt-4o" and r.feature in ("faq_answer", "classify_ticket")
    ]
    assert built.totals.requests == len(kept)
    assert built.totals.cost_usd == cents(sum(map(cost_nano, kept)))
    assert {r.key for r in built.breakdown["feature"]} == {"faq_answer", "classify_ticket"}
    # Per-user rollups cannot be filtered by model or feature: no user breakdown.
    assert "user" not in built.breakdown
    assert built.anomalies == []  # neither feature drove the anomaly
    no_feature = [row("2026-11-01", 1.0, feature=None), row("2026-11-01", 2.0, feature="x")]
    assert report.filter_rows(no_feature, UsageFilters(features=[NONE_KEY])) == no_feature[:1]


def test_a_users_filter_reports_from_the_per_user_rollups(
    workspace: SyntheticWorkspace, daily: list[DailyRollup], users: list[UserDailyRollup]
) -> None:
    who = ["user-01@example.com", NONE_KEY]
    built = report.build_data_report(daily, users, PERIOD, filters=UsageFilters(users=who))
    kept = [r for r in workspace.records if r.user in ("user-01@example.com", None)]
    assert built.totals.requests == len(kept)
    assert built.totals.output_tokens == sum(r.output_tokens for r in kept)
    assert built.totals.latency_p50_ms is None
    assert set(built.breakdown) == {"user", "day"}
    assert {r.key for r in built.breakdown["user"]} == {"user-01@example.com", NONE_KEY}
    assert built.anomalies == []
    with pytest.raises(ValueError, match="users filter"):
        report.build_data_report(
            daily, users, PERIOD, filters=UsageFilters(users=who, models=["gpt-4o"])
        )


# --- the whole report ---------------------------------------------------------------------


def test_empty_input_gives_zero_totals() -> None:
    built = report.build_data_report([], [], PERIOD)
    totals = built.totals
    assert (totals.requests, totals.errors, totals.error_rate, totals.cost_usd) == (0, 0, 0.0, 0.0)
    assert (totals.latency_p50_ms, totals.latency_p95_ms) == (None, None)
    assert built.breakdown == {dimension: [] for dimension in DIMENSIONS}
    assert (built.trend.cost_change_usd, built.trend.cost_change_pct) == (0.0, None)
    assert (built.anomalies, built.unknown_models) == ([], [])


def test_rows_of_days_outside_what_is_needed_are_ignored(
    daily: list[DailyRollup], users: list[UserDailyRollup]
) -> None:
    last_week = period("2026-11-14", "2026-11-20")
    needed = set(report.days_needed(last_week))
    exact = report.build_data_report(
        [r for r in daily if r.day in needed], [u for u in users if u.day in needed], last_week
    )
    assert report.build_data_report(daily, users, last_week) == exact
    assert [r.key for r in exact.breakdown["day"]] == report.days_of(last_week)


def test_the_report_round_trips_through_json(full_report: DataReport) -> None:
    assert DataReport.model_validate_json(full_report.model_dump_json()) == full_report
