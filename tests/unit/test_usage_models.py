"""The usage record wire forms, their normalization, ids and error messages."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.models.usage import (
    MAX_TOKENS_PER_CALL,
    UsageRecordError,
    parse_usage_record,
    usage_record,
)

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
START_NS = 1_764_000_000_000_000_000  # 2025-11-24T16:00:00Z


def plain(**overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "model": "gpt-4o",
        "provider": "openai",
        "input_tokens": 1200,
        "cached_input_tokens": 200,
        "output_tokens": 80,
        "latency_ms": 512.5,
        "ts": "2026-11-01T10:00:00Z",
        "feature": "classify_ticket",
        "user": "u-1",
    }
    raw.update(overrides)
    return raw


def span(attributes: dict[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.model": "gpt-4o-2024-08-06",
        "gen_ai.usage.input_tokens": 900,
        "gen_ai.usage.output_tokens": 40,
        "gen_ai.usage.cache_read.input_tokens": 512,
        "gen_ai.provider.name": "openai",
        "gen_ai.operation.name": "chat",
        "enduser.id": "u-7",
        "apex.feature": "chat_assistant",
        "http.route": "/v1/chat",
    }
    attrs.update(attributes or {})
    raw: dict[str, Any] = {
        "start_time_unix_nano": START_NS,
        "end_time_unix_nano": START_NS + 750_000_000,
        "attributes": attrs,
        "name": "chat gpt-4o",
    }
    raw.update(overrides)
    return raw


def test_plain_form_normalizes() -> None:
    record = parse_usage_record(plain(id="req-1", status="error"), now=NOW)
    assert record.record_id == "req-1"
    assert record.ts == datetime(2026, 11, 1, 10, tzinfo=UTC)
    assert (record.input_tokens, record.cached_input_tokens, record.output_tokens) == (
        1200,
        200,
        80,
    )
    assert record.status == "error"
    assert record.latency_ms == 512.5
    assert record.requests == 1
    assert record.day == "2026-11-01"


def test_timestamps_become_utc() -> None:
    shifted = parse_usage_record(plain(ts="2026-11-01T01:30:00+02:00"), now=NOW)
    naive = parse_usage_record(plain(ts="2026-11-01T10:00:00"), now=NOW)
    assert shifted.ts == datetime(2026, 10, 31, 23, 30, tzinfo=UTC)
    assert shifted.day == "2026-10-31"
    assert naive.ts.tzinfo == UTC


def test_otel_form_normalizes() -> None:
    record = parse_usage_record(span(), now=NOW)
    # The response model is what ran and was billed.
    assert record.model == "gpt-4o-2024-08-06"
    assert record.latency_ms == 750.0
    assert record.ts == datetime(2025, 11, 24, 16, tzinfo=UTC)
    assert (record.input_tokens, record.cached_input_tokens) == (900, 512)
    assert (record.user, record.feature, record.operation) == ("u-7", "chat_assistant", "chat")
    assert record.status == "ok"


def test_otel_error_type_marks_failure_and_tokens_may_be_absent() -> None:
    attrs = {"error.type": "timeout", "gen_ai.usage.output_tokens": None}
    raw = span(attrs)
    del raw["attributes"]["gen_ai.usage.output_tokens"]
    record = parse_usage_record(raw, now=NOW)
    assert record.status == "error"
    assert record.error_type == "timeout"
    assert record.output_tokens == 0


def test_otel_provider_names_map_to_price_table_ids() -> None:
    record = parse_usage_record(span({"gen_ai.provider.name": "aws.bedrock"}), now=NOW)
    assert record.provider == "aws"
    record = parse_usage_record(span({"gen_ai.provider.name": "gcp.vertex_ai"}), now=NOW)
    assert record.provider == "google"


def test_otlp_attribute_list_is_accepted() -> None:
    attributes = [
        {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
        {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "300"}},
        {"key": "gen_ai.usage.output_tokens", "value": {"intValue": "7"}},
        {"key": "apex.batch", "value": {"boolValue": True}},
    ]
    raw = {
        "start_time_unix_nano": str(START_NS),
        "end_time_unix_nano": str(START_NS + 1_000_000),
        "attributes": attributes,
    }
    record = parse_usage_record(raw, now=NOW)
    assert (record.model, record.input_tokens, record.output_tokens) == ("gpt-4o", 300, 7)
    assert record.batch is True
    assert record.latency_ms == 1.0


def test_otel_trace_and_span_ids_make_the_record_id() -> None:
    record = parse_usage_record(span(trace_id="ab" * 16, span_id="cd" * 8), now=NOW)
    assert record.record_id == f"{'ab' * 16}-{'cd' * 8}"


def test_hash_id_is_sha256_of_canonical_json() -> None:
    record = parse_usage_record(plain(), now=NOW)
    content = record.model_dump(exclude={"record_id"})
    rebuilt = usage_record(**content)
    assert record.record_id == rebuilt.record_id
    expected = hashlib.sha256(rebuilt.canonical_json().encode()).hexdigest()
    assert record.record_id == expected
    assert '"ts":"2026-11-01T10:00:00.000000Z"' in record.canonical_json()


def test_hash_id_ignores_key_order_and_timestamp_spelling() -> None:
    a = parse_usage_record(plain(), now=NOW)
    reordered = dict(reversed(list(plain(ts="2026-11-01T11:00:00+01:00").items())))
    b = parse_usage_record(reordered, now=NOW)
    assert a.record_id == b.record_id


def test_hash_id_changes_with_content() -> None:
    a = parse_usage_record(plain(), now=NOW)
    b = parse_usage_record(plain(output_tokens=81), now=NOW)
    assert a.record_id != b.record_id


def test_same_call_in_both_forms_gets_the_same_hash_id() -> None:
    otel = span(
        {
            "gen_ai.response.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 1200,
            "gen_ai.usage.cache_read.input_tokens": 200,
            "gen_ai.usage.output_tokens": 80,
            "enduser.id": "u-1",
            "apex.feature": "classify_ticket",
            "gen_ai.operation.name": None,
        },
        end_time_unix_nano=START_NS + 512_500_000,
    )
    del otel["attributes"]["gen_ai.operation.name"]
    ts = "2025-11-24T16:00:00Z"
    assert (
        parse_usage_record(otel, now=NOW).record_id
        == parse_usage_record(plain(ts=ts), now=NOW).record_id
    )


def test_record_is_frozen() -> None:
    record = parse_usage_record(plain(), now=NOW)
    with pytest.raises(ValidationError):
        record.input_tokens = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (plain(input_tokens=-1), "input_tokens"),
        (plain(input_tokens=True), "input_tokens"),
        (plain(cached_input_tokens=1300), "cached_input_tokens"),
        (plain(output_tokens=MAX_TOKENS_PER_CALL + 1), "output_tokens"),
        (plain(model=""), "model"),
        (plain(model="m" * 129), "model"),
        (plain(feature="bad\nname"), "feature"),
        (plain(id="has space"), "id"),
        (plain(id="a/b"), "id"),
        (plain(status="failed"), "status"),
        (plain(batch="yes"), "batch"),
        (plain(ts=1_700_000_000), "ts"),
        (plain(ts="2019-12-31T23:59:59Z"), "ts"),
        (plain(ts="2026-11-25T14:00:00Z"), "ts"),
        (plain(latency_ms=-3), "latency_ms"),
        (plain(unexpected=1), "unexpected"),
        ({k: v for k, v in plain().items() if k != "model"}, "model"),
        (span({"gen_ai.usage.input_tokens": -5}), "attributes.gen_ai.usage.input_tokens"),
        (
            span({"gen_ai.usage.cache_read.input_tokens": 901}),
            "attributes.gen_ai.usage.cache_read.input_tokens",
        ),
        (span({"gen_ai.usage.output_tokens": None}), "attributes.gen_ai.usage.output_tokens"),
        (
            span({"gen_ai.request.model": None, "gen_ai.response.model": None}),
            "attributes.gen_ai.response.model",
        ),
        (span(end_time_unix_nano=START_NS - 1), "end_time_unix_nano"),
        (
            span(start_time_unix_nano=2 * 10**18, end_time_unix_nano=2 * 10**18 + 1),
            "start_time_unix_nano",
        ),
        (span({"apex.batch": "true"}), "attributes.apex.batch"),
        ([plain()], "(record)"),
    ],
)
def test_errors_name_the_field(raw: Any, field: str) -> None:
    with pytest.raises(UsageRecordError) as info:
        parse_usage_record(raw, now=NOW)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")


names = st.text(
    alphabet=st.characters(
        codec="utf-8", exclude_categories=("Cc", "Cf", "Cn", "Co", "Cs", "Zl", "Zp", "Zs")
    ),
    min_size=1,
    max_size=40,
)
timestamps = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2026, 11, 25), timezones=st.just(UTC)
)


@st.composite
def plain_records(draw: st.DrawFn) -> dict[str, Any]:
    input_tokens = draw(st.integers(0, MAX_TOKENS_PER_CALL))
    raw: dict[str, Any] = {
        "model": draw(names),
        "input_tokens": input_tokens,
        "cached_input_tokens": draw(st.integers(0, input_tokens)),
        "output_tokens": draw(st.integers(0, MAX_TOKENS_PER_CALL)),
        "ts": draw(timestamps).isoformat(),
        "status": draw(st.sampled_from(["ok", "error"])),
        "batch": draw(st.booleans()),
    }
    for key in ("provider", "feature", "user", "request_hash"):
        value = draw(st.none() | names.filter(lambda s: "/" not in s))
        if value is not None:
            raw[key] = value.lower() if key == "provider" else value
    latency = draw(st.none() | st.floats(0, 3_600_000))
    if latency is not None:
        raw["latency_ms"] = latency
    return raw


@settings(deadline=None)
@given(plain_records())
def test_plain_round_trip_and_id_stability(raw: dict[str, Any]) -> None:
    record = parse_usage_record(raw, now=NOW)
    # Serialize the normalized record back to the plain form: same record, same id.
    again = record.model_dump(
        mode="json", exclude={"record_id", "requests", "error_type", "operation"}
    )
    assert parse_usage_record(again, now=NOW) == record
    with_id = parse_usage_record({**raw, "id": record.record_id}, now=NOW)
    assert with_id == record


def test_the_prompt_prefix_hash_is_read_from_both_forms() -> None:
    assert parse_usage_record(plain(), now=NOW).prompt_prefix_hash is None
    record = parse_usage_record(plain(prompt_prefix_hash="sys-v3:ab12"), now=NOW)
    assert record.prompt_prefix_hash == "sys-v3:ab12"
    otel = parse_usage_record(span({"apex.prompt_prefix_hash": "sys-v3:ab12"}), now=NOW)
    assert otel.prompt_prefix_hash == "sys-v3:ab12"
    # OTLP/JSON's attribute list, as an exporter sends it.
    listed = span()
    listed["attributes"] = [
        {"key": k, "value": {"intValue" if isinstance(v, int) else "stringValue": v}}
        for k, v in {**listed["attributes"], "apex.prompt_prefix_hash": "p1"}.items()
    ]
    assert parse_usage_record(listed, now=NOW).prompt_prefix_hash == "p1"


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (plain(prompt_prefix_hash="x" * 129), "prompt_prefix_hash"),
        (plain(prompt_prefix_hash="bad\x07hash"), "prompt_prefix_hash"),
        (plain(prompt_prefix_hash=""), "prompt_prefix_hash"),
        (plain(prompt_prefix_hash=12), "prompt_prefix_hash"),
        (
            span({"apex.prompt_prefix_hash": "a b"}),
            "attributes.apex.prompt_prefix_hash",
        ),
    ],
)
def test_a_bad_prompt_prefix_hash_is_refused_by_name(raw: Any, field: str) -> None:
    with pytest.raises(UsageRecordError) as info:
        parse_usage_record(raw, now=NOW)
    assert info.value.field == field


def test_the_prefix_hash_leaves_the_ids_of_records_without_it_unchanged() -> None:
    record = parse_usage_record(plain(), now=NOW)
    # The id this record had before the field existed (its canonical JSON has no such key).
    assert "prompt_prefix_hash" not in record.canonical_json()
    assert record.record_id == hashlib.sha256(record.canonical_json().encode()).hexdigest()
    with_prefix = parse_usage_record(plain(prompt_prefix_hash="p"), now=NOW)
    assert with_prefix.record_id != record.record_id
    assert '"prompt_prefix_hash":"p"' in with_prefix.canonical_json()
