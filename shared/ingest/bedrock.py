"""Importer for AWS Bedrock model-invocation logs delivered to S3.

Bedrock writes gzipped JSON-lines objects (``.../BedrockModelInvocationLogs/{region}/
{yyyy}/{mm}/{dd}/{hh}/*.json.gz``), one ``ModelInvocationLog`` per line. Mapping:

- ``requestId`` → ``record_id`` ``bedrock:{requestId}`` (a re-import counts once);
- ``timestamp`` → ``ts``; ``modelId`` → ``model`` (an ARN is reduced to its last path part,
  e.g. ``us.anthropic.claude-3-5-sonnet-20241022-v2:0``); provider ``aws``;
- ``input.inputTokenCount`` counts only uncached input, so ``input_tokens`` is
  ``inputTokenCount + cacheReadInputTokenCount + cacheWriteInputTokenCount`` and
  ``cached_input_tokens`` is ``cacheReadInputTokenCount``;
- ``output.outputTokenCount`` → ``output_tokens``;
- ``identity.arn`` → ``user`` (the calling principal: the closest thing to an end user the
  log has); ``operation`` → ``operation``; ``errorCode`` → status ``error``;
- ``requestMetadata["apex.feature"]`` (or ``["feature"]``) → ``feature``;
- latency from the Converse body's ``metrics.latencyMs`` when it was logged.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any, Final, Protocol

from pydantic import ValidationError

from shared.ingest import ImportRejection, ImportResult
from shared.models.usage import UsageContent, UsageRecord, make_record

SCHEMA_TYPE: Final = "ModelInvocationLog"
LOG_SUFFIXES: Final = (".json.gz", ".json")
_GZIP_MAGIC: Final = b"\x1f\x8b"


class S3Client(Protocol):
    """The two calls of a boto3 S3 client the importer makes."""

    def list_objects_v2(self, **kwargs: Any) -> Mapping[str, Any]: ...

    def get_object(self, **kwargs: Any) -> Mapping[str, Any]: ...


class BedrockLogError(ValueError):
    """A log line that is not a usable model-invocation log; the message names the field."""


def _get(obj: Mapping[str, Any], path: str) -> Any:
    value: Any = obj
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _count(log: Mapping[str, Any], path: str, *, required: bool) -> int:
    value = _get(log, path)
    if value is None:
        if required:
            raise BedrockLogError(f"{path}: is required")
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BedrockLogError(f"{path}: expected a non-negative integer")
    return value


def _timestamp(log: Mapping[str, Any]) -> datetime:
    timestamp = log.get("timestamp")
    if not isinstance(timestamp, str):
        raise BedrockLogError("timestamp: expected an ISO 8601 string")
    try:
        return datetime.fromisoformat(timestamp)
    except ValueError as exc:
        raise BedrockLogError(f"timestamp: {exc}") from exc


def _model_id(log: Mapping[str, Any]) -> str:
    model_id = log.get("modelId")
    if not isinstance(model_id, str) or not model_id:
        raise BedrockLogError("modelId: is required")
    # arn:aws:bedrock:{region}:{account}:foundation-model/{id} (or inference-profile/{id})
    return model_id.rsplit("/", 1)[-1] if model_id.startswith("arn:") else model_id


def _feature(log: Mapping[str, Any]) -> str | None:
    metadata = log.get("requestMetadata")
    if not isinstance(metadata, Mapping):
        return None
    feature = metadata.get("apex.feature", metadata.get("feature"))
    return feature if isinstance(feature, str) else None


def _latency_ms(log: Mapping[str, Any]) -> float | None:
    latency = _get(log, "output.outputBodyJson.metrics.latencyMs")
    if isinstance(latency, bool) or not isinstance(latency, int | float):
        return None
    return float(latency)


def parse_invocation_log(log: object) -> UsageRecord:
    """One Bedrock invocation-log object → ``UsageRecord``; ``BedrockLogError`` if unusable."""
    if not isinstance(log, Mapping):
        raise BedrockLogError("(line): expected a JSON object")
    if log.get("schemaType") != SCHEMA_TYPE:
        raise BedrockLogError(f"schemaType: expected {SCHEMA_TYPE!r}")
    request_id = log.get("requestId")
    if not isinstance(request_id, str) or not request_id:
        raise BedrockLogError("requestId: is required")
    ts = _timestamp(log)
    model = _model_id(log)
    uncached = _count(log, "input.inputTokenCount", required=True)
    cache_read = _count(log, "input.cacheReadInputTokenCount", required=False)
    cache_write = _count(log, "input.cacheWriteInputTokenCount", required=False)
    error_code = log.get("errorCode")
    output_tokens = _count(log, "output.outputTokenCount", required=error_code is None)
    try:
        content = UsageContent(
            ts=ts,
            provider="aws",
            model=model,
            feature=_feature(log),
            user=_get(log, "identity.arn"),
            status="error" if error_code else "ok",
            error_type=str(error_code) if error_code else None,
            operation=log.get("operation"),
            input_tokens=uncached + cache_read + cache_write,
            cached_input_tokens=cache_read,
            output_tokens=output_tokens,
            latency_ms=_latency_ms(log),
        )
        return make_record(content, f"bedrock:{request_id}")
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = ".".join(str(part) for part in first["loc"]) or "(line)"
        raise BedrockLogError(f"{field}: {first['msg'].removeprefix('Value error, ')}") from exc


def list_log_keys(
    s3: S3Client, bucket: str, prefix: str, *, page_size: int = 1000
) -> Iterator[str]:
    """Keys of the log objects under ``prefix``, in S3's (lexicographic, so time) order."""
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": page_size}
        if token is not None:
            kwargs["ContinuationToken"] = token
        page = s3.list_objects_v2(**kwargs)
        for obj in page.get("Contents", []):
            key = obj["Key"]
            if isinstance(key, str) and key.endswith(LOG_SUFFIXES):
                yield key
        if not page.get("IsTruncated"):
            return
        token = page["NextContinuationToken"]


def _lines(s3: S3Client, bucket: str, key: str) -> list[bytes]:
    body = bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    if body.startswith(_GZIP_MAGIC):
        body = gzip.decompress(body)
    return body.splitlines()


def import_invocation_logs(
    s3: S3Client, bucket: str, prefix: str = "", *, page_size: int = 1000
) -> ImportResult:
    """Import every invocation log under ``s3://bucket/prefix``.

    Unusable lines are reported in ``rejected`` as ``{key}:{line number}`` with the reason;
    S3 errors propagate (nothing is silently skipped).
    """
    result = ImportResult()
    for key in list_log_keys(s3, bucket, prefix, page_size=page_size):
        for number, line in enumerate(_lines(s3, bucket, key), start=1):
            if not line.strip():
                continue
            source = f"{key}:{number}"
            try:
                result.records.append(parse_invocation_log(json.loads(line)))
            except json.JSONDecodeError as exc:
                result.rejected.append(ImportRejection(source, f"(line): invalid JSON: {exc.msg}"))
            except BedrockLogError as exc:
                result.rejected.append(ImportRejection(source, str(exc)))
    return result
