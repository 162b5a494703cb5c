"""Rollups as stored blobs: a set of one day's rollups encoded into one document field, and
the catalogue a part adds (the layout: ``shared.usage.layout``; the store:
``shared.store.usage``).

A day's rollups are kept as one compressed JSON text (zlib) per document rather than one
document per rollup: a document then has a handful of fields (and index entries) whatever
the number of models, features and users, and a day reads as one or a few documents.

Blob: ``{"v": 2, "fields": [name, ...], "rows": [[value, ...], ...]}``: every rollup field
but ``day`` (the document's own field), in the model's order, checked once per blob on
reading; a row is a list of values (sketches and the hour histogram as maps). Lists parse
faster than a map per row, and zlib takes the zeros out again. Rows are folded with the
rollups' own ``merge`` rule (``_add_into``), so a day document plus its parts reads exactly
as one fold of all their records.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from shared.usage.rollups import DailyRollup, UserDailyRollup, _add_into, _Rollup

# 2: DDSketch bins, hour histogram, batch and prefix counters, user rows per model.
CODEC_VERSION: Final = 2
# zlib level 6: ~10x on rollup JSON; decompressing costs a few percent of parsing.
_LEVEL: Final = 6
_R = TypeVar("_R", DailyRollup, UserDailyRollup)
RollupClass = type[DailyRollup] | type[UserDailyRollup]


class BlobError(ValueError):
    """A stored blob that is not what this module writes."""


# The stored fields of each rollup class, in the models' order: ``day`` is the document's.
_FIELDS: Final = {
    cls: tuple(name for name in cls.model_fields if name != "day")
    for cls in (DailyRollup, UserDailyRollup)
}
# What identifies a row within its day.
_KEYS: Final = {
    DailyRollup: ("provider", "model", "feature"),
    UserDailyRollup: ("user", "provider", "model"),
}


def identity(cls: RollupClass, row: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(row[name] for name in _KEYS[cls])


def encode(cls: RollupClass, rows: Iterable[Mapping[str, Any]]) -> bytes:
    """One day's rows (every rollup field; ``day`` is left out) as a blob."""
    fields = _FIELDS[cls]
    text = json.dumps(
        {"v": CODEC_VERSION, "fields": fields, "rows": [[row[f] for f in fields] for row in rows]},
        separators=(",", ":"),
    )
    return zlib.compress(text.encode(), _LEVEL)


def decode(cls: RollupClass, blob: bytes, day: str) -> list[dict[str, Any]]:
    """The rows of a blob of ``day``, every field present: fresh dicts the caller owns."""
    try:
        data = json.loads(zlib.decompress(blob))
    except (zlib.error, ValueError) as e:
        raise BlobError(f"not a rollup blob: {e}") from e
    if not isinstance(data, dict) or data.get("v") != CODEC_VERSION:
        version = data.get("v") if isinstance(data, dict) else "?"
        raise BlobError(
            f"rollup blob version {version}, expected {CODEC_VERSION} (rollups written before "
            "the sketches: docs/usage.md, 'Rollups written before issue 14')"
        )
    fields = _FIELDS[cls]
    if tuple(data["fields"]) != fields:
        raise BlobError(f"rollup blob fields {data['fields']}, expected {list(fields)}")
    names = (*fields, "day")
    try:
        return [dict(zip(names, (*row, day), strict=True)) for row in data["rows"]]
    except ValueError as e:
        raise BlobError(f"a rollup row of the wrong length: {e}") from e


def fold(
    cls: RollupClass,
    totals: dict[tuple[Any, ...], dict[str, Any]],
    rows: Iterable[dict[str, Any]],
) -> None:
    """Add ``rows`` (decoded, owned by the caller) into ``totals`` by identity, in place."""
    for row in rows:
        key = identity(cls, row)
        total = totals.get(key)
        if total is None:
            totals[key] = row
        else:
            _add_into(cls, total, row)


def build(cls: type[_R], rows: Iterable[dict[str, Any]]) -> list[_R]:
    """Rollup models of decoded (and folded) rows: the rows become the models' fields."""
    return [cls.trusted(row) for row in rows]


def rows_of(rollups: Iterable[_Rollup]) -> list[dict[str, Any]]:
    """Rollup models as rows to encode."""
    return [dict(vars(r)) for r in rollups]


def split(cls: RollupClass, rows: Sequence[Mapping[str, Any]], max_bytes: int) -> list[bytes]:
    """``rows`` as one blob, or as several of at most ``max_bytes`` each (rows in order)."""
    pieces = 1
    while True:
        size = -(-len(rows) // pieces)
        blobs = [encode(cls, rows[i : i + size]) for i in range(0, len(rows), size)] or [
            encode(cls, [])
        ]
        if max(len(b) for b in blobs) <= max_bytes:
            return blobs
        if size == 1:
            raise BlobError(f"one rollup row encodes to more than {max_bytes} bytes")
        pieces *= 2


class PartCatalogue(BaseModel):
    """What a part adds to its workspace's catalogue (its day is the part's own)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    records: int = Field(ge=0)
    models: list[str]
    features: list[str]
    providers: list[str]

    def encode(self) -> bytes:
        return zlib.compress(self.model_dump_json().encode(), _LEVEL)

    @classmethod
    def decode(cls, blob: bytes) -> PartCatalogue:
        try:
            text = zlib.decompress(blob)
        except zlib.error as e:
            raise BlobError(f"not a catalogue blob: {e}") from e
        return cls.model_validate_json(text)
