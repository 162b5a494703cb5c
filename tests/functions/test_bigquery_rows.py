"""What reaches BigQuery (DESIGN §10): ``usage_ingest`` in-process publishes, through
``shared.ingest.accept``, one message on ``apex-records`` per accepted record, whose data is
the record's row, a row the committed table schema takes (infra/schemas/usage_records.json,
itself checked against the row model by tests/infra/test_bigquery.py). No BigQuery runs here:
the row is checked against the schema the BigQuery subscription writes it with."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient
from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient

from shared import pricing
from shared.auth import Principal
from shared.ingest.accept import accepted_messages
from shared.ingest.rows import RECORDS_TOPIC
from shared.limits import MAX_INGEST_RECORDS
from shared.models.messages import USAGE_TOPIC
from shared.models.usage import usage_record
from tests.support.functions import Captured, User

Fn = Callable[[str], FlaskClient]
ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "infra" / "schemas" / "usage_records.json").read_text("utf-8"))
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def micros(text: str) -> int:
    """An ISO 8601 time as BigQuery's TIMESTAMP: microseconds since the epoch."""
    return (datetime.fromisoformat(text) - EPOCH) // timedelta(microseconds=1)


# NUMERIC: 38 digits of precision, 9 of them after the point.
_NUMERIC = re.compile(r"^-?\d{1,29}(\.\d{1,9})?$")

PLAIN = {
    "id": "call-1",
    "model": "gpt-4o",
    "provider": "openai",
    "input_tokens": 1200,
    "cached_input_tokens": 200,
    "output_tokens": 300,
    "latency_ms": 850.5,
    "ts": "2026-11-20T10:00:00.123456Z",
    "feature": "summarize",
    "user": "u1",
    "request_hash": "h-1",
    "batch": True,
    "prompt_prefix_hash": "sys-1",
}
FAILED_SPAN = {
    "trace_id": "ab" * 16,
    "span_id": "cd" * 8,
    "start_time_unix_nano": 1_763_632_800_000_000_000,  # 2025-11-20T10:00:00Z
    "end_time_unix_nano": 1_763_632_801_500_000_000,
    "attributes": {
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.provider.name": "openai",
        "gen_ai.operation.name": "chat",
        "error.type": "timeout",
    },
}
UNPRICED = {"model": "acme-llm-9000", "input_tokens": 10, "output_tokens": 5, "ts": "2026-11-19"}


def schema_problems(row: dict[str, Any]) -> list[str]:
    """Why ``row`` does not fit the table as the BigQuery subscription writes it
    (use_table_schema, unknown keys refused): a key the table lacks, a REQUIRED column
    missing or null, a value not of its column's JSON form. The forms are the strict ones
    the row keeps to: TIMESTAMP as an integer of microseconds since the epoch (the Storage
    Write API's own form), NUMERIC as plain decimal text within NUMERIC's 9 places (a JSON
    number would be a float before BigQuery reads it)."""
    columns = {c["name"]: c for c in SCHEMA}
    problems = [f"{key}: no such column" for key in row if key not in columns]
    for name, column in columns.items():
        value = row.get(name)
        if value is None:
            if column["mode"] == "REQUIRED":
                problems.append(f"{name}: REQUIRED, but {'null' if name in row else 'absent'}")
            continue
        match column["type"]:
            case "STRING":
                ok = isinstance(value, str)
            case "INTEGER" | "TIMESTAMP":
                ok = not isinstance(value, bool) and isinstance(value, int)
                ok = ok and -(2**63) <= value < 2**63
            case "FLOAT":
                ok = isinstance(value, int | float) and not isinstance(value, bool)
            case "BOOLEAN":
                ok = isinstance(value, bool)
            case "NUMERIC":
                ok = isinstance(value, str) and _NUMERIC.fullmatch(value) is not None
            case other:
                raise AssertionError(f"the schema has a type this test does not know: {other}")
        if not ok:
            problems.append(f"{name}: {value!r} does not fit {column['type']}")
    return problems


def test_the_row_check_names_each_misfit() -> None:
    """The checker above can fail: each way a row can miss the table is named."""
    good = {c["name"]: None for c in SCHEMA if c["mode"] == "NULLABLE"} | {
        "ts": micros("2026-11-20T10:00:00Z"),
        "model": "m",
        "status": "ok",
        "requests": 1,
        "input_tokens": 1,
        "cached_input_tokens": 0,
        "output_tokens": 1,
        "batch": False,
        "record_id": "r",
        "workspace_id": "w",
        "ingested_at": micros("2026-11-20T10:00:01Z"),
        "ingested_by": "u",
    }
    assert schema_problems(good) == []
    assert schema_problems({**good, "cost": "1"}) == ["cost: no such column"]
    assert schema_problems({k: v for k, v in good.items() if k != "model"}) == [
        "model: REQUIRED, but absent"
    ]
    assert schema_problems({**good, "input_tokens": True}) == [
        "input_tokens: True does not fit INTEGER"
    ]
    assert schema_problems({**good, "ts": "2026-11-20T10:00:00Z"}) == [
        "ts: '2026-11-20T10:00:00Z' does not fit TIMESTAMP"
    ]
    assert schema_problems({**good, "ts": 1763632800.5}) == [
        "ts: 1763632800.5 does not fit TIMESTAMP"
    ]
    assert schema_problems({**good, "cost_usd": 0.1}) == ["cost_usd: 0.1 does not fit NUMERIC"]
    assert schema_problems({**good, "cost_usd": "0E-9"}) == [
        "cost_usd: '0E-9' does not fit NUMERIC"
    ]
    assert schema_problems({**good, "cost_usd": "0.0000000001"}) == [
        "cost_usd: '0.0000000001' does not fit NUMERIC"
    ]
    assert schema_problems({**good, "latency_ms": "1"}) == ["latency_ms: '1' does not fit FLOAT"]


def _rows(captured: Captured, expect: int) -> dict[str, tuple[dict[str, Any], dict[str, str]]]:
    """The rows on ``apex-records`` by record id, with their attributes."""
    messages = captured.pull(expect)
    rows = {}
    for message in messages:
        row = json.loads(message.data)
        rows[row["record_id"]] = (row, dict(message.attributes))
    assert len(rows) == expect, "a record id published twice"
    return rows


def _usd(nanos_exact: Decimal) -> str:
    return f"{nanos_exact.quantize(Decimal('1e-9')):f}"


def test_every_accepted_record_is_one_row_message_none_for_a_rejected_one(
    function: Fn, user: User, topics: dict[str, Captured]
) -> None:
    bad = {**PLAIN, "id": "call-2", "output_tokens": "many"}
    before = datetime.now(UTC)
    response = function("usage_ingest").post(
        "/", headers=user.headers, json=[PLAIN, bad, FAILED_SPAN, UNPRICED]
    )
    after = datetime.now(UTC)
    assert response.status_code == 202, response.get_data(as_text=True)
    assert response.get_json()["accepted"] == 3
    [batch_message] = topics[USAGE_TOPIC].pull(1)
    batch = json.loads(batch_message.data)
    rows = _rows(topics[RECORDS_TOPIC], 3)
    assert topics[RECORDS_TOPIC].empty()  # nothing for the rejected record

    # One row per record of the usage batch, the same record, and a row the table takes.
    assert set(rows) == {r["record_id"] for r in batch["records"]}
    assert "call-2" not in rows
    for record in batch["records"]:
        row, attributes = rows[record["record_id"]]
        assert schema_problems(row) == [], row
        assert attributes == {
            "kind": "usage_row",
            "workspace_id": user.workspace,
            "record_id": record["record_id"],
        }
        for key, value in record.items():
            if key == "ts":
                assert row["ts"] == micros(value)
            else:
                assert row[key] == value, key
        assert (row["workspace_id"], row["ingested_by"]) == (user.workspace, user.signed_in.uid)
        assert micros(before.isoformat()) <= row["ingested_at"] <= micros(after.isoformat())

    plain, _ = rows["call-1"]
    batch_prices = pricing.model_prices("openai", "gpt-4o", datetime(2026, 11, 20), batch=True)
    expected = batch_prices.cost(input_tokens=1200, cached_input_tokens=200, output_tokens=300)
    assert expected > 0
    assert {k: v for k, v in plain.items() if k != "ingested_at"} == {
        "ts": micros("2026-11-20T10:00:00.123456Z"),
        "provider": "openai",
        "model": "gpt-4o",
        "feature": "summarize",
        "user": "u1",
        "status": "ok",
        "error_type": None,
        "operation": None,
        "requests": 1,
        "input_tokens": 1200,
        "cached_input_tokens": 200,
        "output_tokens": 300,
        "latency_ms": 850.5,
        "request_hash": "h-1",
        "batch": True,
        "prompt_prefix_hash": "sys-1",
        "record_id": "call-1",
        "workspace_id": user.workspace,
        "cost_usd": _usd(expected),
        "ingested_by": user.signed_in.uid,
    }

    failed, _ = rows[f"{'ab' * 16}-{'cd' * 8}"]
    assert (failed["status"], failed["error_type"], failed["operation"]) == (
        "error",
        "timeout",
        "chat",
    )
    assert (failed["ts"], failed["latency_ms"]) == (1_763_632_800_000_000, 1500.0)
    assert failed["cost_usd"] == "0.000000000"  # priced, at zero tokens: not unpriced

    [unpriced] = [row for row, _ in rows.values() if row["model"] == "acme-llm-9000"]
    assert unpriced["cost_usd"] is None  # unknown to the price table: null, never 0
    assert unpriced["ts"] == micros("2026-11-19T00:00:00Z")


def test_a_request_with_no_valid_record_publishes_nothing(
    function: Fn, user: User, topics: dict[str, Captured]
) -> None:
    response = function("usage_ingest").post(
        "/", headers=user.headers, json=[{**PLAIN, "input_tokens": -1}]
    )
    assert response.status_code == 202
    assert response.get_json()["accepted"] == 0
    assert topics[RECORDS_TOPIC].empty()
    assert topics[USAGE_TOPIC].empty()


def test_a_failed_row_publish_answers_503_and_the_retry_delivers_the_same_records(
    function: Fn,
    user: User,
    topics: dict[str, Captured],
    project_id: str,
    publisher: PublisherClient,
    subscriber: SubscriberClient,
) -> None:
    """What accept's docstring and docs/bigquery.md say: no 202 unless both publishes went
    through; the usage batch published before the failure stays; the client's retry carries
    the same record ids, so the rollups count them once and BigQuery queries deduplicate."""
    topic = publisher.topic_path(project_id, RECORDS_TOPIC)
    publisher.delete_topic(topic=topic)
    ingest = function("usage_ingest")
    response = ingest.post("/", headers=user.headers, json=[PLAIN, UNPRICED])
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.headers["Retry-After"] == "5"
    assert f"cannot publish to {RECORDS_TOPIC}" in response.get_json()["error"]["message"]
    [first] = topics[USAGE_TOPIC].pull(1)

    publisher.create_topic(name=topic)
    sub = subscriber.subscription_path(project_id, "capture-apex-records-again")
    subscriber.create_subscription(name=sub, topic=topic, ack_deadline_seconds=10)
    response = ingest.post("/", headers=user.headers, json=[PLAIN, UNPRICED])
    assert response.status_code == 202, response.get_data(as_text=True)
    [second] = topics[USAGE_TOPIC].pull(1)
    rows = _rows(Captured(subscriber, sub), 2)
    ids = {r["record_id"] for r in json.loads(first.data)["records"]}
    assert ids == {r["record_id"] for r in json.loads(second.data)["records"]} == set(rows)


def test_an_export_past_one_usage_batch_is_split_and_every_record_has_its_row() -> None:
    """OTLP exports may carry more records than a usage batch holds (MAX_INGEST_RECORDS)."""
    principal = Principal(uid="key:k1", workspace_id="ws-1", role="member", key_id="k1")
    records = [
        usage_record(
            record_id=f"r{i}",
            ts=datetime(2026, 11, 20, tzinfo=UTC),
            model="gpt-4o-mini",
            provider="openai",
            input_tokens=i,
            output_tokens=1,
        )
        for i in range(MAX_INGEST_RECORDS + 1)
    ]
    now = datetime(2026, 11, 20, 12, tzinfo=UTC)
    messages = accepted_messages(principal, records, now=now)
    batches = [json.loads(data) for topic, data, _ in messages if topic == USAGE_TOPIC]
    rows = [json.loads(data) for topic, data, _ in messages if topic == RECORDS_TOPIC]
    assert [len(b["records"]) for b in batches] == [MAX_INGEST_RECORDS, 1]
    assert len({b["batch_id"] for b in batches}) == 2
    assert [r["record_id"] for b in batches for r in b["records"]] == [
        f"r{i}" for i in range(MAX_INGEST_RECORDS + 1)
    ]
    assert [r["record_id"] for r in rows] == [f"r{i}" for i in range(MAX_INGEST_RECORDS + 1)]
    assert {(r["ingested_by"], r["workspace_id"], r["ingested_at"]) for r in rows} == {
        ("key:k1", "ws-1", micros("2026-11-20T12:00:00Z"))
    }
    assert all(schema_problems(r) == [] for r in rows)
    assert accepted_messages(principal, [], now=now) == []
