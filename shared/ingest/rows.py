"""The raw-records row: one accepted usage record as a row of the BigQuery table (DESIGN §10).

``apex-records`` carries one ``RecordRow`` per message, as JSON; a Pub/Sub BigQuery
subscription writes each message as one row of the table, matching JSON keys to columns
(``use_table_schema``). The row is the ``UsageRecord`` (every field, so a field added to the
record is a column too: ``python -m infra.bq_schema`` writes the table's schema from this
model and a test fails while the committed schema differs) plus what ingest knows besides:
the workspace, the price, when and by whom it was accepted.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Final

from pydantic import Field, PlainSerializer

from shared.models.usage import UsageRecord, UtcDatetime
from shared.usage.rollups import record_cost_nanousd

RECORDS_TOPIC: Final = "apex-records"
# BigQuery NUMERIC keeps 9 decimal places: the cost is exact to the 1e-9 USD of the rollups.
_NANO: Final = Decimal("1e-9")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)


def _timestamp(value: datetime) -> int:
    # Microseconds since the epoch: what the BigQuery Storage Write API (which a BigQuery
    # subscription writes through) holds a TIMESTAMP as, so no text format is left to parse.
    return (value - _EPOCH) // _MICROSECOND


def _numeric(value: Decimal) -> str:
    # A JSON string in plain notation, not a number: a float would round the price before
    # BigQuery reads it.
    return f"{value:f}"


# How the row's JSON writes the types BigQuery reads differently from pydantic's default.
Timestamp = Annotated[UtcDatetime, PlainSerializer(_timestamp, return_type=int)]
Numeric = Annotated[Decimal, PlainSerializer(_numeric, return_type=str)]


class RecordRow(UsageRecord):
    """A ``UsageRecord`` with its workspace, cost and acceptance: one row of ``usage_records``."""

    # Redeclared only to write it as BigQuery reads it.
    ts: Timestamp
    workspace_id: str = Field(min_length=1)
    # USD at the prices in force at ``ts`` (as the rollups price it); None: the price table
    # does not know the model, so the call is unpriced, not free.
    cost_usd: Numeric | None
    ingested_at: Timestamp
    # The principal that sent it: a user's uid, or ``key:{key_id}`` for an API key.
    ingested_by: str = Field(min_length=1)

    def attributes(self) -> dict[str, str]:
        return {"kind": "usage_row", "workspace_id": self.workspace_id, "record_id": self.record_id}


# The table's column descriptions (what BigQuery shows beside each column). The schema script
# refuses a field without one, so a new record field is described before it ships.
COLUMN_DESCRIPTIONS: Final[Mapping[str, str]] = {
    "ts": "When the call started (UTC); the table is partitioned by its day.",
    "provider": "Provider id as sent (price-table ids: openai, anthropic, aws, google, ...); "
    "null when the sender gave none.",
    "model": "Model id (the response's model, else the requested one).",
    "feature": "The feature the call served (apex.feature, else the service name).",
    "user": "End user of the call (enduser.id); null when not sent.",
    "status": "ok or error.",
    "error_type": "error.type of a failed call.",
    "operation": "gen_ai.operation.name (chat, embeddings, ...).",
    "requests": "Calls this record stands for (1, more for aggregate imports).",
    "input_tokens": "Input tokens, cached ones included (as in OpenTelemetry).",
    "cached_input_tokens": "Input tokens read from the provider's cache.",
    "output_tokens": "Output tokens.",
    "latency_ms": "End minus start of the call, in milliseconds; null when unknown.",
    "request_hash": "Sender's hash of the request, to find repeated identical calls.",
    "batch": "Whether the call went through the provider's batch API.",
    "prompt_prefix_hash": "Sender's hash of the prompt's stable prefix, to measure repeated "
    "prefixes a prompt cache could serve; null when not sent.",
    "record_id": "The record's stable id, unique per workspace ({traceId}-{spanId} for OTLP "
    "spans, the sent id, else a content hash). Deduplicate on (workspace_id, record_id).",
    "workspace_id": "The workspace the record was ingested into.",
    "cost_usd": "USD at the price table's prices in force at ts, to 1e-9 USD, as the rollups "
    "count it; null when the model is not in the price table (unpriced, not free).",
    "ingested_at": "When Apex accepted the record (UTC).",
    "ingested_by": "Who sent it: a user's uid, or key:<key id> for an API key.",
}


def cost_usd(record: UsageRecord) -> Decimal | None:
    """The record's cost to the nano-dollar, as the rollups count it; None if unpriced."""
    nanousd = record_cost_nanousd(record)
    return None if nanousd is None else Decimal(nanousd) * _NANO


def record_row(
    record: UsageRecord, *, workspace_id: str, ingested_by: str, ingested_at: datetime
) -> RecordRow:
    """The row of an accepted (already validated) record."""
    # The record is validated already: only what is added needs no check (ingest hot path).
    return RecordRow.model_construct(
        **vars(record),
        workspace_id=workspace_id,
        cost_usd=cost_usd(record),
        ingested_at=ingested_at,
        ingested_by=ingested_by,
    )
