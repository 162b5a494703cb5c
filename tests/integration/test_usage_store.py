"""Rollups written through the emulator equal the in-memory fold, and each record counts once."""

from __future__ import annotations

import json
import zlib
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import pytest
from google.cloud import firestore

from devstack.synthetic import SyntheticWorkspace, generate
from shared.store.usage import FirestoreUsageStore, commit_chunks
from shared.usage.layout import USAGE_DAILY_COLLECTION, USAGE_DAILY_USERS_COLLECTION
from shared.usage.rollups import DailyRollup, UserDailyRollup, accumulate


@pytest.fixture(scope="module")
def small() -> SyntheticWorkspace:
    return generate(end=date(2026, 11, 20), days=8)


def test_stored_rollups_equal_the_fold(
    firestore_client: firestore.Client, small: SyntheticWorkspace
) -> None:
    store = FirestoreUsageStore(firestore_client)
    records = small.records[:700]
    assert store.apply("ws1", records) == len(records)
    expected = accumulate(records)
    daily = {r.doc_id: r for r in store.daily("ws1", "2026-11-13", "2026-11-20")}
    assert daily == expected.daily
    users = {r.doc_id: r for r in store.users("ws1", "2026-11-13", "2026-11-20")}
    assert users == expected.users
    catalogue = store.catalogue("ws1")
    assert catalogue.records == len(records)
    assert set(catalogue.models) == {r.model for r in records}
    assert (catalogue.first_day, catalogue.last_day) == (
        min(int(r.day.replace("-", "")) for r in records),
        max(int(r.day.replace("-", "")) for r in records),
    )


def test_a_redelivered_batch_counts_once(
    firestore_client: firestore.Client, small: SyntheticWorkspace
) -> None:
    store = FirestoreUsageStore(firestore_client)
    records = small.records[:300]
    assert store.apply("ws2", records[:200]) == 200
    # The retried batch overlaps the first by 100 records: only the 100 new ones count.
    assert store.apply("ws2", records[100:300]) == 100
    assert store.apply("ws2", records) == 0
    expected = accumulate(records)
    assert {r.doc_id: r for r in store.daily("ws2", "2026-11-13", "2026-11-20")} == expected.daily
    assert store.catalogue("ws2").records == 300


def test_an_empty_workspace_has_no_data(firestore_client: firestore.Client) -> None:
    store = FirestoreUsageStore(firestore_client)
    assert not store.catalogue("nobody").has_data
    assert store.daily("nobody", "2026-01-01", "2026-12-31") == []


def test_a_record_twice_in_one_batch_counts_once(
    firestore_client: firestore.Client, small: SyntheticWorkspace
) -> None:
    store = FirestoreUsageStore(firestore_client)
    records = [*small.records[:50], small.records[10], *small.records[50:60], small.records[10]]
    assert store.apply("ws3", records) == 60
    assert store.catalogue("ws3").records == 60
    expected = accumulate(small.records[:60])
    assert {r.doc_id: r for r in store.daily("ws3", "2026-11-13", "2026-11-20")} == expected.daily


def test_a_batch_redelivered_to_another_instance_counts_once(
    firestore_client: firestore.Client, small: SyntheticWorkspace
) -> None:
    # A fresh store knows no markers: its optimistic commit fails and it reads them instead.
    records = small.records[:900]
    assert FirestoreUsageStore(firestore_client).apply("ws4", records[:600]) == 600
    assert FirestoreUsageStore(firestore_client).apply("ws4", records) == 300
    assert FirestoreUsageStore(firestore_client).apply("ws4", records) == 0
    expected = accumulate(records)
    assert {r.doc_id: r for r in store_daily(firestore_client, "ws4")} == expected.daily
    assert {r.doc_id: r for r in FirestoreUsageStore(firestore_client).users("ws4", *SPAN)} == (
        expected.users
    )


def test_concurrent_deliveries_of_one_batch_count_once(
    firestore_client: firestore.Client, small: SyntheticWorkspace
) -> None:
    records = small.records[:1500]
    stores = [FirestoreUsageStore(firestore_client) for _ in range(3)]
    with ThreadPoolExecutor(len(stores)) as pool:
        applied = list(pool.map(lambda store: store.apply("ws5", records), stores))
    assert sum(applied) == len(records)
    assert store_daily(firestore_client, "ws5") == sorted(
        accumulate(records).daily.values(), key=lambda r: r.doc_id
    )
    assert FirestoreUsageStore(firestore_client).catalogue("ws5").records == len(records)


def test_repeats_across_the_commits_of_one_batch_are_found(
    firestore_client: firestore.Client, small: SyntheticWorkspace
) -> None:
    # The same request many times, in a batch that needs several commits.
    base = next(r for r in small.records if r.request_hash is not None)
    records = [
        base.model_copy(update={"record_id": f"same-{i}", "user": f"user-{i}"}) for i in range(1200)
    ]
    assert len(list(commit_chunks(records))) > 1
    assert FirestoreUsageStore(firestore_client).apply("ws6", records) == 1200
    (row,) = store_daily(firestore_client, "ws6")
    assert (row.requests, row.repeat_requests) == (1200 * base.requests, 1199 * base.requests)


SPAN = ("2026-11-13", "2026-11-20")


def store_daily(client: firestore.Client, workspace: str) -> list[DailyRollup]:
    return sorted(FirestoreUsageStore(client).daily(workspace, *SPAN), key=lambda r: r.doc_id)


def test_every_stored_rollup_carries_every_field(
    firestore_client: firestore.Client, small: SyntheticWorkspace
) -> None:
    store = FirestoreUsageStore(firestore_client, clock=lambda: 1_800_000_000.0)
    store.apply("ws7", small.records[:200])  # compacted: the window's first batch
    store.apply("ws7", small.records[200:300])  # in the same window: parts beside the days
    ws = firestore_client.collection("workspaces").document("ws7")
    for collection, cls in (
        (USAGE_DAILY_COLLECTION, DailyRollup),
        (USAGE_DAILY_USERS_COLLECTION, UserDailyRollup),
    ):
        docs = [snap.to_dict() or {} for snap in ws.collection(collection).stream()]
        assert {doc["kind"] for doc in docs} == {"day", "part"}
        for doc in docs:
            blob = json.loads(zlib.decompress(doc["rows"]))
            assert set(blob["fields"]) == set(cls.model_fields) - {"day"}, collection
            assert blob["rows"]
            assert {len(row) for row in blob["rows"]} == {len(blob["fields"])}


def test_records_without_a_feature_are_counted(
    firestore_client: firestore.Client, small: SyntheticWorkspace
) -> None:
    # A batch where no record names a feature once made the catalogue write fail (an empty
    # ArrayUnion), so the aggregator refused the batch on every delivery.
    store = FirestoreUsageStore(firestore_client)
    records = [r.model_copy(update={"feature": None}) for r in small.records[:50]]
    assert store.apply("ws-nofeature", records) == 50
    assert store.catalogue("ws-nofeature").records == 50
    assert store.catalogue("ws-nofeature").features == []
    assert {r.doc_id: r for r in store.daily("ws-nofeature", "2026-11-13", "2026-11-20")} == (
        accumulate(records).daily
    )
