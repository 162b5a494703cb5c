"""Bedrock model-invocation logs in S3 → usage records (real boto3 calls against moto)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3  # no stubs installed (boto3-stubs)
import pytest
from moto import mock_aws

from shared.ingest.bedrock import BedrockLogError, import_invocation_logs, parse_invocation_log
from shared.usage.rollups import accumulate

BUCKET = "acme-bedrock-logs"
PREFIX = "bedrock/AWSLogs/123456789012/BedrockModelInvocationLogs/us-east-1/"
ROLE = "arn:aws:sts::123456789012:assumed-role/support-bot/session"


def log(request_id: str, **overrides: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "schemaType": "ModelInvocationLog",
        "schemaVersion": "1.0",
        "timestamp": "2026-11-03T14:05:08Z",
        "accountId": "123456789012",
        "identity": {"arn": ROLE},
        "region": "us-east-1",
        "requestId": request_id,
        "operation": "Converse",
        "modelId": "anthropic.claude-3-haiku-20240307-v1:0",
        "input": {
            "inputContentType": "application/json",
            "inputBodyJson": {"messages": [{"role": "user", "content": [{"text": "hi"}]}]},
            "inputTokenCount": 120,
        },
        "output": {
            "outputContentType": "application/json",
            "outputBodyJson": {"metrics": {"latencyMs": 842}, "usage": {"inputTokens": 120}},
            "outputTokenCount": 35,
        },
    }
    entry.update(overrides)
    return entry


def gz_lines(*lines: dict[str, Any] | str) -> bytes:
    text = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines)
    return gzip.compress(text.encode() + b"\n")


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def test_maps_the_invocation_log_schema() -> None:
    cached = log(
        "req-2",
        modelId="arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-sonnet-20241022-v2:0",
        requestMetadata={"apex.feature": "support_reply"},
        input={
            "inputTokenCount": 50,
            "cacheReadInputTokenCount": 4000,
            "cacheWriteInputTokenCount": 100,
        },
    )
    record = parse_invocation_log(cached)
    assert record.record_id == "bedrock:req-2"
    assert record.provider == "aws"
    assert record.model == "us.anthropic.claude-3-5-sonnet-20241022-v2:0"
    # inputTokenCount excludes cache reads and writes; input_tokens includes them (as OTel).
    assert (record.input_tokens, record.cached_input_tokens) == (4150, 4000)
    assert record.output_tokens == 35
    assert record.user == ROLE
    assert record.feature == "support_reply"
    assert record.latency_ms == 842.0
    assert record.ts == datetime(2026, 11, 3, 14, 5, 8, tzinfo=UTC)
    assert record.operation == "Converse"
    assert record.status == "ok"


def test_errors_are_failed_calls() -> None:
    failed = log("req-3", errorCode="ThrottlingException", output={})
    record = parse_invocation_log(failed)
    assert record.status == "error"
    assert record.error_type == "ThrottlingException"
    assert record.output_tokens == 0


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (log("r", schemaType="Other"), "schemaType"),
        (log("r", input={}), "input.inputTokenCount: is required"),
        (log("r", output={"outputTokenCount": -1}), "output.outputTokenCount"),
        (log("r", timestamp="yesterday"), "timestamp"),
        (log("r", modelId=""), "modelId"),
        ({k: v for k, v in log("r").items() if k != "requestId"}, "requestId"),
        (log("r", identity={"arn": 7}), "user"),
    ],
)
def test_unusable_logs_name_the_field(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(BedrockLogError, match=message):
        parse_invocation_log(entry)


def test_imports_gzipped_json_lines_under_a_prefix(s3: Any) -> None:
    key = f"{PREFIX}2026/11/03/14/20261103T140500Z_abc.json.gz"
    s3.put_object(
        Bucket=BUCKET,
        Key=key,
        Body=gz_lines(log("req-1"), log("req-2", errorCode="ValidationException"), "{not json"),
    )
    s3.put_object(
        Bucket=BUCKET,
        Key=f"{PREFIX}2026/11/03/15/20261103T150500Z_def.json.gz",
        Body=gz_lines(log("req-4"), log("req-5", schemaType="Other")),
    )
    # Plain (uncompressed) JSON lines are read too; other objects are not logs.
    s3.put_object(
        Bucket=BUCKET,
        Key=f"{PREFIX}2026/11/03/16/plain.json",
        Body=(json.dumps(log("req-6")) + "\n").encode(),
    )
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}amazon-bedrock-logs-permission-check", Body=b"")
    s3.put_object(Bucket=BUCKET, Key="elsewhere/x.json.gz", Body=gz_lines(log("req-9")))

    result = import_invocation_logs(s3, BUCKET, PREFIX)

    assert [r.record_id for r in result.records] == [
        "bedrock:req-1",
        "bedrock:req-2",
        "bedrock:req-4",
        "bedrock:req-6",
    ]
    assert [(r.source, r.error.split(":")[0]) for r in result.rejected] == [
        (f"{key}:3", "(line)"),
        (f"{PREFIX}2026/11/03/15/20261103T150500Z_def.json.gz:2", "schemaType"),
    ]
    assert result.records[1].status == "error"


def test_reimport_counts_once(s3: Any) -> None:
    s3.put_object(
        Bucket=BUCKET, Key=f"{PREFIX}a.json.gz", Body=gz_lines(log("req-1"), log("req-2"))
    )
    first = import_invocation_logs(s3, BUCKET, PREFIX)
    second = import_invocation_logs(s3, BUCKET, PREFIX)
    applied = accumulate(first.records)
    again = accumulate(second.records, applied_record_ids=applied.record_ids)
    assert again.daily == {}
    assert sum(row.requests for row in applied.daily.values()) == 2


def test_follows_list_pagination(s3: Any) -> None:
    # More objects than one ListObjectsV2 page holds.
    for n in range(7):
        s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}{n:05d}.json", Body=json.dumps(log(f"r{n}")))
    result = import_invocation_logs(s3, BUCKET, PREFIX, page_size=2)
    assert [r.record_id for r in result.records] == [f"bedrock:r{n}" for n in range(7)]
    assert result.rejected == []


def test_priced_from_the_table() -> None:
    record = parse_invocation_log(log("req-1"))
    row = next(iter(accumulate([record]).daily.values()))
    assert row.unpriced_requests == 0
    assert row.cost_nanousd > 0
