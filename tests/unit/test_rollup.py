"""Daily rollups: exact additive deltas, document ids, sketches, repeats, idempotence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.models.usage import UsageRecord, usage_record
from shared.usage import layout, rollups
from shared.usage.layout import rollup_doc_id, user_rollup_doc_id
from shared.usage.rollups import DailyRollup, RollupBatch, accumulate
from shared.usage.sketches import bin_key
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
    assert row.latency_sketch == {bin_key(420): 2}
    assert row.output_sketch == {bin_key(20): 1, bin_key(5): 1, bin_key(900): 1}
    assert row.hour_hist == {"09": 3}
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
    assert set(batch.users) == {"2026-11-02_a_openai_gpt-4o", "2026-11-02__openai_gpt-4o"}
    a = batch.users["2026-11-02_a_openai_gpt-4o"]
    assert (a.requests, a.errors, a.user) == (2, 1, "a")
    assert (a.provider, a.model) == ("openai", "gpt-4o")
    assert a.cost_nanousd == 2 * cost_nano(rec())
    assert batch.users["2026-11-02__openai_gpt-4o"].user is None


def test_user_rollups_are_per_model_so_each_row_can_be_repriced() -> None:
    calls = [
        rec(user="a"),
        rec(user="a", model="gpt-4o-mini", provider=None),
        rec(user="a", model="gpt-4o-mini", batch=True, cached_input_tokens=100),
    ]
    batch = accumulate(calls)
    assert set(batch.users) == {
        "2026-11-02_a_openai_gpt-4o",
        "2026-11-02_a_openai_gpt-4o-mini",
    }
    mini = batch.users["2026-11-02_a_openai_gpt-4o-mini"]
    assert (mini.provider, mini.model, mini.requests) == ("openai", "gpt-4o-mini", 2)
    # Batch tokens apart, at the batch price: non-batch + batch tokens reprice the row.
    assert (mini.batch_requests, mini.batch_input_tokens) == (1, 1000)
    assert (mini.batch_cached_input_tokens, mini.batch_output_tokens) == (100, 10)
    assert mini.batch_cost_nanousd == cost_nano(calls[2])
    assert mini.cost_nanousd == cost_nano(calls[1]) + cost_nano(calls[2])
    # The day's rows of a user add up to the user's day, whatever the models.
    assert sum(u.cost_nanousd for u in batch.users.values()) == sum(map(cost_nano, calls))


def test_daily_rollups_carry_the_batch_token_sums() -> None:
    batched = rec(user=None, batch=True, input_tokens=3000, cached_input_tokens=1000)
    row = only(accumulate([batched, rec()]))
    assert (row.batch_requests, row.batch_cost_nanousd) == (1, cost_nano(batched))
    assert (row.batch_input_tokens, row.batch_cached_input_tokens) == (3000, 1000)
    assert row.batch_output_tokens == 10


def test_calls_by_utc_hour_of_day() -> None:
    calls = [
        rec(ts=DAY.replace(hour=0, minute=5)),
        rec(ts=DAY.replace(hour=0, minute=59)),
        rec(ts=DAY.replace(hour=23, minute=59, second=59)),
        rec(ts=DAY.replace(hour=2), requests=5, input_tokens=5000, output_tokens=50),
    ]
    assert only(accumulate(calls)).hour_hist == {"00": 2, "02": 5, "23": 1}


def test_repeats_are_counted_per_model_and_feature_within_24_hours() -> None:
    first = rec(request_hash="h1", output_tokens=10)
    again = rec(request_hash="h1", output_tokens=10, ts=DAY + timedelta(hours=1))
    other_feature = rec(request_hash="h1", feature="other")
    next_day = rec(request_hash="h1", ts=DAY + timedelta(days=1, minutes=59))
    two_days_on = rec(request_hash="h1", ts=DAY + timedelta(days=2, hours=1))
    unhashed = rec()
    batch = accumulate([first, again, other_feature, next_day, two_days_on, unhashed])
    row = batch.daily[rollup_doc_id("2026-11-02", "openai", "gpt-4o", "classify_ticket")]
    assert (row.hashed_requests, row.repeat_requests) == (2, 1)
    assert row.repeat_cost_nanousd == cost_nano(again)
    assert row.repeat_input_tokens == again.input_tokens
    # 22 h 59 min after `again`: a repeat on the next day's row.
    assert (
        batch.daily[
            rollup_doc_id("2026-11-03", "openai", "gpt-4o", "classify_ticket")
        ].repeat_requests
        == 1
    )
    # 24 h 2 min after the one before: not a repeat.
    assert (
        batch.daily[
            rollup_doc_id("2026-11-04", "openai", "gpt-4o", "classify_ticket")
        ].repeat_requests
        == 0
    )
    assert (
        batch.daily[rollup_doc_id("2026-11-02", "openai", "gpt-4o", "other")].repeat_requests == 0
    )
    assert len(batch.markers) == 2


def test_a_question_at_23_50_asked_again_at_00_10_is_a_repeat() -> None:
    evening = rec(request_hash="q", ts=datetime(2026, 11, 2, 23, 50, tzinfo=UTC))
    morning = rec(request_hash="q", ts=datetime(2026, 11, 3, 0, 10, tzinfo=UTC))
    batch = accumulate([evening, morning])
    days = {row.day: row.repeat_requests for row in batch.daily.values()}
    assert days == {"2026-11-02": 0, "2026-11-03": 1}
    # Across batches, as the aggregator applies them, too.
    later = accumulate([morning], markers=accumulate([evening]).markers)
    assert only(later).repeat_requests == 1
    # The next evening, more than 24 h after both: a fresh request.
    next_evening = rec(request_hash="q", ts=datetime(2026, 11, 4, 0, 10, 1, tzinfo=UTC))
    assert only(accumulate([next_evening], markers=batch.markers)).repeat_requests == 0


def test_out_of_order_the_later_processed_of_two_calls_is_the_repeat() -> None:
    early = rec(request_hash="q", ts=datetime(2026, 11, 2, 23, 50, tzinfo=UTC), output_tokens=7)
    late = rec(request_hash="q", ts=datetime(2026, 11, 3, 20, 0, tzinfo=UTC), output_tokens=9)
    in_order = accumulate([early, late])
    reversed_ = accumulate([late, early])
    assert sum(r.repeat_requests for r in in_order.daily.values()) == 1
    assert sum(r.repeat_requests for r in reversed_.daily.values()) == 1
    (repeat,) = (r for r in reversed_.daily.values() if r.repeat_requests)
    assert (repeat.day, repeat.repeat_output_tokens) == ("2026-11-02", 7)
    # More than 24 h apart, in either order: no repeat.
    far = rec(request_hash="q", ts=datetime(2026, 11, 4, 0, 0, tzinfo=UTC))
    assert sum(r.repeat_requests for r in accumulate([far, early]).daily.values()) == 0


def test_seen_markers_from_earlier_batches_make_repeats() -> None:
    first = accumulate([rec(request_hash="h1")])
    later = accumulate([rec(request_hash="h1", output_tokens=11)], markers=first.markers)
    assert only(later).repeat_requests == 1
    assert set(later.markers) == set(first.markers)


def test_prefix_repeats_within_five_minutes() -> None:
    def call(minutes: float, tokens: int = 4000, cached: int = 0, **fields: Any) -> UsageRecord:
        return rec(
            ts=DAY + timedelta(minutes=minutes),
            prompt_prefix_hash="sys-v1",
            input_tokens=tokens,
            cached_input_tokens=cached,
            **fields,
        )

    calls = [
        call(0),
        call(4, tokens=3000, cached=2048),  # warm: 4 min after
        call(8.9, tokens=5000),  # 4.9 min after the one before
        call(20),  # 11.1 min: cold
        call(21, model="gpt-4o-mini"),  # another model: its own cache
        rec(ts=DAY + timedelta(minutes=22)),  # no prefix hash
    ]
    batch = accumulate(calls)
    row = batch.daily[rollup_doc_id("2026-11-02", "openai", "gpt-4o", "classify_ticket")]
    assert (row.prefix_hashed_requests, row.prefix_hashed_input_tokens) == (4, 16000)
    assert row.prefix_repeat_requests == 2
    assert row.prefix_repeat_input_tokens == 8000
    assert row.prefix_repeat_cached_input_tokens == 2048
    assert row.prefix_repeat_min_input_tokens == 3000
    assert row.requests == 5
    mini = batch.daily[rollup_doc_id("2026-11-02", "openai", "gpt-4o-mini", "classify_ticket")]
    assert (mini.prefix_hashed_requests, mini.prefix_repeat_requests) == (1, 0)
    # The minimum of the repeats merges as a minimum, over rows that have repeats only.
    later = only(accumulate([call(24, tokens=2500)], markers=batch.markers))
    assert row.merge(later).prefix_repeat_min_input_tokens == 2500
    cold = only(accumulate([call(30, tokens=100)], markers=batch.markers))
    assert cold.prefix_repeat_requests == 0
    assert row.merge(cold).prefix_repeat_min_input_tokens == 3000


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
    assert user_rollup_doc_id("2026-11-02", "ann@example.com", "openai", "gpt-4o") == (
        "2026-11-02_ann%40example.com_openai_gpt-4o"
    )
    assert user_rollup_doc_id("2026-11-02", None, "aws", "a_b") == "2026-11-02__aws_a%5Fb"
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


def test_latency_percentiles_from_rollups_are_within_1_percent() -> None:
    records = [rec(latency_ms=float(ms)) for ms in range(10, 1010, 10)]
    p50, p95 = only(accumulate(records)).latency_p50_p95()
    # Exact ("lower") p50 is 500, p95 940; the fixed buckets allowed 300..750 and 750..1000.
    assert p50 == pytest.approx(500, rel=0.01)
    assert p95 == pytest.approx(940, rel=0.01)
    assert only(accumulate([rec(latency_ms=None)])).latency_p50_p95() == (None, None)


def test_aggregate_records_use_per_call_averages() -> None:
    aggregate = rec(requests=10, input_tokens=5000, output_tokens=600, latency_ms=None)
    row = only(accumulate([aggregate]))
    assert row.requests == 10
    assert row.output_sketch == {bin_key(60): 10}
    assert row.hour_hist == {"09": 10}
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
    lambda model, feature, user, day, i, c, o, status, batch, h, latency, prefix: rec(
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
        prompt_prefix_hash=prefix,
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
    st.none() | st.sampled_from(["p1", "p2"]),
)
record_lists = st.lists(records, max_size=12)


@settings(max_examples=60, deadline=None)
@given(record_lists, record_lists)
def test_merge_of_accumulations_equals_accumulation_of_concatenation(
    a: list[UsageRecord], b: list[UsageRecord]
) -> None:
    first = accumulate(a)
    second = accumulate(b, markers=first.markers, applied_record_ids=first.record_ids)
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
