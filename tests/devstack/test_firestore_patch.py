"""The pinned patch of @firestore-emulator/server (devstack/patches/).

1. A commit is atomic. Unpatched, the emulator applied a batch's writes one by one and
   stopped at the first failed precondition, leaving the earlier writes in place; Apex's
   step claims rely on all-or-nothing.
2. ``Minimum``/``Maximum`` transforms (unpatched: rejected), ``ArrayUnion`` on a missing
   field (unpatched: rejected), and several transforms in one write (unpatched, an array
   transform ended the list early).
3. Reads (``RunQuery``, ``BatchGetDocuments``) send the stored document as it is; unpatched,
   each was converted to a plain object and back twice per document, a quarter of a
   90-day rollup query's time (docs/benchmarks.md). Every value type still reads back as
   written, by each read path.
4. An ``update_time`` precondition holds only for the version it names (unpatched: ignored),
   and commit times strictly increase, so two writes never share an ``update_time``.
5. A write log (devstack/firestore_writes.py): each committed write of a project that asked
   for it, by document, with its time; nothing of a failed commit or of another project.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import pytest
from google.api_core.exceptions import AlreadyExists, FailedPrecondition, NotFound
from google.cloud import firestore
from google.cloud.firestore_v1 import ArrayUnion, FieldFilter, GeoPoint, Increment, Maximum, Minimum

from devstack.emulators import EmulatorHosts
from devstack.firestore_writes import WriteLog


def test_a_failed_create_leaves_no_write_of_its_batch(firestore_client: firestore.Client) -> None:
    col = firestore_client.collection("claims")
    col.document("taken").create({"by": "first"})
    batch = firestore_client.batch()
    batch.create(col.document("fresh"), {"by": "second"})
    batch.set(col.document("other"), {"by": "second"})
    batch.create(col.document("taken"), {"by": "second"})
    with pytest.raises(AlreadyExists):
        batch.commit()
    assert not col.document("fresh").get().exists
    assert not col.document("other").get().exists
    assert col.document("taken").get().to_dict() == {"by": "first"}


def test_a_failed_update_leaves_no_write_of_its_batch(firestore_client: firestore.Client) -> None:
    col = firestore_client.collection("claims")
    batch = firestore_client.batch()
    batch.create(col.document("a"), {"n": 1})
    batch.update(col.document("missing"), {"n": 2})
    with pytest.raises(NotFound):
        batch.commit()
    assert not col.document("a").get().exists


def test_preconditions_count_the_batchs_own_writes(firestore_client: firestore.Client) -> None:
    col = firestore_client.collection("claims")
    ok = firestore_client.batch()
    ok.create(col.document("b"), {"n": 1})
    ok.update(col.document("b"), {"n": 2})
    ok.commit()
    assert col.document("b").get().to_dict() == {"n": 2}
    twice = firestore_client.batch()
    twice.create(col.document("c"), {"n": 1})
    twice.create(col.document("c"), {"n": 2})
    with pytest.raises(AlreadyExists):
        twice.commit()
    assert not col.document("c").get().exists


def test_minimum_and_maximum(firestore_client: firestore.Client) -> None:
    ref = firestore_client.collection("stats").document("d")
    ref.set({"low": Minimum(7), "high": Maximum(7)}, merge=True)
    ref.set({"low": Minimum(9), "high": Maximum(9)}, merge=True)
    ref.set({"low": Minimum(3), "high": Maximum(5)}, merge=True)
    ref.set({"low": Minimum(4.5)}, merge=True)
    assert ref.get().to_dict() == {"low": 3, "high": 9}


def test_array_union_creates_the_field_and_later_transforms_still_apply(
    firestore_client: firestore.Client,
) -> None:
    ref = firestore_client.collection("stats").document("e")
    ref.set({"names": ArrayUnion(["b", "a", "b"]), "n": Increment(1)}, merge=True)
    ref.set({"names": ArrayUnion(["c", "a"]), "n": Increment(2), "low": Minimum(4)}, merge=True)
    assert ref.get().to_dict() == {"names": ["b", "a", "c"], "n": 3, "low": 4}


def test_every_value_type_reads_back_as_written_by_every_read_path(
    firestore_client: firestore.Client,
) -> None:
    col = firestore_client.collection("values")
    written = {
        "kind": "all",
        "text": "héllo ✓",
        "empty": "",
        "int": -(2**40),
        "zero": 0,
        "float": 1.5,
        "true": True,
        "null": None,
        "at": datetime(2026, 11, 20, 10, 30, 15, 123000, tzinfo=UTC),
        "bytes": b"\x00\xffraw",
        "where": GeoPoint(48.85, 2.35),
        "ref": col.document("other"),
        "list": [1, "two", [3], {"four": 4.0}, None],
        "map": {"nested": {"deep": [True, False]}, "n": 7},
    }
    col.document("a").set(written)
    col.document("b").set({"kind": "small", "n": 1})

    def same(read: dict[str, object] | None) -> None:
        assert read is not None
        assert {k: v for k, v in read.items() if k != "ref"} == {
            k: v for k, v in written.items() if k != "ref"
        }
        assert read["ref"].path == col.document("other").path  # type: ignore[attr-defined]

    same(col.document("a").get().to_dict())
    by_id = {s.id: s for s in firestore_client.get_all([col.document("a"), col.document("gone")])}
    same(by_id["a"].to_dict())
    assert not by_id["gone"].exists
    [queried] = col.where(filter=FieldFilter("kind", "==", "all")).stream()
    same(queried.to_dict())
    assert sorted(s.id for s in col.stream()) == ["a", "b"]


def test_an_update_time_precondition_holds_only_for_the_version_it_names(
    firestore_client: firestore.Client,
) -> None:
    ref = firestore_client.collection("versions").document("v")
    ref.set({"n": 1})
    first = ref.get().update_time
    ref.set({"n": 2})  # at once: in the same millisecond, it would share the time unpatched
    second = ref.get().update_time
    assert second > first
    with pytest.raises(FailedPrecondition):
        ref.update({"n": 3}, option=firestore_client.write_option(last_update_time=first))
    batch = firestore_client.batch()
    batch.create(firestore_client.collection("versions").document("other"), {"n": 1})
    batch.delete(ref, option=firestore_client.write_option(last_update_time=first))
    with pytest.raises(FailedPrecondition):
        batch.commit()
    assert not firestore_client.collection("versions").document("other").get().exists
    assert ref.get().to_dict() == {"n": 2}
    ref.update({"n": 3}, option=firestore_client.write_option(last_update_time=second))
    assert ref.get().to_dict() == {"n": 3}
    gone = firestore_client.collection("versions").document("gone")
    with pytest.raises(FailedPrecondition):
        gone.update({"n": 1}, option=firestore_client.write_option(last_update_time=second))


def test_commit_times_strictly_increase(firestore_client: firestore.Client) -> None:
    col = firestore_client.collection("times")
    times = []
    for n in range(50):
        col.document(f"d{n % 3}").set({"n": n})
        times.append(col.document(f"d{n % 3}").get().update_time)
    assert times == sorted(set(times))


def test_the_write_log_counts_each_committed_write_by_document(
    emulators: EmulatorHosts, firestore_client: firestore.Client, project_id: str
) -> None:
    col = firestore_client.collection("log")
    col.document("before").set({"n": 0})  # before the log started: not counted
    other = firestore.Client(project=f"demo-t{uuid.uuid4().hex[:16]}")
    with WriteLog(emulators.firestore) as client, client.logging(project_id) as log:
        started_ms = time.time() * 1000
        for _ in range(5):
            col.document("hot").set({"n": Increment(1)}, merge=True)
        batch = firestore_client.batch()
        batch.set(col.document("a"), {"n": 1})
        batch.set(col.document("hot"), {"n": 0})
        batch.delete(col.document("before"))
        batch.commit()
        failed = firestore_client.batch()
        failed.set(col.document("never"), {"n": 1})
        failed.create(col.document("a"), {"n": 2})
        with pytest.raises(AlreadyExists):
            failed.commit()
        col.document("a").collection("sub").document("x").set({"n": 1})
        other.collection("log").document("hot").set({"n": 1})  # another project
        stats = log.stats(top=2)
        ended_ms = time.time() * 1000
        under_a = log.stats(prefix="log/a")
    other.close()
    assert (stats.documents, stats.writes) == (4, 9)
    [hot, second] = stats.hottest
    assert (hot.path, hot.writes) == ("log/hot", 6)
    assert second.writes == 1
    assert started_ms - 1 <= hot.first_ms <= hot.last_ms <= ended_ms + 1000
    assert 1 <= hot.max_in_1s <= 6
    assert stats.hottest_rate(over_s=2.0) == 3.0
    assert {d.path for d in under_a.hottest} == {"log/a", "log/a/sub/x"}
    with WriteLog(emulators.firestore) as client, pytest.raises(Exception, match="Start it first"):
        client.stats(project_id)


def test_the_write_log_finds_the_busiest_second(
    emulators: EmulatorHosts, firestore_client: firestore.Client, project_id: str
) -> None:
    ref = firestore_client.collection("log").document("steady")
    with WriteLog(emulators.firestore) as client, client.logging(project_id) as log:
        for n in range(3):
            ref.set({"n": n})
        time.sleep(1.2)
        ref.set({"n": 3})
        [steady] = log.stats().hottest
    assert steady.writes == 4
    assert steady.last_ms - steady.first_ms >= 1200
    assert steady.max_in_1s == 3
