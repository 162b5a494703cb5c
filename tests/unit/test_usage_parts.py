"""Rollups as stored blobs (shared/usage/parts.py): a blob reads back as the rollups it was
made of, folded blobs equal one fold of all their records, a day too big for one blob is
split without losing a row, and anything this module did not write is refused."""

from __future__ import annotations

import json
import zlib
from datetime import date
from typing import Any

import pytest

from devstack.synthetic import generate
from shared.usage import parts
from shared.usage.parts import BlobError, PartCatalogue
from shared.usage.rollups import DailyRollup, UserDailyRollup, accumulate

DAY = "2026-11-20"


@pytest.fixture(scope="module")
def day_records() -> list[Any]:
    records = [r for r in generate(end=date(2026, 11, 20), days=8).records if r.day == DAY]
    # Rollups without a feature or an end user too.
    return [
        *records,
        records[0].model_copy(update={"record_id": "x1", "feature": None, "user": None}),
    ]


def test_a_blob_reads_back_as_its_rollups(day_records: list[Any]) -> None:
    batch = accumulate(day_records)
    daily = parts.encode(DailyRollup, parts.rows_of(batch.daily.values()))
    read = parts.build(DailyRollup, parts.decode(DailyRollup, daily, DAY))
    assert {r.doc_id: r for r in read} == batch.daily
    assert any(r.feature is None for r in read)
    users = parts.encode(UserDailyRollup, parts.rows_of(batch.users.values()))
    read_users = parts.build(UserDailyRollup, parts.decode(UserDailyRollup, users, DAY))
    assert {r.doc_id: r for r in read_users} == batch.users
    assert any(r.user is None for r in read_users)


def test_folded_blobs_equal_one_fold_of_all_records(day_records: list[Any]) -> None:
    thirds = [day_records[i::3] for i in range(3)]
    totals: dict[tuple[Any, ...], dict[str, Any]] = {}
    for third in thirds:
        blob = parts.encode(DailyRollup, parts.rows_of(accumulate(third).daily.values()))
        parts.fold(DailyRollup, totals, parts.decode(DailyRollup, blob, DAY))
    folded = {r.doc_id: r for r in parts.build(DailyRollup, totals.values())}
    whole = accumulate(day_records).daily
    # Repeats depend on what was seen before: the thirds are accumulated apart (no markers
    # passed on), the whole in one pass.
    order_free = {"repeat_input_tokens", "repeat_cached_input_tokens", "repeat_output_tokens"}
    order_free |= {"repeat_cost_nanousd", "repeat_requests"}
    order_free |= {n for n in DailyRollup.model_fields if n.startswith("prefix_repeat_")}

    def comparable(r: DailyRollup) -> dict[str, Any]:
        return {k: v for k, v in r.model_dump().items() if k not in order_free}

    assert {k: comparable(r) for k, r in folded.items()} == {
        k: comparable(r) for k, r in whole.items()
    }


def test_a_day_too_big_for_one_blob_is_split_in_order(day_records: list[Any]) -> None:
    rows = parts.rows_of(accumulate(day_records).users.values())
    whole = parts.encode(UserDailyRollup, rows)
    blobs = parts.split(UserDailyRollup, rows, len(whole) // 3)
    assert len(blobs) > 2
    assert all(len(b) <= len(whole) // 3 for b in blobs)
    read = [row for b in blobs for row in parts.decode(UserDailyRollup, b, DAY)]
    assert [r["user"] for r in read] == [r["user"] for r in rows]
    assert parts.split(UserDailyRollup, rows, len(whole)) == [whole]
    with pytest.raises(BlobError, match="one rollup row"):
        parts.split(UserDailyRollup, rows, 50)


def blob(content: object) -> bytes:
    return zlib.compress(json.dumps(content).encode())


@pytest.mark.parametrize(
    ("stored", "error"),
    [
        (b"not zlib", "not a rollup blob"),
        (zlib.compress(b"[1, 2"), "not a rollup blob"),
        (blob({"v": 3, "fields": [], "rows": []}), "version 3"),
        (blob([1, 2]), "version ?"),
        # Written before the sketches and per-model user rows: named, with where to read on.
        (blob({"v": 1, "fields": ["user", "requests"], "rows": []}), "version 1.*docs/usage.md"),
        (blob({"v": 2, "fields": ["user", "requests"], "rows": []}), "expected"),
    ],
)
def test_a_blob_it_did_not_write_is_refused(stored: bytes, error: str) -> None:
    with pytest.raises(BlobError, match=error):
        parts.decode(UserDailyRollup, stored, DAY)


def test_a_row_of_the_wrong_length_is_refused(day_records: list[Any]) -> None:
    good = json.loads(
        zlib.decompress(
            parts.encode(UserDailyRollup, parts.rows_of(accumulate(day_records).users.values()))
        )
    )
    good["rows"][0] = good["rows"][0][:-1]
    with pytest.raises(BlobError, match="wrong length"):
        parts.decode(UserDailyRollup, blob(good), DAY)


def test_a_part_s_catalogue_round_trips() -> None:
    catalogue = PartCatalogue(
        records=3, models=["gpt-4o"], features=["a", "b"], providers=["openai"]
    )
    assert PartCatalogue.decode(catalogue.encode()) == catalogue
    with pytest.raises(BlobError):
        PartCatalogue.decode(b"nope")
