"""The data report's fast folds (field by field, per (day, provider, model) cell, per-day
summaries kept by the rows they were made of) give exactly the figures of the
straightforward row-by-row fold below, on random rollups: list prices and a workspace's
book, rows in the store's order and shuffled, with and without filters."""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

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
from shared.models.period import AbsolutePeriod, PeriodRange
from shared.models.usage import UsageRecord, usage_record
from shared.price_book import PriceBook, PriceEntry
from shared.usage import report, repricing, sketches
from shared.usage.repricing import reprice
from shared.usage.rollups import DailyRollup, UserDailyRollup, accumulate
from shared.usage.savings import cents, nanousd_to_usd

END = date(2026, 11, 20)
PERIOD = AbsolutePeriod(start="2026-11-07", end="2026-11-20").resolve()
PRIVATE = "acme-private-1"  # no list price: unpriced at list prices, priced by the book
MODELS = (
    ("openai", "gpt-4o"),
    ("openai", "gpt-4o-mini"),
    ("anthropic", "claude-haiku-4-5"),
    ("google", "gemini-2.5-flash"),
    ("openai", PRIVATE),
)
FEATURES = ("chat", "search", "summarize", None)
USERS = ("u-1", "u-2", "u-3", None)
BOOK = PriceBook.of(
    [
        # A discount from a day inside the period: the days before keep the list price.
        PriceEntry("openai", "gpt-4o", discount_pct=Decimal(15), from_=date(2026, 11, 12)),
        PriceEntry(
            "anthropic", "claude-haiku-4-5", input_mtok=Decimal("0.7"), output_mtok=Decimal(3)
        ),
        PriceEntry("openai", PRIVATE, input_mtok=Decimal("0.4"), output_mtok=Decimal("1.6")),
    ]
)


# --- the straightforward fold: one row at a time, as the report was first written ---------


def ref_quantile(sketch: dict[str, int], q: float) -> float | None:
    bins = sorted(
        ((k, c) for k, c in sketch.items() if c > 0),
        key=lambda kc: -math.inf if kc[0] == sketches.ZERO_KEY else int(kc[0]),
    )
    total = sum(c for _, c in bins)
    if total == 0:
        return None
    rank, seen = q * (total - 1), 0
    for key, count in bins:
        seen += count
        if seen > rank:
            return sketches.bin_value(key)
    return sketches.bin_value(bins[-1][0])


def usd(nanousd: int) -> float:
    return cents(nanousd_to_usd(nanousd))


def rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def pct(current: int, previous: int) -> float | None:
    return round((current - previous) / previous * 100, 1) if previous else None


def ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def ref_totals(rows: Iterable[DailyRollup | UserDailyRollup]) -> UsageTotals:
    sums = dict.fromkeys(
        (
            "requests",
            "errors",
            "input_tokens",
            "cached_input_tokens",
            "output_tokens",
            "cost_nanousd",
            "unpriced_requests",
        ),
        0,
    )
    latency: dict[str, int] = {}
    for row in rows:
        for name in sums:
            sums[name] += getattr(row, name)
        if isinstance(row, DailyRollup):
            for key, count in row.latency_sketch.items():
                latency[key] = latency.get(key, 0) + count
    return UsageTotals(
        requests=sums["requests"],
        errors=sums["errors"],
        error_rate=rate(sums["errors"], sums["requests"]),
        input_tokens=sums["input_tokens"],
        cached_input_tokens=sums["cached_input_tokens"],
        output_tokens=sums["output_tokens"],
        cost_usd=usd(sums["cost_nanousd"]),
        unpriced_requests=sums["unpriced_requests"],
        latency_p50_ms=ms(ref_quantile(latency, 0.5)),
        latency_p95_ms=ms(ref_quantile(latency, 0.95)),
    )


def ref_key(row: DailyRollup | UserDailyRollup, dimension: Dimension) -> str:
    if dimension == "day":
        return row.day
    if isinstance(row, UserDailyRollup):
        return row.user or NONE_KEY
    if dimension == "feature":
        return row.feature or NONE_KEY
    return str(getattr(row, dimension))


def ref_breakdown(
    rows: Sequence[DailyRollup | UserDailyRollup], dimension: Dimension
) -> list[BreakdownRow]:
    groups: dict[str, list[DailyRollup | UserDailyRollup]] = {}
    for row in rows:
        groups.setdefault(ref_key(row, dimension), []).append(row)
    costs = {k: sum(r.cost_nanousd for r in g) for k, g in groups.items()}
    whole = sum(costs.values())
    order = sorted(groups) if dimension == "day" else sorted(groups, key=lambda k: (-costs[k], k))
    return [
        BreakdownRow(
            **ref_totals(groups[k]).model_dump(), key=k, share_of_cost=rate(costs[k], whole)
        )
        for k in order
    ]


def ref_trend(
    current: Sequence[DailyRollup | UserDailyRollup],
    previous: Sequence[DailyRollup | UserDailyRollup],
) -> Trend:
    cost, before = sum(r.cost_nanousd for r in current), sum(r.cost_nanousd for r in previous)
    requests = sum(r.requests for r in current)
    requests_before = sum(r.requests for r in previous)
    return Trend(
        previous_period=report.previous_period(PERIOD),
        previous_cost_usd=usd(before),
        cost_change_usd=cents(nanousd_to_usd(cost - before)),
        cost_change_pct=pct(cost, before),
        previous_requests=requests_before,
        requests_change_pct=pct(requests, requests_before),
    )


def window(day: str) -> list[str]:
    first = date.fromisoformat(day)
    return [(first - timedelta(days=back)).isoformat() for back in range(7, 0, -1)]


def ref_anomalies(rows: Sequence[DailyRollup]) -> list[Anomaly]:
    """Day cost >= 3x the median of the 7 days before; the driver the group whose cost rose
    most over its own median, ties to the first in (provider, model, feature) order."""
    day_cost: dict[str, int] = {}
    groups: dict[tuple[str, str, str | None], dict[str, int]] = {}
    for row in rows:
        day_cost[row.day] = day_cost.get(row.day, 0) + row.cost_nanousd
        costs = groups.setdefault((row.provider, row.model, row.feature), {})
        costs[row.day] = costs.get(row.day, 0) + row.cost_nanousd
    found = []
    for day in report.days_of(PERIOD):
        median = int(statistics.median(day_cost.get(d, 0) for d in window(day)))
        cost = day_cost.get(day, 0)
        if median == 0 or cost < 3 * median:
            continue
        best: tuple[int, AnomalyDriver] | None = None
        for (provider, model, feature), costs in sorted(
            groups.items(), key=lambda g: (g[0][0], g[0][1], g[0][2] or "")
        ):
            if day not in costs:
                continue
            own = int(statistics.median(costs.get(d, 0) for d in window(day)))
            rise = costs[day] - own
            if best is None or rise > best[0]:
                driver = AnomalyDriver(
                    provider=provider,
                    model=model,
                    feature=feature,
                    cost_usd=usd(costs[day]),
                    rolling_median_usd=usd(own),
                    increase_usd=cents(nanousd_to_usd(rise)),
                )
                best = (rise, driver)
        assert best is not None
        found.append(
            Anomaly(
                day=day,
                cost_usd=usd(cost),
                rolling_median_usd=usd(median),
                ratio=round(cost / median, 2),
                driver=best[1],
            )
        )
    return found


def ref_unknown(rows: Sequence[DailyRollup]) -> list[UnknownModel]:
    unpriced: dict[tuple[str, str], int] = {}
    for row in rows:
        if row.unpriced_requests:
            key = (row.provider, row.model)
            unpriced[key] = unpriced.get(key, 0) + row.unpriced_requests
    return [
        UnknownModel(provider=p, model=m, requests=n)
        for (p, m), n in sorted(unpriced.items(), key=lambda item: (-item[1], item[0]))
    ]


def allowed(value: str | None, wanted: Sequence[str] | None) -> bool:
    return wanted is None or (value or NONE_KEY) in wanted


def ref_report(
    daily: Sequence[DailyRollup], users: Sequence[UserDailyRollup], filters: UsageFilters
) -> DataReport:
    own, before = set(report.days_of(PERIOD)), set(report.previous_days(PERIOD))
    if filters.users is not None:
        kept = [u for u in users if allowed(u.user, filters.users)]
        own_users = [u for u in kept if u.day in own]
        return DataReport(
            period=PERIOD,
            totals=ref_totals(own_users),
            breakdown={d: ref_breakdown(own_users, d) for d in DIMENSIONS if d in ("user", "day")},
            trend=ref_trend(own_users, [u for u in kept if u.day in before]),
            anomalies=[],
        )
    rows = [
        r
        for r in daily
        if allowed(r.model, filters.models)
        and allowed(r.provider, filters.providers)
        and allowed(r.feature, filters.features)
    ]
    current = [r for r in rows if r.day in own]
    current_users = [u for u in users if u.day in own]
    filtered = filters != UsageFilters()
    return DataReport(
        period=PERIOD,
        totals=ref_totals(current),
        breakdown={
            d: ref_breakdown(current_users if d == "user" else current, d)
            for d in DIMENSIONS
            if not (filtered and d == "user")
        },
        trend=ref_trend(current, [r for r in rows if r.day in before]),
        anomalies=ref_anomalies(rows),
        unknown_models=ref_unknown(current),
    )


# --- random rollups -----------------------------------------------------------------------


def random_records(seed: int) -> list[UsageRecord]:
    """~30 days of calls on a few models, features and users, with errors, batch calls,
    repeats, calls without latency, and a spike on one day of the period."""
    rng = random.Random(seed)
    spike = (END - timedelta(days=rng.randrange(0, 10))).isoformat()
    found = []
    for back in range(30):
        day = END - timedelta(days=back)
        calls = rng.randrange(5, 40) * (8 if day.isoformat() == spike else 1)
        for n in range(calls):
            provider, model = rng.choice(MODELS)
            found.append(
                usage_record(
                    record_id=f"{seed}-{day}-{n}",
                    ts=datetime(day.year, day.month, day.day, tzinfo=UTC)
                    + timedelta(seconds=rng.randrange(86_000)),
                    provider=provider,
                    model=model,
                    feature=rng.choice(FEATURES),
                    user=rng.choice(USERS),
                    status="error" if rng.random() < 0.1 else "ok",
                    input_tokens=rng.randrange(0, 20_000),
                    cached_input_tokens=0,
                    output_tokens=rng.randrange(0, 3_000),
                    latency_ms=None if rng.random() < 0.1 else rng.randrange(1, 60_000),
                    batch=rng.random() < 0.15,
                    request_hash=f"h{rng.randrange(5)}" if rng.random() < 0.3 else None,
                )
            )
    return found


def store_order(rows: Iterable[Any], cls: type[DailyRollup] | type[UserDailyRollup]) -> list[Any]:
    """As the store hands rows out: by day, then by identity (None first)."""
    names = (
        ("provider", "model", "feature") if cls is DailyRollup else ("user", "provider", "model")
    )

    def key(row: Any) -> tuple[str, ...]:
        parts = tuple(getattr(row, n) for n in names)
        return (row.day, *("" if p is None else "\x00" + p for p in parts))

    return sorted(rows, key=key)


FILTERS = (
    UsageFilters(),
    UsageFilters(models=["gpt-4o", PRIVATE]),
    UsageFilters(providers=["anthropic"]),
    UsageFilters(features=[NONE_KEY, "search"]),
    UsageFilters(features=["chat"], models=["gpt-4o-mini"]),
    UsageFilters(users=["u-2", NONE_KEY]),
)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("book", [PriceBook.LIST, BOOK], ids=["list", "book"])
@pytest.mark.parametrize("shuffled", [False, True], ids=["store-order", "shuffled"])
def test_the_fast_folds_equal_the_straightforward_fold(
    seed: int, book: PriceBook, shuffled: bool
) -> None:
    batch = accumulate(random_records(seed))
    daily = reprice(store_order(batch.daily.values(), DailyRollup), book)
    users = reprice(store_order(batch.users.values(), UserDailyRollup), book)
    if shuffled:
        random.Random(seed).shuffle(daily)
        random.Random(seed + 1).shuffle(users)
    assert any(r.unpriced_requests for r in daily) == (book is PriceBook.LIST)
    expected = ref_report(daily, users, UsageFilters())
    assert expected.anomalies, "the spike is an anomaly: the driver path is exercised"
    # Per-day summaries (what ``agents_data`` uses unfiltered), twice: made, then kept.
    current = report.days_of(PERIOD)
    for _ in range(2):
        summed = report.Summaries(daily, users)
        assert summed.totals(current) == expected.totals
        assert summed.breakdown(current, DIMENSIONS) == expected.breakdown
        assert summed.trend(current, PERIOD) == expected.trend
        assert summed.anomalies(PERIOD) == expected.anomalies
        assert summed.unknown_models(current) == expected.unknown_models
    for filters in FILTERS:
        built = report.build_data_report(daily, users, PERIOD, filters=filters)
        assert built == ref_report(daily, users, filters), filters


def test_a_summary_is_not_used_for_other_rows() -> None:
    """Rows of a day that differ from those a summary was made of (here only the last one,
    same first row, same count) are summed again."""
    batch = accumulate(random_records(7))
    daily = store_order(batch.daily.values(), DailyRollup)
    users = store_order(batch.users.values(), UserDailyRollup)
    last_day = max(r.day for r in daily)
    before = report.Summaries(daily, users).totals([last_day])
    changed = list(daily)
    index = max(i for i, r in enumerate(changed) if r.day == last_day)
    changed[index] = changed[index].model_copy(
        update={"cost_nanousd": changed[index].cost_nanousd + 10**9, "requests": 1_000}
    )
    after = report.Summaries(changed, users).totals([last_day])
    assert after == ref_totals([r for r in changed if r.day == last_day])
    assert after.cost_usd == pytest.approx(before.cost_usd + 1)
    assert after.requests != before.requests


def test_quantiles_in_one_sort_equal_each_alone() -> None:
    rng = random.Random(3)
    for _ in range(200):
        sketch = {
            sketches.bin_key(rng.choice([0, rng.random(), rng.randrange(1, 10**6)])): rng.randrange(
                0, 5
            )
            for _ in range(rng.randrange(0, 30))
        }
        qs = (0.0, 0.5, 0.95, 1.0)
        assert sketches.quantiles(sketch, qs) == [ref_quantile(sketch, q) for q in qs]


def test_period_is_fixed() -> None:
    # The reference above reads PERIOD's days; a change of the period changes what is tested.
    assert isinstance(PERIOD, PeriodRange)
    assert report.days_of(PERIOD)[-1] == END.isoformat()


def test_rows_at_a_book_are_kept_for_the_same_rows_and_an_equal_book() -> None:
    batch = accumulate(random_records(11))
    daily = store_order(batch.daily.values(), DailyRollup)
    first = reprice(daily, BOOK)
    # Each row priced by hand, row by row, as the rows are the first time.
    assert first == [repricing._reprice([row], BOOK)[0] for row in daily]
    # An equal book (a new object, as each request builds its own): the same objects.
    again = reprice(list(daily), PriceBook.of(BOOK.entries))
    assert all(a is b for a, b in zip(first, again, strict=True))
    # Another book, or other rows: priced again.
    other = PriceBook.of([PriceEntry("openai", "gpt-4o", discount_pct=Decimal(50))])
    assert reprice(daily, other) == [repricing._reprice([row], other)[0] for row in daily]
    changed = [*daily[:-1], daily[-1].model_copy(update={"input_tokens": 10**6})]
    assert reprice(changed, BOOK)[-1] == repricing._reprice([changed[-1]], BOOK)[0]
    assert reprice(changed, BOOK)[-1] != first[-1]
