"""Where rollups and their markers live in Firestore: collection names and document ids.

Under ``workspaces/{ws}/``:

- ``usage_daily/{id}``: the ``DailyRollup`` rows of one UTC day, as a blob (``parts``):
  a *day* document ``{day}`` (or, for a day too big for one, ``{day}``, ``{day}.1``, ...)
  holds what compaction folded; a *part* ``{day}~{ms}{random}`` holds what one commit of the
  aggregator added since, with the catalogue it adds. Fields: ``day``, ``kind`` (``day`` or
  ``part``), ``rows``, and for parts ``catalogue``;
- ``usage_daily_users/{id}``: the same for ``UserDailyRollup`` rows (no catalogue);
- ``usage_applied/{record_marker_id}``: a record was applied (create-if-absent);
- ``usage_hash_windows/{window_marker_id}``: when a request hash or a prompt prefix hash
  was seen, per (provider, model, feature) (``shared.usage.repeats``);
- ``usage_compaction/lease``: the last compaction window claimed (``window``).

A day's rollups are the fold of its day documents and its parts. ``rollup_doc_id`` and
``user_rollup_doc_id`` name a rollup (its identity, as ``DailyRollup.doc_id``); they are no
longer document ids of their own. Each part of an id is
percent-encoded so ids are unambiguous; an id too long for Firestore is replaced by a hash.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Final
from urllib.parse import quote

from shared import pricing
from shared.models.usage import UsageRecord
from shared.usage.repeats import PREFIX, REQUEST, Window

USAGE_DAILY_COLLECTION: Final = "usage_daily"
USAGE_DAILY_USERS_COLLECTION: Final = "usage_daily_users"
APPLIED_RECORDS_COLLECTION: Final = "usage_applied"
HASH_WINDOWS_COLLECTION: Final = "usage_hash_windows"
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


def user_rollup_doc_id(day: str, user: str | None, provider: str, model: str) -> str:
    """``{day}_{user}_{provider}_{model}``, each part percent-encoded; the user part is empty
    for calls with no end user."""
    parts = (day, _id_part(user), _id_part(provider), _id_part(model))
    return _bounded(day, "_".join(parts))


def record_marker_id(record_id: str) -> str:
    """Document id of the "record applied" marker (record ids may hold ``.`` or ``__``)."""
    return _bounded("r", "r_" + _id_part(record_id))


def window_marker_id(
    window: Window, provider: str, model: str, feature: str | None, value: str
) -> str:
    """``{window}_{provider}_{model}_{feature}_{hash}``: where the times a hash was seen on
    a (provider, model, feature) are kept (``shared.usage.repeats``)."""
    parts = (window.name, _id_part(provider), _id_part(model), _id_part(feature), _id_part(value))
    return _bounded(window.name, "_".join(parts))


def marker_ids(record: UsageRecord) -> list[tuple[Window, str]]:
    """The window markers a record reads and notes: its request hash's and its prompt
    prefix hash's (none when it carries neither)."""
    provider = pricing.resolve_provider(record.provider, record.model)
    out = []
    if record.request_hash is not None:
        out.append(
            (
                REQUEST,
                window_marker_id(
                    REQUEST, provider, record.model, record.feature, record.request_hash
                ),
            )
        )
    if record.prompt_prefix_hash is not None:
        out.append(
            (
                PREFIX,
                window_marker_id(
                    PREFIX, provider, record.model, record.feature, record.prompt_prefix_hash
                ),
            )
        )
    return out


def rollup_key(record: UsageRecord) -> str:
    """The name of the ``DailyRollup`` the record is added to."""
    provider = pricing.resolve_provider(record.provider, record.model)
    return rollup_doc_id(record.day, provider, record.model, record.feature)


def day_doc_id(day: str, piece: int) -> str:
    """The compacted rollups of ``day``: ``{day}``, then ``{day}.1``, ``{day}.2`` ... when
    one document cannot hold them all."""
    return day if piece == 0 else f"{day}.{piece}"


def part_doc_id(day: str, at_ms: int, nonce: str) -> str:
    """A part of ``day``: ``{day}~{ms, 13 digits}{nonce}``, oldest first in id order."""
    return f"{day}~{at_ms:013d}{nonce}"
