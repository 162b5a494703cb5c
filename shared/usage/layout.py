"""Where rollups and their markers live in Firestore: collection names and document ids.

Under ``workspaces/{ws}/``:

- ``usage_daily/{id}``: the ``DailyRollup`` rows of one UTC day, as a blob (``parts``):
  a *day* document ``{day}`` (or, for a day too big for one, ``{day}``, ``{day}.1``, ...)
  holds what compaction folded; a *part* ``{day}~{ms}{random}`` holds what one commit of the
  aggregator added since, with the catalogue it adds. Fields: ``day``, ``kind`` (``day`` or
  ``part``), ``rows``, and for parts ``catalogue``;
- ``usage_daily_users/{id}``: the same for ``UserDailyRollup`` rows (no catalogue);
- ``usage_applied/{record_marker_id}``: a record was applied (create-if-absent);
- ``usage_request_hashes/{request_hash_marker_id}``: a request hash was seen;
- ``usage_compaction/lease``: the last compaction window claimed (``window``).

A day's rollups are the fold of its day documents and its parts. ``rollup_doc_id`` and
``user_rollup_doc_id`` name a rollup (its identity, as ``DailyRollup.doc_id``), and scope the
request-hash markers; they are no longer document ids of their own. Each part of an id is
percent-encoded so ids are unambiguous; an id too long for Firestore is replaced by a hash.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Final
from urllib.parse import quote

from shared import pricing
from shared.models.usage import UsageRecord

USAGE_DAILY_COLLECTION: Final = "usage_daily"
USAGE_DAILY_USERS_COLLECTION: Final = "usage_daily_users"
APPLIED_RECORDS_COLLECTION: Final = "usage_applied"
REQUEST_HASHES_COLLECTION: Final = "usage_request_hashes"
COMPACTION_COLLECTION: Final = "usage_compaction"
COMPACTION_LEASE: Final = "lease"
# ``kind`` of a stored rollup document.
DAY_KIND: Final = "day"
PART_KIND: Final = "part"

# Characters kept as they are in document ids; everything else (notably "_", the separator,
# "~", the hashed-id mark, "/", which Firestore forbids, and "%") is percent-encoded, so ids
# are unambiguous.
_ID_SAFE: Final = "-.:"
# Firestore allows 1,500 bytes; a longer id (long non-ASCII names) is replaced by a hash.
MAX_DOC_ID_BYTES: Final = 1400


@lru_cache(maxsize=65536)
def _id_part(value: str | None) -> str:
    # An absent feature or user is the empty part: real names are never empty.
    # quote() never encodes "_" or "~", but here they are the separator and the hash mark.
    if value is None:
        return ""
    return quote(value, safe=_ID_SAFE).replace("_", "%5F").replace("~", "%7E")


def _bounded(prefix: str, doc_id: str) -> str:
    """``doc_id``, or ``{prefix}_~{sha256 of it}`` when it is too long for Firestore."""
    if len(doc_id) <= MAX_DOC_ID_BYTES:  # ids are ASCII: characters are bytes
        return doc_id
    return f"{prefix}_~{hashlib.sha256(doc_id.encode()).hexdigest()}"


def rollup_doc_id(day: str, provider: str, model: str, feature: str | None) -> str:
    """``{day}_{provider}_{model}_{feature}``, each part percent-encoded (see ``_ID_SAFE``)."""
    parts = (day, _id_part(provider), _id_part(model), _id_part(feature))
    return _bounded(day, "_".join(parts))


def user_rollup_doc_id(day: str, user: str | None) -> str:
    """``{day}_{user}``, the user percent-encoded; ``{day}_`` for calls with no end user."""
    return _bounded(day, f"{day}_{_id_part(user)}")


def record_marker_id(record_id: str) -> str:
    """Document id of the "record applied" marker (record ids may hold ``.`` or ``__``)."""
    return _bounded("r", "r_" + _id_part(record_id))


def request_hash_marker_id(record: UsageRecord) -> str | None:
    """Document id of the "hash seen" marker for the record's repeat scope; None if unhashed."""
    if record.request_hash is None:
        return None
    return hash_marker_id(rollup_key(record), record.request_hash)


def hash_marker_id(rollup_id: str, request_hash: str) -> str:
    return _bounded(rollup_id[:10], f"{rollup_id}_{_id_part(request_hash)}")


def rollup_key(record: UsageRecord) -> str:
    """The ``usage_daily`` document id the record is added to."""
    provider = pricing.resolve_provider(record.provider, record.model)
    return rollup_doc_id(record.day, provider, record.model, record.feature)


def day_doc_id(day: str, piece: int) -> str:
    """The compacted rollups of ``day``: ``{day}``, then ``{day}.1``, ``{day}.2`` ... when
    one document cannot hold them all."""
    return day if piece == 0 else f"{day}.{piece}"


def part_doc_id(day: str, at_ms: int, nonce: str) -> str:
    """A part of ``day``: ``{day}~{ms, 13 digits}{nonce}``, oldest first in id order."""
    return f"{day}~{at_ms:013d}{nonce}"
