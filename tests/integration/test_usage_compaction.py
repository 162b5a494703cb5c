"""Compaction (shared/store/usage.py): a day's parts folded into its day document(s) change
nothing a read sees; at most one compaction per window and workspace; a compaction that
overlaps another loses cleanly (nothing doubled, nothing lost); a day too big for one
document is split."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import Any

import pytest
from google.cloud import firestore
from pydantic import ValidationError

from devstack.synthetic import SyntheticWorkspace, generate
from shared.models.usage import UsageRecord
from shared.store import usage as usage_store
from shared.store.usage import COMPACT_EVERY_S, FirestoreUsageStore
from shared.usage.layout import USAGE_DAILY_COLLECTION, USAGE_DAILY_USERS_COLLECTION
from shared.usage.rollups import DailyRollup, UserDailyRollup, accumulate

SPAN = ("2026-11-13", "2026-11-20")
T0 = 1_800_000_000.0  # a clock at the start of a window


@pytest.fixture(scope="module")
def small() -> SyntheticWorkspace:
    return generate(end=date(2026, 11, 20), days=8)


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def kinds(db: firestore.Client, workspace: str) -> dict[str, list[str]]:
    """The kind of each stored rollup document, by collection."""
    ws = db.collection("workspaces").document(workspace)
    return {
        collection: sorted(
            (snap.to_dict() or {})["kind"] for snap in ws.collection(collection).stream()
        )
        for collection in (USAGE_DAILY_COLLECTION, USAGE_DAILY_USERS_COLLECTION)
    }


def n_days(records: list[UsageRecord]) -> int:
    return len({r.day for r in records})


def daily(store: FirestoreUsageStore, workspace: str) -> dict[str, DailyRollup]:
    rows = store.daily(workspace, *SPAN)
    assert len(rows) == len({r.doc_id for r in rows}), "one row per rollup"
    return {r.doc_id: r for r in rows}


def users(store: FirestoreUsageStore, workspace: str) -> dict[str, UserDailyRollup]:
    rows = store.users(workspace, *SPAN)
    assert len(rows) == len({r.doc_id for r in rows}), "one row per rollup"
    return {r.doc_id: r for r in rows}


# Batches applied concurrently, out of time order: a repeat is credited to the call processed
# when it is found (shared/usage/repeats.py), so which day's row holds it and whose tokens
# count as repeated depend on the order; the number of repeats of each workload does not.
REPEAT_FIELDS = {n for n in DailyRollup.model_fields if n.startswith(("repeat_", "prefix_repeat_"))}


def repeats_by_workload(rows: dict[str, DailyRollup]) -> dict[tuple[str, str, str | None], Any]:
    totals: dict[tuple[str, str, str | None], list[int]] = {}
    for row in rows.values():
        total = totals.setdefault((row.provider, row.model, row.feature), [0, 0])
        total[0] += row.repeat_requests
        total[1] += row.prefix_repeat_requests
    return totals


def check_equal_to_the_fold(
    store: FirestoreUsageStore,
    workspace: str,
    records: list[UsageRecord],
    *,
    order_free: bool = False,
) -> None:
    expected = accumulate(records)
    got = daily(store, workspace)
    if order_free:
        assert repeats_by_workload(got) == repeats_by_workload(expected.daily)
        assert {k: r.model_dump(exclude=REPEAT_FIELDS) for k, r in got.items()} == {
            k: r.model_dump(exclude=REPEAT_FIELDS) for k, r in expected.daily.items()
        }
    else:
        assert got == expected.daily
    assert users(store, workspace) == expected.users
    catalogue = store.catalogue(workspace)
    assert catalogue.records == len({r.record_id for r in records})
    assert set(catalogue.models) == {r.model for r in records}
    assert set(catalogue.features) == {r.feature for r in records if r.feature}
    assert set(catalogue.providers) == {r.provider for r in expected.daily.values()}
    days = [int(r.day.replace("-", "")) for r in records]
    assert (catalogue.first_day, catalogue.last_day) == (min(days), max(days))


def test_reads_are_the_same_before_and_after_compaction(
    firestore_client: firestore.Client, small: SyntheticWorkspace
) -> None:
    clock = Clock()
    store = FirestoreUsageStore(firestore_client, clock=clock)
    first, second = small.records[:900], small.records[900:1400]
    assert store.apply("ws", first) == len(first)  # claims the window: compacted at once
    assert kinds(firestore_client, "ws")[USAGE_DAILY_COLLECTION] == ["day"] * n_days(first)
    assert store.apply("ws", second) == len(second)  # same window: its parts stay
    stored = kinds(firestore_client, "ws")
    assert stored[USAGE_DAILY_COLLECTION].count("part") >= 2
    assert stored[USAGE_DAILY_USERS_COLLECTION].count("part") >= 2
    check_equal_to_the_fold(store, "ws", first + second)
    before = (daily(store, "ws"), users(store, "ws"), store.catalogue("ws"))

    done = store.compact("ws")

    assert done.parts_folded == sum(kind == "part" for kind in stored[USAGE_DAILY_COLLECTION]) + (
        stored[USAGE_DAILY_USERS_COLLECTION].count("part")
    )
    assert done.conflicts == 0
    assert kinds(firestore_client, "ws") == {
        USAGE_DAILY_COLLECTION: ["day"] * n_days(first + second),
        USAGE_DAILY_USERS_COLLECTION: ["day"] * n_days(first + second),
    }
    after = (daily(store, "ws"), users(store, "ws"), store.catalogue("ws"))
    assert after[:2] == before[:2]
    assert after[2].model_dump() | {"models": set(after[2].models)} == before[2].model_dump() | {
        "models": set(before[2].models)
    }
    assert store.compact("ws").parts_folded == 0  # nothing left to fold


def test_at_most_one_compaction_a_window_per_workspace(
    firestore_client: firestore.Client, small: SyntheticWorkspace
) -> None:
    clock = Clock()
    # Two aggregator instances: the first claims the window, the second finds it taken.
    one = FirestoreUsageStore(firestore_client, clock=clock)
    two = FirestoreUsageStore(firestore_client, clock=clock)
    one.apply("ws", small.records[:100])
    two.apply("ws", small.records[100:200])
    one.apply("ws", small.records[200:300])
    assert "part" in kinds(firestore_client, "ws")[USAGE_DAILY_COLLECTION]
    lease = firestore_client.document("workspaces/ws/usage_compaction/lease").get()
    assert lease.get("window") == int(T0 // COMPACT_EVERY_S)

    clock.now += COMPACT_EVERY_S  # the next window: the next batch compacts
    two.apply("ws", small.records[300:400])
    assert set(kinds(firestore_client, "ws")[USAGE_DAILY_COLLECTION]) == {"day"}
    check_equal_to_the_fold(two, "ws", small.records[:400])


def test_a_compaction_that_overlaps_another_loses_and_changes_nothing(
    firestore_client: firestore.Client,
    small: SyntheticWorkspace,
    monkeypatch: pytest.MonkeyPatch,
    project_id: str,
) -> None:
    clock = Clock()
    store = FirestoreUsageStore(firestore_client, clock=clock)
    store.apply("ws", small.records[:300])
    store.apply("ws", small.records[300:700])  # parts on the day documents
    # Another process (its own client).
    rival = FirestoreUsageStore(firestore.Client(project=project_id), clock=clock)
    # The store's compaction reads, then the rival compacts, then the store commits.
    real_batch = firestore_client.batch
    rivals_done: list[Any] = []

    def batch_after_the_rival() -> Any:
        batch = real_batch()
        commit = batch.commit

        def commit_late() -> Any:
            if not rivals_done:
                rivals_done.append(rival.compact("ws"))
            return commit()

        batch.commit = commit_late  # type: ignore[method-assign,assignment]
        return batch

    monkeypatch.setattr(firestore_client, "batch", batch_after_the_rival)
    done = store.compact("ws")
    monkeypatch.undo()
    assert rivals_done[0].parts_folded > 0
    assert rivals_done[0].conflicts == 0
    assert done.conflicts >= 1
    check_equal_to_the_fold(store, "ws", small.records[:700])
    assert set(kinds(firestore_client, "ws")[USAGE_DAILY_COLLECTION]) == {"day"}


def test_concurrent_aggregators_and_compactions_count_each_record_once(
    firestore_client: firestore.Client, small: SyntheticWorkspace
) -> None:
    records = small.records[:2400]
    batches = [records[i : i + 120] for i in range(0, len(records), 120)]
    # Redeliveries and a retried export: batches again, and one overlapping two others.
    deliveries = [*batches, batches[3], batches[7], records[300:500]]
    stores = [FirestoreUsageStore(firestore_client) for _ in range(3)]
    stop = threading.Event()

    def compact_all_along() -> int:
        conflicts = 0
        while not stop.is_set():
            conflicts += stores[0].compact("ws").conflicts
        return conflicts

    with ThreadPoolExecutor(4) as pool:
        compactor = pool.submit(compact_all_along)
        applied = list(
            pool.map(lambda item: stores[item[0] % 3].apply("ws", item[1]), enumerate(deliveries))
        )
        stop.set()
        compactor.result()
    assert sum(applied) == len(records)
    stores[1].compact("ws")
    check_equal_to_the_fold(stores[2], "ws", records, order_free=True)


def test_a_day_too_big_for_one_document_is_split(
    firestore_client: firestore.Client, small: SyntheticWorkspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(usage_store, "MAX_BLOB_BYTES", 700)
    clock = Clock()
    store = FirestoreUsageStore(firestore_client, clock=clock)
    day = [r for r in small.records if r.day == "2026-11-20"]
    store.apply("ws", day[:150])
    pieces = list(firestore_client.collection("workspaces/ws/usage_daily").stream())
    ids = sorted(snap.id for snap in pieces)
    assert ids[:2] == ["2026-11-20", "2026-11-20.1"]
    assert all(len((snap.to_dict() or {})["rows"]) <= 700 for snap in pieces)
    clock.now += COMPACT_EVERY_S
    store.apply("ws", day[150:])
    check_equal_to_the_fold(store, "ws", day)
    assert set(kinds(firestore_client, "ws")[USAGE_DAILY_COLLECTION]) == {"day"}


@pytest.mark.parametrize(
    "stored",
    [
        # A rollup document of the earlier layout (one document per rollup).
        {"day": "2026-11-20", "provider": "openai", "model": "gpt-4o", "requests": 3},
        {"day": "2026-11-20", "kind": "day", "rows": b"not zlib"},
        {"day": "2026-11-20", "kind": "part", "rows": "text, not bytes"},
    ],
)
def test_a_stored_document_it_did_not_write_fails_the_read(
    firestore_client: firestore.Client, stored: dict[str, object]
) -> None:
    firestore_client.document("workspaces/ws/usage_daily/odd").set(stored)
    with pytest.raises((ValidationError, ValueError)):
        FirestoreUsageStore(firestore_client).daily("ws", *SPAN)
