"""Daily rollups: exact additive deltas, document ids, histograms, repeats, idempotence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.models.usage import UsageRecord, usage_record
from shared.usage import layout, rollups
from shared.usage.histograms import LATENCY_BOUNDS_MS, OUTPUT_TOKEN_BOUNDS, histogram_percentile
from shared.usage.layout import rollup_doc_id, user_rollup_doc_id
from shared.usage.rollups import DailyRollup, RollupBatch, accumulate
from tests.support.usage import cost_nano

DAY = datetime(2026, 11, 2, 9, tzinfo=UTC)


def rec(**fields: Any) -> UsageRecord:
    base: dict[str, Any] = {
        "ts": DAY,
        "provider": "openai",
        "model": "gpt-4o",
        "feature": "classify_ticket",
        "user": "u-1",
        "input_tokens": 1000,
        "cached_input_tokens": 0,
        "output_tokens": 10,
        "latency_ms": 420.0,
    }
    base.update(fields)
    return usage_record(**base)


def only(batch: RollupBatch) -> DailyRollup:
    assert len(batch.daily) == 1
    return next(iter(batch.daily.values()))


def test_counters_and_cost() -> None:
    records = [
        rec(input_tokens=1000, cached_input_tokens=300, output_tokens=20),
        rec(input_tokens=800, output_tokens=5, status="error", error_type="timeout"),
        rec(input_tokens=2000, output_tokens=900, latency_ms=None),
    ]
    row = only(accumulate(records))
    assert row.doc_id == "2026-11-02_openai_gpt-4o_classify%5Fticket"
    assert (row.requests, row.errors) == (3, 1)
    assert (row.input_tokens, row.cached_input_tokens, row.output_tokens) == (3800, 300, 925)
    assert row.cost_nanousd == sum(cost_nano(r) for r in records)
    assert row.cost_usd == pytest.approx(row.cost_nanousd / 1e9)
    assert row.unpriced_requests == 0
    assert row.latency_count == 2
    assert row.latency_ms_sum == 840
    assert row.latency_hist == {"le_500": 2}
    assert row.output_hist == {"le_16": 1, "le_32": 1, "le_1024": 1}
    assert row.min_input_tokens == 800
    assert row.error_input_tokens == 800
    assert row.error_output_tokens == 5
    assert row.error_cost_nanousd == cost_nano(records[1])


def test_unknown_models_are_counted_unpriced_not_free() -> None:
    unknown = [rec(model="acme-9000", provider="acme", output_tokens=n) for n in (1, 2)]
    row = only(accumulate(unknown))
    assert row.unpriced_requests == 2
    assert row.cost_nanousd == 0
    assert row.requests == 2
    assert row.provider == "acme"


def test_provider_is_inferred_for_the_key() -> None:
    assert only(accumulate([rec(provider=None)])).provider == "openai"
    assert only(accumulate([rec(provider=None, model="acme-9000")])).provider == "unknown"


def test_non_interactive_and_batched_calls() -> None:
    no_user = rec(user=None)
    batched = rec(user=None, batch=True)
    row = only(accumulate([no_user, batched, rec()]))
    # Already-batched calls are not batch-API candidates.
    assert row.no_user_requests == 1
    assert row.no_user_input_tokens == no_user.input_tokens
    assert row.no_user_cost_nanousd == cost_nano(no_user)
    assert row.batch_requests == 1
    assert row.batch_cost_nanousd == cost_nano(batched)
    assert cost_nano(batched) < cost_nano(no_user)


def test_user_rollups() -> None:
    batch = accumulate([rec(user="a"), rec(user="a", status="error"), rec(user=None)])
    assert set(batch.users) == {"2026-11-02_a", "2026-11-02_"}
    a = batch.users["2026-11-02_a"]
    assert (a.requests, a.errors, a.user) == (2, 1, "a")
    assert a.cost_nanousd == 2 * cost_nano(rec())
    assert batch.users["2026-11-02_"].user is None


def test_repeats_are_counted_per_day_model_and_feature() -> None:
    first = rec(request_hash="h1", output_tokens=10)
    again = rec(request_hash="h1", output_tokens=10, ts=DAY + timedelta(hours=1))
    other_feature = rec(request_hash="h1", feature="other")
    next_day = rec(request_hash="h1", ts=DAY + timedelta(days=1))
    unhashed = rec()
    batch = accumulate([first, again, other_feature, next_day, unhashed])
    row = batch.daily[rollup_doc_id("2026-11-02", "openai", "gpt-4o", "classify_ticket")]
    assert (row.hashed_requests, row.repeat_requests) == (2, 1)
    assert row.repeat_cost_nanousd == cost_nano(again)
    assert row.repeat_input_tokens == again.input_tokens
    for key, other in batch.daily.items():
        if key != row.doc_id:
            assert other.repeat_requests == 0
    assert len(batch.new_request_hashes) == 3


def test_seen_hashes_from_earlier_batches_make_repeats() -> None:
    first = accumulate([rec(request_hash="h1")])
    later = accumulate(
        [rec(request_hash="h1", output_tokens=11)], seen_request_hashes=first.new_request_hashes
    )
    assert only(later).repeat_requests == 1
    assert later.new_request_hashes == frozenset()


def test_a_record_is_applied_at_most_once() -> None:
    record = rec()
    batch = accumulate([record, record])
    assert only(batch).requests == 1
    assert batch.record_ids == {record.record_id}
    assert accumulate([record], applied_record_ids={record.record_id}).daily == {}


def test_doc_ids_are_firestore_safe_and_unambiguous() -> None:
    assert rollup_doc_id("2026-11-02", "aws", "us.anthropic.claude:0", None) == (
        "2026-11-02_aws_us.anthropic.claude:0_"
    )
    assert rollup_doc_id("2026-11-02", "openai", "a_b", "c") != rollup_doc_id(
        "2026-11-02", "openai", "a", "b_c"
    )
    assert "/" not in rollup_doc_id("2026-11-02", "x", "org/model", "f/g")
    assert user_rollup_doc_id("2026-11-02", "ann@example.com") == "2026-11-02_ann%40example.com"
    assert layout.record_marker_id("__x__") == "r_%5F%5Fx%5F%5F"


parts = st.text(min_size=1, max_size=128)


@settings(deadline=None)
@given(st.tuples(parts, parts, st.none() | parts), st.tuples(parts, parts, st.none() | parts))
def test_distinct_keys_give_distinct_doc_ids(
    a: tuple[str, str, str | None], b: tuple[str, str, str | None]
) -> None:
    ida, idb = rollup_doc_id("2026-11-02", *a), rollup_doc_id("2026-11-02", *b)
    assert (ida == idb) == (a == b)
    assert "/" not in ida
    assert len(ida.encode()) <= layout.MAX_DOC_ID_BYTES


def test_overlong_ids_are_hashed() -> None:
    long_name = "模型" * 64  # 128 characters, 384 bytes, 1,152 percent-encoded
    doc_id = rollup_doc_id("2026-11-02", "openai", long_name, long_name)
    assert doc_id.startswith("2026-11-02_~")
    assert len(doc_id) == len("2026-11-02_~") + 64
    assert doc_id != rollup_doc_id("2026-11-02", "openai", long_name, long_name + "x")
    # "~" in a name is encoded, so a real name never looks like a hashed id.
    assert rollup_doc_id("2026-11-02", "~a", "m", None) == "2026-11-02_%7Ea_m_"
    assert len(layout.record_marker_id("記" * 128)) <= layout.MAX_DOC_ID_BYTES


def test_histogram_percentile_interpolates_within_buckets() -> None:
    bounds = (100, 200, 400)
    hist = {"le_100": 50, "le_200": 30, "le_400": 20}
    assert histogram_percentile(hist, bounds, 0.5) == pytest.approx(100.0)
    assert histogram_percentile(hist, bounds, 0.25) == pytest.approx(50.0)
    assert histogram_percentile(hist, bounds, 0.65) == pytest.approx(150.0)
    assert histogram_percentile(hist, bounds, 0.95) == pytest.approx(350.0)
    assert histogram_percentile({}, bounds, 0.5) is None
    # Beyond the last bound the histogram only says "more than 400".
    assert histogram_percentile({"le_inf": 3}, bounds, 0.5) == 400.0
    with pytest.raises(ValueError, match="q must be"):
        histogram_percentile(hist, bounds, 1.5)


def test_latency_percentiles_from_rollups() -> None:
    records = [rec(latency_ms=float(ms)) for ms in range(10, 1010, 10)]
    p50, p95 = only(accumulate(records)).latency_p50_p95()
    assert p50 is not None
    assert p95 is not None
    # Exact p50 is 505, p95 955: the fixed buckets (500, 750, 1000) bound the error.
    assert 300 <= p50 <= 750
    assert 750 <= p95 <= 1000
    assert tuple(sorted(LATENCY_BOUNDS_MS)) == LATENCY_BOUNDS_MS
    assert tuple(sorted(OUTPUT_TOKEN_BOUNDS)) == OUTPUT_TOKEN_BOUNDS


def test_aggregate_records_use_per_call_averages() -> None:
    aggregate = rec(requests=10, input_tokens=5000, output_tokens=600, latency_ms=None)
    row = only(accumulate([aggregate]))
    assert row.requests == 10
    assert row.output_hist == {"le_64": 10}
    assert row.min_input_tokens == 500
    assert row.latency_count == 0


def test_a_stored_rollup_validates_into_the_same_rollup() -> None:
    row = only(accumulate([rec(), rec(input_tokens=300)]))
    assert row.min_input_tokens == 300
    # A document read back from Firestore validates into the same rollup.
    document = {**row.model_dump(), "updated_at": "2026-11-02T10:00:00Z"}
    assert DailyRollup.model_validate(document) == row


def test_merging_different_keys_is_refused() -> None:
    a = only(accumulate([rec()]))
    b = only(accumulate([rec(feature="other")]))
    with pytest.raises(ValueError, match="feature"):
        a.merge(b)


def test_merging_batches_that_share_records_is_refused() -> None:
    batch = accumulate([rec()])
    with pytest.raises(ValueError, match="applied twice"):
        batch.merge(batch)


# --- properties ------------------------------------------------------------------------

records = st.builds(
    lambda model, feature, user, day, i, c, o, status, batch, h, latency: rec(
        model=model,
        feature=feature,
        user=user,
        ts=DAY + timedelta(days=day, minutes=i % 97),
        input_tokens=i,
        cached_input_tokens=min(c, i),
        output_tokens=o,
        status=status,
        batch=batch,
        request_hash=h,
        latency_ms=latency,
    ),
    st.sampled_from(["gpt-4o", "gpt-4o-mini", "acme-9000"]),
    st.sampled_from(["a", "b", None]),
    st.sampled_from(["u1", "u2", None]),
    st.integers(0, 2),
    st.integers(0, 50_000),
    st.integers(0, 50_000),
    st.integers(0, 5_000),
    st.sampled_from(["ok", "error"]),
    st.booleans(),
    st.none() | st.sampled_from(["h1", "h2"]),
    st.none() | st.floats(0, 200_000),
)
record_lists = st.lists(records, max_size=12)


@settings(max_examples=60, deadline=None)
@given(record_lists, record_lists)
def test_merge_of_accumulations_equals_accumulation_of_concatenation(
    a: list[UsageRecord], b: list[UsageRecord]
) -> None:
    first = accumulate(a)
    second = accumulate(
        b, seen_request_hashes=first.new_request_hashes, applied_record_ids=first.record_ids
    )
    assert first.merge(second) == accumulate(a + b)


@settings(max_examples=40, deadline=None)
@given(records, records, records)
def test_rollup_merge_is_associative_and_commutative(
    x: UsageRecord, y: UsageRecord, z: UsageRecord
) -> None:
    same_key = [
        r.model_copy(update={"model": "gpt-4o", "feature": "f", "ts": DAY}) for r in (x, y, z)
    ]
    ra, rb, rc = (
        DailyRollup.of_record(r, rollups.record_cost_nanousd(r), repeat=False) for r in same_key
    )
    assert ra.merge(rb).merge(rc) == ra.merge(rb.merge(rc))
    assert ra.merge(rb) == rb.merge(ra)
