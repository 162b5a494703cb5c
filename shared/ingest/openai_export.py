"""Importer for OpenAI organization usage exports (``GET /v1/organization/usage/completions``).

The export is a page ``{"object": "page", "data": [bucket, ...], "has_more", "next_page"}``
(or a list of such pages); each bucket ``{"start_time", "end_time", "results": [...]}`` holds
results grouped by the request's ``group_by`` (``model`` is required here: a result without a
model cannot be priced). The results are aggregates, and are kept as such, not spread:
one ``UsageRecord`` per result, with ``requests = num_model_requests`` and the result's exact
token totals, stamped at the bucket's ``start_time``. So every total is exact; per-call
figures (sketches, the input floor) use the per-call averages.

Mapping: ``project_id`` → ``feature`` (the closest grouping the export has; else
``default_feature``), ``user_id`` → ``user``, ``batch`` → ``batch``, ``input_tokens``
(which includes the cached ones) → ``input_tokens``, ``input_cached_tokens`` →
``cached_input_tokens``. Audio tokens are outside the usage-record format: they are left
out and their totals reported in ``notes``.

The record id is ``openai-usage:`` + sha256 of the bucket and its group keys, so importing
the same export again counts once. A bucket that has not ended (``end_time`` after ``now``)
is still growing: its results are rejected, to be imported once closed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from pydantic import ValidationError

from shared.ingest import ImportRejection, ImportResult
from shared.models.usage import UsageContent, UsageRecord, make_record

PROVIDER: Final = "openai"
RECORD_ID_PREFIX: Final = "openai-usage:"
_GROUP_KEYS: Final = ("project_id", "user_id", "api_key_id", "model", "batch", "service_tier")


class OpenAIExportError(ValueError):
    """A bucket or result that cannot be imported; the message names the field."""


def _int(obj: Mapping[str, Any], key: str, *, default: int | None = None) -> int:
    value = obj.get(key, default)
    if value is None and default is not None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise OpenAIExportError(f"{key}: expected a non-negative integer")
    return value


def _optional_str(obj: Mapping[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise OpenAIExportError(f"{key}: expected a string or null")
    return value


def _record_id(start: int, end: int, result: Mapping[str, Any]) -> str:
    group = {"start_time": start, "end_time": end, **{k: result.get(k) for k in _GROUP_KEYS}}
    canonical = json.dumps(group, sort_keys=True, separators=(",", ":"))
    return RECORD_ID_PREFIX + hashlib.sha256(canonical.encode()).hexdigest()


def parse_result(
    start: int, end: int, result: Mapping[str, Any], *, default_feature: str | None = None
) -> UsageRecord | None:
    """One result of a bucket → ``UsageRecord`` (None for a result of zero requests)."""
    requests = _int(result, "num_model_requests")
    input_tokens = _int(result, "input_tokens", default=0)
    cached = _int(result, "input_cached_tokens", default=0)
    output_tokens = _int(result, "output_tokens", default=0)
    if requests == 0:
        if input_tokens or output_tokens:
            raise OpenAIExportError("num_model_requests: is 0 but tokens were used")
        return None
    model = _optional_str(result, "model")
    if model is None:
        raise OpenAIExportError("model: is null (export with group_by=model to price usage)")
    batch = result.get("batch")
    if batch is not None and not isinstance(batch, bool):
        raise OpenAIExportError("batch: expected a boolean or null")
    try:
        content = UsageContent(
            ts=datetime.fromtimestamp(start, tz=UTC),
            provider=PROVIDER,
            model=model,
            feature=_optional_str(result, "project_id") or default_feature,
            user=_optional_str(result, "user_id"),
            requests=requests,
            input_tokens=input_tokens,
            cached_input_tokens=cached,
            output_tokens=output_tokens,
            batch=bool(batch),
        )
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = ".".join(str(part) for part in first["loc"]) or "(result)"
        raise OpenAIExportError(f"{field}: {first['msg'].removeprefix('Value error, ')}") from exc
    return make_record(content, _record_id(start, end, result))


def _pages(export: object) -> Iterator[tuple[str, Mapping[str, Any]]]:
    pages = export if isinstance(export, list) else [export]
    for index, page in enumerate(pages):
        if not isinstance(page, Mapping) or not isinstance(page.get("data"), list):
            raise OpenAIExportError(f"pages[{index}]: expected a page object with a 'data' list")
        yield (f"pages[{index}]." if isinstance(export, list) else ""), page


def _bucket_bounds(bucket: object) -> tuple[int, int, list[Any]]:
    if not isinstance(bucket, Mapping):
        raise OpenAIExportError("expected a bucket object")
    start, end = _int(bucket, "start_time"), _int(bucket, "end_time")
    if end <= start:
        raise OpenAIExportError("end_time: must be after start_time")
    results = bucket.get("results")
    if not isinstance(results, list):
        raise OpenAIExportError("results: expected a list")
    return start, end, results


def import_usage_export(
    export: object, *, now: datetime, default_feature: str | None = None
) -> ImportResult:
    """Import an OpenAI completions usage export (a page, or a list of pages).

    A malformed page raises ``OpenAIExportError``; a malformed bucket or result is reported in
    ``rejected`` as ``data[i]`` / ``data[i].results[j]`` with the reason.
    """
    result = ImportResult()
    audio_in = audio_out = 0
    cutoff = now.timestamp()
    for page_path, page in _pages(export):
        for i, bucket in enumerate(page["data"]):
            bucket_path = f"{page_path}data[{i}]"
            try:
                start, end, results = _bucket_bounds(bucket)
            except OpenAIExportError as exc:
                result.rejected.append(ImportRejection(bucket_path, str(exc)))
                continue
            for j, item in enumerate(results):
                path = f"{bucket_path}.results[{j}]"
                if end > cutoff:
                    result.rejected.append(
                        ImportRejection(path, "end_time: the bucket has not ended yet")
                    )
                    continue
                if not isinstance(item, Mapping):
                    result.rejected.append(ImportRejection(path, "expected a result object"))
                    continue
                try:
                    record = parse_result(start, end, item, default_feature=default_feature)
                    audio = (
                        _int(item, "input_audio_tokens", default=0),
                        _int(item, "output_audio_tokens", default=0),
                    )
                except OpenAIExportError as exc:
                    result.rejected.append(ImportRejection(path, str(exc)))
                    continue
                if record is not None:
                    result.records.append(record)
                    audio_in += audio[0]
                    audio_out += audio[1]
    if audio_in or audio_out:
        result.notes.append(
            f"audio tokens left out: {audio_in} input, {audio_out} output "
            "(usage records carry text tokens only)"
        )
    return result
