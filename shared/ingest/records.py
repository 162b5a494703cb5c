"""The ``usage_ingest`` body: a JSON array or NDJSON of usage records (DESIGN §2, §5).

Each record is validated on its own: a bad one is reported in ``rejected`` with its index and
the field at fault, and the good ones are accepted. A body that is not JSON/NDJSON at all, or
holds more than ``MAX_INGEST_RECORDS`` (``shared.edge``, with the body's size limit), is
refused whole.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.edge import MAX_INGEST_RECORDS
from shared.errors import BadRequest, PayloadTooLarge, ValidationFailed
from shared.models.api import Rejected
from shared.models.usage import UsageRecord, UsageRecordError, parse_usage_record


@dataclass(frozen=True, slots=True)
class ParsedBatch:
    records: list[UsageRecord]
    rejected: list[Rejected]


def split_body(body: bytes, *, ndjson: bool) -> list[Any]:
    """The raw records of a body: a JSON array, or one JSON value per non-empty line."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadRequest("the body is not UTF-8") from e
    if ndjson:
        items: list[Any] = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    items.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise BadRequest(f"line {number} is not JSON: {e.msg}") from e
    else:
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as e:
            raise BadRequest(f"the body is not JSON: {e.msg} at line {e.lineno}") from e
        if not isinstance(parsed, list):
            raise ValidationFailed("body: expected a JSON array of usage records (or NDJSON)")
        items = parsed
    if not items:
        raise ValidationFailed("body: no usage records")
    if len(items) > MAX_INGEST_RECORDS:
        raise PayloadTooLarge(f"{len(items)} records; at most {MAX_INGEST_RECORDS} a request")
    return items


def parse_batch(items: list[Any], *, now: datetime) -> ParsedBatch:
    records: list[UsageRecord] = []
    rejected: list[Rejected] = []
    for index, raw in enumerate(items):
        try:
            records.append(parse_usage_record(raw, now=now))
        except UsageRecordError as e:
            rejected.append(Rejected(index=index, error=str(e)))
    return ParsedBatch(records=records, rejected=rejected)
