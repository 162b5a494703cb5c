"""Accepting usage records: what every ingest function does once it has validated them.

``accept`` publishes the accepted records twice, in one ``Bus.publish_all``:

1. ``UsageBatch`` messages on ``apex-usage`` (at most ``MAX_INGEST_RECORDS`` records each),
   which the aggregator folds into the rollups;
2. one ``RecordRow`` per record on ``apex-records``, which a Pub/Sub BigQuery subscription
   writes to the raw-records table (one row per message: docs/bigquery.md).

It returns only once Pub/Sub has every message, so the caller's 202 never acknowledges
something that could be lost. If a publish fails (``Unavailable``, 503 with Retry-After),
messages published before it stay published: the client retries the whole request, and
the records' stable ids make that safe. The aggregator applies a record id once per
workspace; the BigQuery table may then hold a record twice (as it may anyway: a BigQuery
subscription delivers at least once), which is why its queries deduplicate on
``(workspace_id, record_id)`` (docs/bigquery.md).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from shared.auth import Principal
from shared.bus import Outgoing, outgoing
from shared.ingest.rows import RECORDS_TOPIC, record_row
from shared.limits import MAX_INGEST_RECORDS
from shared.models.messages import USAGE_TOPIC, UsageBatch
from shared.models.usage import UsageRecord
from shared.services import Services


def accept(
    services: Services, principal: Principal, records: Sequence[UsageRecord], *, now: datetime
) -> None:
    """Publish ``records`` (validated, accepted in ``principal``'s workspace at ``now``) for
    the rollups and for BigQuery; raises ``Unavailable`` if Pub/Sub does not take them."""
    if records:
        services.bus.publish_all(accepted_messages(principal, records, now=now))


def accepted_messages(
    principal: Principal, records: Sequence[UsageRecord], *, now: datetime
) -> list[Outgoing]:
    """The messages ``accept`` publishes: the usage batches first, then one row per record."""
    batches = [
        outgoing(
            USAGE_TOPIC,
            UsageBatch(
                batch_id=uuid.uuid4().hex,
                workspace_id=principal.workspace_id,
                uid=principal.uid,
                records=[r.model_dump(mode="json") for r in records[i : i + MAX_INGEST_RECORDS]],
            ),
        )
        for i in range(0, len(records), MAX_INGEST_RECORDS)
    ]
    rows = [
        outgoing(
            RECORDS_TOPIC,
            record_row(
                r,
                workspace_id=principal.workspace_id,
                ingested_by=principal.uid,
                ingested_at=now,
            ),
        )
        for r in records
    ]
    return batches + rows
