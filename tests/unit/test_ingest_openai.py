"""OpenAI organization usage exports → aggregate usage records with exact totals."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from shared import pricing
from shared.ingest.openai_export import OpenAIExportError, import_usage_export, parse_result
from shared.usage.rollups import accumulate

DAY1 = 1_793_577_600  # 2026-11-02T00:00:00Z
DAY2 = DAY1 + 86_400
NOW = datetime(2026, 11, 5, tzinfo=UTC)


def result(**overrides: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "object": "organization.usage.completions.result",
        "input_tokens": 120_000,
        "output_tokens": 9_000,
        "input_cached_tokens": 40_000,
        "input_audio_tokens": 0,
        "output_audio_tokens": 0,
        "num_model_requests": 300,
        "project_id": "proj_support",
        "user_id": None,
        "api_key_id": None,
        "model": "gpt-4o-mini-2024-07-18",
        "batch": False,
    }
    item.update(overrides)
    return item


def bucket(start: int, *results: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "bucket",
        "start_time": start,
        "end_time": start + 86_400,
        "results": list(results),
    }


def page(*buckets: dict[str, Any]) -> dict[str, Any]:
    return {"object": "page", "data": list(buckets), "has_more": False, "next_page": None}


EXPORT = page(
    bucket(
        DAY1,
        result(),
        result(model="gpt-4o", batch=True, num_model_requests=12, project_id=None),
        result(model="gpt-4o", user_id="user_abc", num_model_requests=7, input_cached_tokens=0),
    ),
    bucket(DAY2, result(input_tokens=80_000, output_tokens=4_000, num_model_requests=150)),
)


def test_one_record_per_result_with_exact_totals() -> None:
    imported = import_usage_export(EXPORT, now=NOW, default_feature="unassigned")
    assert imported.rejected == []
    results = [r for b in EXPORT["data"] for r in b["results"]]
    assert len(imported.records) == len(results)
    for key, field in (
        ("input_tokens", "input_tokens"),
        ("output_tokens", "output_tokens"),
        ("input_cached_tokens", "cached_input_tokens"),
        ("num_model_requests", "requests"),
    ):
        assert sum(getattr(r, field) for r in imported.records) == sum(r[key] for r in results)


def test_fields_map_onto_the_record() -> None:
    records = import_usage_export(EXPORT, now=NOW, default_feature="unassigned").records
    first, batched, per_user, _ = records
    assert first.ts == datetime(2026, 11, 2, tzinfo=UTC)
    assert (first.provider, first.model, first.feature) == (
        "openai",
        "gpt-4o-mini-2024-07-18",
        "proj_support",
    )
    assert (first.requests, first.input_tokens, first.cached_input_tokens) == (300, 120_000, 40_000)
    assert first.user is None
    assert batched.batch is True
    assert batched.feature == "unassigned"
    assert per_user.user == "user_abc"


def test_rollups_keep_the_aggregate_counts_and_price_batches_at_batch_rates() -> None:
    records = import_usage_export(EXPORT, now=NOW).records
    batch = accumulate(records)
    assert sum(row.requests for row in batch.daily.values()) == 300 + 12 + 7 + 150
    batched = records[1]
    row = next(r for r in batch.daily.values() if r.batch_requests)
    expected = pricing.call_cost(
        "openai",
        "gpt-4o",
        input_tokens=batched.input_tokens,
        cached_input_tokens=batched.cached_input_tokens,
        output_tokens=batched.output_tokens,
        at=batched.ts,
        batch=True,
        requests=12,
    )
    assert row.batch_cost_nanousd == pricing.to_nanousd(expected)
    assert row.unpriced_requests == 0


def test_reimport_gives_the_same_ids() -> None:
    first = import_usage_export(EXPORT, now=NOW).records
    again = import_usage_export(EXPORT, now=NOW).records
    assert [r.record_id for r in first] == [r.record_id for r in again]
    assert len({r.record_id for r in first}) == len(first)
    assert all(r.record_id.startswith("openai-usage:") for r in first)
    applied = accumulate(first)
    assert accumulate(again, applied_record_ids=applied.record_ids).daily == {}


def test_unusable_results_are_rejected_with_their_path() -> None:
    export = page(
        bucket(DAY1, result(model=None), result(), result(num_model_requests=-1)),
        {"start_time": DAY1, "end_time": DAY1 - 1, "results": []},
        bucket(DAY2, result(input_cached_tokens=999_999)),
    )
    imported = import_usage_export(export, now=NOW)
    assert len(imported.records) == 1
    assert [(r.source, r.error.split(":")[0]) for r in imported.rejected] == [
        ("data[0].results[0]", "model"),
        ("data[0].results[2]", "num_model_requests"),
        ("data[1]", "end_time"),
        ("data[2].results[0]", "cached_input_tokens"),
    ]


def test_open_buckets_are_rejected_until_they_end() -> None:
    now = datetime.fromtimestamp(DAY2 + 3600, tz=UTC)
    imported = import_usage_export(EXPORT, now=now)
    assert len(imported.records) == 3
    assert imported.rejected[0].source == "data[1].results[0]"
    assert "not ended" in imported.rejected[0].error


def test_zero_request_results_are_skipped_and_audio_is_reported() -> None:
    export = page(
        bucket(
            DAY1,
            result(num_model_requests=0, input_tokens=0, output_tokens=0, input_cached_tokens=0),
            result(input_audio_tokens=500, output_audio_tokens=70),
        )
    )
    imported = import_usage_export(export, now=NOW)
    assert len(imported.records) == 1
    assert imported.notes == [
        "audio tokens left out: 500 input, 70 output (usage records carry text tokens only)"
    ]


def test_a_list_of_pages_is_accepted() -> None:
    imported = import_usage_export([EXPORT, page(bucket(DAY2 + 86_400, result()))], now=NOW)
    assert len(imported.records) == 5
    bad = import_usage_export([EXPORT, page(bucket(DAY1, result(model=None)))], now=NOW)
    assert bad.rejected[0].source == "pages[1].data[0].results[0]"


def test_a_malformed_page_raises() -> None:
    with pytest.raises(OpenAIExportError, match="data"):
        import_usage_export({"object": "page"}, now=NOW)


def test_tokens_without_requests_are_refused() -> None:
    with pytest.raises(OpenAIExportError, match="num_model_requests"):
        parse_result(DAY1, DAY2, result(num_model_requests=0))
