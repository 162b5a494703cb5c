"""A query read from the raw protobuf documents (shared/store/raw_reads.py) equals the
client's own reading of the same documents, for every value kind it reads and for the
rollups the data agent queries; a kind it does not read raises."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest
from google.cloud import firestore

from devstack.synthetic import generate
from shared.store import raw_reads
from shared.store.usage import FirestoreUsageStore
from shared.usage.layout import USAGE_DAILY_COLLECTION, USAGE_DAILY_USERS_COLLECTION

EVERY_KIND = {
    "day": "2026-11-02",
    "null": None,
    "yes": True,
    "no": False,
    "int": 2**40,
    "negative": -3,
    "double": 0.25,
    "string": "gpt-4o ✓",
    "empty": "",
    "map": {"le_25": 3, "nested": {"deep": [1, "two", None]}},
    "array": [1, 2.5, "x", {"k": "v"}],
}


def by_day(col: firestore.CollectionReference, first: str, last: str) -> firestore.Query:
    return col.where(filter=firestore.FieldFilter("day", ">=", first)).where(
        filter=firestore.FieldFilter("day", "<=", last)
    )


def test_every_kind_it_reads_equals_the_client_s_reading(
    firestore_client: firestore.Client,
) -> None:
    col = firestore_client.collection(f"raw-{uuid.uuid4().hex[:8]}")
    col.document("a").set(EVERY_KIND)
    col.document("b").set({**EVERY_KIND, "day": "2026-11-03", "map": {}, "array": []})
    col.document("outside").set({**EVERY_KIND, "day": "2026-12-01"})
    query = by_day(col, "2026-11-01", "2026-11-30")
    read = list(raw_reads.stream(firestore_client, query))
    assert read == [snap.to_dict() for snap in query.stream()]
    assert sorted(doc["day"] for doc in read) == ["2026-11-02", "2026-11-03"]
    assert read[0] == EVERY_KIND or read[1] == EVERY_KIND


def test_a_kind_it_does_not_read_raises(firestore_client: firestore.Client) -> None:
    col = firestore_client.collection(f"raw-{uuid.uuid4().hex[:8]}")
    col.document("t").set({"day": "2026-11-02", "at": datetime(2026, 11, 2, tzinfo=UTC)})
    with pytest.raises(TypeError, match="timestamp_value"):
        list(raw_reads.stream(firestore_client, by_day(col, "2026-11-01", "2026-11-30")))


def test_the_rollups_read_equal_the_client_s_reading(firestore_client: firestore.Client) -> None:
    workspace = f"ws-{uuid.uuid4().hex[:8]}"
    records = generate(end=date(2026, 11, 20), days=8).records[:800]
    FirestoreUsageStore(firestore_client).apply(workspace, records)
    ws = firestore_client.collection("workspaces").document(workspace)
    for collection in (USAGE_DAILY_COLLECTION, USAGE_DAILY_USERS_COLLECTION):
        query = by_day(ws.collection(collection), "2026-11-13", "2026-11-20")
        read = list(raw_reads.stream(firestore_client, query))
        assert read, collection
        assert read == [snap.to_dict() for snap in query.stream()]
