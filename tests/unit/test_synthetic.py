"""The synthetic workspace: deterministic, planted inefficiencies worth what the manifest says.

The manifest is computed with the documented formulas over rollups; these tests recompute
each saving independently, straight from the records, to prove the two agree.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from devstack import synthetic
from devstack.synthetic import SyntheticWorkspace, generate
from shared import pricing
from shared.models.recommendations import KINDS
from shared.models.usage import UsageRecord, parse_usage_record
from shared.usage.rollups import accumulate
from tests.support.usage import cost_nano

END = date(2026, 11, 20)
NOW = datetime(2026, 11, 21, tzinfo=UTC)


@pytest.fixture(scope="module")
def workspace() -> SyntheticWorkspace:
    return generate(end=END)


def feature_records(ws: SyntheticWorkspace, feature: str) -> list[UsageRecord]:
    return [r for r in ws.records if r.feature == feature]


def monthly(total: Decimal, days: int) -> float:
    return float(total / days * 30)


def cost(record: UsageRecord, prices: pricing.ModelPrices) -> Decimal:
    return prices.cost(record.input_tokens, record.cached_input_tokens, record.output_tokens)


def test_deterministic_for_a_seed() -> None:
    a, b = generate(end=END, days=10), generate(end=END, days=10)
    assert a.raw == b.raw
    assert a.manifest == b.manifest
    assert generate(end=END, days=10, seed=8).raw != a.raw


def test_covers_the_period_and_parses_as_the_plain_form(workspace: SyntheticWorkspace) -> None:
    manifest = workspace.manifest
    assert (manifest.start_day, manifest.end_day, manifest.days) == ("2026-10-22", "2026-11-20", 30)
    assert {r.day for r in workspace.records} == {
        f"2026-{m:02d}-{d:02d}"
        for m, d in [(10, d) for d in range(22, 32)] + [(11, d) for d in range(1, 21)]
    }
    assert [parse_usage_record(raw, now=NOW) for raw in workspace.raw[:200]] == workspace.records[
        :200
    ]
    assert len({r.record_id for r in workspace.records}) == len(workspace.records)


def test_every_kind_is_planted_once_with_positive_savings(workspace: SyntheticWorkspace) -> None:
    manifest = workspace.manifest
    assert [item.kind for item in manifest.inefficiencies] == list(KINDS)
    for item in manifest.inefficiencies:
        assert item.monthly_savings_usd > 0, item.kind


def test_background_triggers_nothing_but_the_plants(workspace: SyntheticWorkspace) -> None:
    rollups = list(accumulate(workspace.records).daily.values())
    found = synthetic.find_inefficiencies(
        rollups, days=workspace.manifest.days, price_at=workspace.manifest.price_at
    )
    assert sorted((f.kind, f.feature) for f in found) == sorted(
        (item.kind, item.feature) for item in workspace.manifest.inefficiencies
    )


def test_cheaper_model_savings(workspace: SyntheticWorkspace) -> None:
    item = workspace.manifest.by_kind("cheaper_model")
    assert (item.feature, item.model, item.target_model) == (
        "classify_ticket",
        "gpt-4o",
        "gpt-4o-mini",
    )
    at = workspace.manifest.price_at
    current = pricing.model_prices("openai", "gpt-4o", at)
    target = pricing.model_prices("openai", "gpt-4o-mini", at)
    records = feature_records(workspace, "classify_ticket")
    total = sum((cost(r, current) - cost(r, target) for r in records), Decimal(0))
    assert item.monthly_savings_usd == pytest.approx(monthly(total, 30), rel=1e-9)
    assert sum(r.output_tokens for r in records) / len(records) <= 64


def test_prompt_caching_savings(workspace: SyntheticWorkspace) -> None:
    item = workspace.manifest.by_kind("prompt_caching")
    prices = pricing.model_prices(item.provider, item.model, workspace.manifest.price_at)
    by_day: dict[str, list[UsageRecord]] = defaultdict(list)
    for record in feature_records(workspace, item.feature):
        by_day[record.day].append(record)
    total = Decimal(0)
    for records in by_day.values():
        prefix = min(r.input_tokens for r in records)
        total += len(records) * prefix * (prices.input_mtok - prices.cached_input_mtok) / 1_000_000
    assert all(r.cached_input_tokens == 0 for rs in by_day.values() for r in rs)
    assert item.monthly_savings_usd == pytest.approx(monthly(total, 30), rel=1e-9)


def test_batch_api_savings(workspace: SyntheticWorkspace) -> None:
    item = workspace.manifest.by_kind("batch_api")
    at = workspace.manifest.price_at
    standard = pricing.model_prices(item.provider, item.model, at)
    batch = pricing.model_prices(item.provider, item.model, at, batch=True)
    records = feature_records(workspace, item.feature)
    assert all(r.user is None and not r.batch for r in records)
    total = sum((cost(r, standard) - cost(r, batch) for r in records), Decimal(0))
    assert item.monthly_savings_usd == pytest.approx(monthly(total, 30), rel=1e-9)


def test_trim_outputs_savings_are_a_conservative_share_of_the_exact_excess(
    workspace: SyntheticWorkspace,
) -> None:
    item = workspace.manifest.by_kind("trim_outputs")
    cap = int(item.evidence["cap_tokens"])
    prices = pricing.model_prices(item.provider, item.model, workspace.manifest.price_at)
    records = feature_records(workspace, item.feature)
    exact = sum(max(0, r.output_tokens - cap) for r in records) * prices.output_mtok / 1_000_000
    exact_monthly = monthly(Decimal(exact), 30)
    # Buckets are counted at their lower bound: never more than the exact excess.
    assert 0.5 * exact_monthly <= item.monthly_savings_usd <= exact_monthly
    assert cap == 1024


def test_response_cache_savings(workspace: SyntheticWorkspace) -> None:
    item = workspace.manifest.by_kind("response_cache")
    seen: set[tuple[str, str | None]] = set()
    total = 0
    for record in feature_records(workspace, item.feature):
        key = (record.day, record.request_hash)
        if key in seen:
            total += cost_nano(record)
        seen.add(key)
    assert item.monthly_savings_usd == pytest.approx(total / 1e9 / 30 * 30, rel=1e-9)


def test_failed_calls_savings(workspace: SyntheticWorkspace) -> None:
    item = workspace.manifest.by_kind("failed_calls")
    prices = pricing.model_prices(item.provider, item.model, workspace.manifest.price_at)
    failed = [r for r in feature_records(workspace, item.feature) if r.status == "error"]
    total = sum((cost(r, prices) for r in failed), Decimal(0))
    assert item.monthly_savings_usd == pytest.approx(monthly(total, 30), rel=1e-6)
    assert float(item.evidence["error_share"]) > 0.15


def test_deprecated_model_savings(workspace: SyntheticWorkspace) -> None:
    item = workspace.manifest.by_kind("deprecated_model")
    assert pricing.is_deprecated(item.provider, item.model)
    assert (item.model, item.target_model) == ("command-light", "command-r")
    at = workspace.manifest.price_at
    current = pricing.model_prices(item.provider, item.model, at)
    replacement = pricing.model_prices(item.provider, "command-r", at)
    records = [r for r in workspace.records if r.model == item.model]
    total = sum((cost(r, current) - cost(r, replacement) for r in records), Decimal(0))
    assert item.monthly_savings_usd == pytest.approx(monthly(total, 30), rel=1e-9)


def test_the_anomaly_day(workspace: SyntheticWorkspace) -> None:
    anomaly = workspace.manifest.anomaly
    assert anomaly.day == "2026-11-12"
    assert (anomaly.feature, anomaly.model) == ("research_agent", "claude-sonnet-4-6")
    assert anomaly.day_cost_usd >= 3 * anomaly.rolling_median_usd
    daily: dict[str, int] = defaultdict(int)
    for record in workspace.records:
        daily[record.day] += cost_nano(record)
    assert anomaly.day_cost_usd == pytest.approx(daily["2026-11-12"] / 1e9)
    # No other day is far above its rolling median.
    rollups = list(accumulate(workspace.records).daily.values())
    assert [a.day for a in synthetic.find_anomalies(rollups)] == ["2026-11-12"]


def test_parametrizable() -> None:
    # Its speed is not asserted here (timed unit tests fail on a loaded machine; bench/ times).
    ws = generate(end=END, days=30)
    assert 5_000 < len(ws.records) < 15_000
    small = generate(end=END, days=8)
    doubled = generate(end=END, days=8, scale=2)
    assert 1.8 * len(small.records) < len(doubled.records) < 2.2 * len(small.records)
    with pytest.raises(ValueError, match="days"):
        generate(end=END, days=7)


def test_a_period_the_price_table_cannot_price_fails_loudly() -> None:
    # The table has OpenAI batch prices only from 2026-10-14: no batch saving to plant before.
    with pytest.raises(RuntimeError, match="batch_api"):
        generate(end=date(2026, 9, 1), days=8)


@pytest.mark.parametrize(("seed", "days"), [(1, 8), (2, 14), (3, 21), (11, 45)])
def test_exactly_the_plants_are_found_for_other_seeds_and_lengths(seed: int, days: int) -> None:
    ws = generate(end=END, days=days, seed=seed)
    rollups = list(accumulate(ws.records).daily.values())
    found = synthetic.find_inefficiencies(rollups, days=days, price_at=ws.manifest.price_at)
    assert sorted(f.kind for f in found) == sorted(KINDS)
    assert [a.feature for a in synthetic.find_anomalies(rollups)] == ["research_agent"]


def test_manifest_serializes_to_json(workspace: SyntheticWorkspace) -> None:
    data = json.loads(json.dumps(workspace.manifest.as_dict()))
    assert data["price_at"] == "2026-11-20T00:00:00+00:00"
    assert data["anomaly"]["day"] == "2026-11-12"
    assert [item["kind"] for item in data["inefficiencies"]] == list(KINDS)
    first = data["inefficiencies"][0]
    assert first["monthly_savings_usd"] == workspace.manifest.inefficiencies[0].monthly_savings_usd
