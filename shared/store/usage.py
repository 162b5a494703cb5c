"""The usage store in Firestore (``UsageStore``): ``workspaces/{ws}`` (what the workspace
has sent), ``workspaces/{ws}/usage_daily``, ``usage_daily_users``, and the aggregator's
markers.

Applying a batch is idempotent (the protocol is in ``shared.usage.rollups``): each chunk's
record markers are created in the same atomic commit as its increments, so a record counts
once however often its batch is delivered; a commit that loses a race on a marker is
recomputed against the markers that now exist.

Histogram buckets are stored as top-level fields (``latency_hist__le_25``), not as map
entries: an increment of a nested path is what neither this code nor the local emulator
needs, and flat fields keep every write a plain top-level transform.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

from google.api_core.exceptions import AlreadyExists
from google.cloud import firestore
from google.cloud.firestore_v1 import ArrayUnion, FieldFilter, Increment, Maximum, Minimum

from shared.errors import Unavailable
from shared.models.usage import UsageRecord
from shared.store import raw_reads, raw_writes
from shared.store.documents import Catalogue
from shared.usage.layout import (
    APPLIED_RECORDS_COLLECTION,
    REQUEST_HASHES_COLLECTION,
    USAGE_DAILY_COLLECTION,
    USAGE_DAILY_USERS_COLLECTION,
    record_marker_id,
    request_hash_marker_id,
    rollup_key,
    user_rollup_doc_id,
)
from shared.usage.rollups import DailyRollup, RollupBatch, UserDailyRollup, accumulate

WORKSPACES: Final = "workspaces"
# One commit holds at most 500 writes.
MAX_WRITES: Final = 500
MAX_COMMIT_ATTEMPTS: Final = 5
# Commits of one batch in flight at once (see ``FirestoreUsageStore.apply``).
COMMITTERS: Final = 2


def _day_number(day: str) -> int:
    return int(day.replace("-", ""))


class KnownMarkers:
    """Markers this process has seen exist (created or read), most recent first, bounded.

    Markers are never deleted, so a known one needs no read and no failed commit to prove
    it: records it covers are skipped and hashes it covers are repeats. Without it, every
    chunk holding a repeat of a request hashed in an earlier chunk would fail its commit."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._lock = threading.Lock()

    def of(self, workspace_id: str, marker_ids: Iterable[str]) -> set[str]:
        with self._lock:
            found = {m for m in marker_ids if (workspace_id, m) in self._seen}
            for marker in found:
                self._seen.move_to_end((workspace_id, marker))
        return found

    def add(self, workspace_id: str, marker_ids: Iterable[str]) -> None:
        with self._lock:
            for marker in marker_ids:
                self._seen[(workspace_id, marker)] = None
                self._seen.move_to_end((workspace_id, marker))
            while len(self._seen) > self._capacity:
                self._seen.popitem(last=False)


# ~100 bytes a marker id: a few tens of MiB at most.
KNOWN_MARKERS: Final = 200_000


class FirestoreUsageStore:
    def __init__(self, client: firestore.Client) -> None:
        self._db = client
        self._known = KnownMarkers(KNOWN_MARKERS)

    def _ws(self, workspace_id: str) -> firestore.DocumentReference:
        return self._db.collection(WORKSPACES).document(workspace_id)

    def catalogue(self, workspace_id: str) -> Catalogue:
        snap = self._ws(workspace_id).get()
        return Catalogue.model_validate(snap.to_dict()) if snap.exists else Catalogue()

    def daily(self, workspace_id: str, first_day: str, last_day: str) -> list[DailyRollup]:
        return [
            DailyRollup.model_validate(_unflatten(doc))
            for doc in self._days(workspace_id, USAGE_DAILY_COLLECTION, first_day, last_day)
        ]

    def users(self, workspace_id: str, first_day: str, last_day: str) -> list[UserDailyRollup]:
        return [
            UserDailyRollup.model_validate(doc)
            for doc in self._days(workspace_id, USAGE_DAILY_USERS_COLLECTION, first_day, last_day)
        ]

    def _days(
        self, workspace_id: str, collection: str, first_day: str, last_day: str
    ) -> list[dict[str, Any]]:
        query = (
            self._ws(workspace_id)
            .collection(collection)
            .where(filter=FieldFilter("day", ">=", first_day))
            .where(filter=FieldFilter("day", "<=", last_day))
        )
        return list(raw_reads.stream(self._db, query))

    def keep_dead_batch(self, message_id: str, content: dict[str, Any]) -> None:
        """A dead-lettered message, kept (``dead_letters/{message id}``) so it can be replayed."""
        _keep(self._db, message_id, content)

    def apply(self, workspace_id: str, records: Sequence[UsageRecord]) -> int:
        """Add the records to the rollups, each at most once; returns how many were new.

        The batch is committed in chunks, ``COMMITTERS`` at a time: while one commit waits on
        Firestore the next is folded and encoded. A chunk treats the request hashes of the
        chunks before it as seen (their markers exist once those commit), so repeats are
        counted as in one sequential pass and concurrent chunks never race on a hash marker.
        """
        earlier: set[str] = set()
        with ThreadPoolExecutor(COMMITTERS, thread_name_prefix="usage-commit") as pool:
            futures = []
            for chunk in commit_chunks(records):
                hashes = {m: m for r in chunk if (m := request_hash_marker_id(r)) is not None}
                futures.append(
                    pool.submit(self._apply_chunk, workspace_id, chunk, hashes, frozenset(earlier))
                )
                earlier.update(hashes)
            return sum(future.result() for future in futures)

    def _apply_chunk(
        self,
        workspace_id: str,
        chunk: Sequence[UsageRecord],
        hashes: dict[str, str],
        earlier: frozenset[str],
    ) -> int:
        """Commit the chunk optimistically, leaving out what known markers cover (one round
        trip); if a marker already exists, read the markers and commit what is left."""
        ws = self._ws(workspace_id)
        record_markers = {record_marker_id(r.record_id): r.record_id for r in chunk}
        applied_ids = {record_markers[m] for m in self._known.of(workspace_id, record_markers)}
        seen = self._known.of(workspace_id, hashes)
        # A redelivery, or records sent before: apply only what no marker covers yet.
        for _ in range(MAX_COMMIT_ATTEMPTS):
            rollups = accumulate(
                chunk, seen_request_hashes=seen | earlier, applied_record_ids=applied_ids
            )
            if not rollups.record_ids:
                return 0
            if self._try_commit(ws, rollups, chunk):
                self._known.add(
                    workspace_id,
                    [record_marker_id(r) for r in rollups.record_ids]
                    + [*rollups.new_request_hashes],
                )
                return len(rollups.record_ids)
            # Someone else created one of these markers: read which exist, and recompute.
            applied_ids = self._existing(ws.collection(APPLIED_RECORDS_COLLECTION), record_markers)
            seen = self._existing(ws.collection(REQUEST_HASHES_COLLECTION), hashes)
            self._known.add(workspace_id, [record_marker_id(r) for r in applied_ids] + [*seen])
        raise Unavailable("usage rollups: too many concurrent writers; the batch is retried")

    def _existing(self, collection: Any, ids: dict[str, str]) -> set[str]:
        """The values of ``ids`` (marker doc id → value) whose marker document exists."""
        if not ids:
            return set()
        refs = [collection.document(doc_id) for doc_id in ids]
        return {ids[snap.id] for snap in self._db.get_all(refs) if snap.exists}

    def _try_commit(self, ws: Any, rollups: RollupBatch, chunk: Sequence[UsageRecord]) -> bool:
        """Commit the rollups with the markers of the records they hold; False if a marker
        already exists (nothing was written: the commit is atomic)."""
        records = list(
            {r.record_id: r for r in chunk if r.record_id in rollups.record_ids}.values()
        )
        try:
            self._commit(ws, rollups, records)
        except AlreadyExists:
            return False
        return True

    def _commit(self, ws: Any, rollups: RollupBatch, records: Sequence[UsageRecord]) -> None:
        self.batch(ws.id, rollups, records).commit()

    def batch(
        self, workspace_id: str, rollups: RollupBatch, records: Sequence[UsageRecord]
    ) -> firestore.WriteBatch:
        """The one atomic write that applies ``rollups`` (the deltas of ``records``): the
        records' markers, the new request-hash markers, every rollup and the workspace."""
        ws = self._ws(workspace_id)
        batch = self._db.batch()
        # Markers are empty documents: their existence is all they say (the id names them).
        applied = ws.collection(APPLIED_RECORDS_COLLECTION)
        hashes = ws.collection(REQUEST_HASHES_COLLECTION)
        daily, users = (
            ws.collection(USAGE_DAILY_COLLECTION),
            ws.collection(USAGE_DAILY_USERS_COLLECTION),
        )
        raw_writes.add(
            batch,
            [
                *(
                    raw_writes.create_empty(applied.document(record_marker_id(r.record_id)))
                    for r in records
                ),
                *(raw_writes.create_empty(hashes.document(m)) for m in rollups.new_request_hashes),
                *(
                    raw_writes.merge_counters(
                        daily.document(doc_id),
                        row.identity(),
                        _flat(row.firestore_increments()),
                        row.firestore_minimums(),
                    )
                    for doc_id, row in rollups.daily.items()
                ),
                *(
                    raw_writes.merge_counters(
                        users.document(doc_id),
                        user.identity(),
                        _flat(user.firestore_increments()),
                        {},
                    )
                    for doc_id, user in rollups.users.items()
                ),
            ],
        )
        days = [_day_number(r.day) for r in records]
        catalogue: dict[str, Any] = {
            "records": Increment(len(records)),
            "models": ArrayUnion(sorted({r.model for r in records})),
            "providers": ArrayUnion(sorted({d.provider for d in rollups.daily.values()})),
            "first_day": Minimum(min(days)),
            "last_day": Maximum(max(days)),
        }
        features = sorted({r.feature for r in records if r.feature})
        if features:  # the client refuses an empty ArrayUnion (a batch with no feature)
            catalogue["features"] = ArrayUnion(features)
        batch.set(ws, catalogue, merge=True)
        return batch


def commit_chunks(records: Sequence[UsageRecord]) -> Iterator[Sequence[UsageRecord]]:
    """Consecutive runs of records whose commit fits ``MAX_WRITES``: each record's marker
    and request-hash marker, each rollup document the run touches, and the workspace.

    Filling commits (rather than a fixed number of records) spreads each rollup document's
    write over as many records as one commit can hold."""
    start, writes = 0, 1
    touched: set[str] = set()  # rollup documents and hash markers the run writes
    for index, record in enumerate(records):
        keys = {rollup_key(record), "u" + user_rollup_doc_id(record.day, record.user)}
        marker = request_hash_marker_id(record)
        if marker is not None:
            keys.add("h" + marker)
        cost = 1 + len(keys - touched)
        if writes + cost > MAX_WRITES:
            yield records[start:index]
            start, writes = index, 1
            touched.clear()
            cost = 1 + len(keys)
        writes += cost
        touched |= keys
    if start < len(records):
        yield records[start:]


def _flat(increments: dict[str, int]) -> dict[str, int]:
    """Histogram buckets as top-level fields (see the module doc): ``latency_hist.le_25`` →
    ``latency_hist__le_25``."""
    return {path.replace(".", _BUCKET_SEP): amount for path, amount in increments.items()}


_BUCKET_SEP: Final = "__"


def _unflatten(doc: dict[str, Any]) -> dict[str, Any]:
    """``latency_hist__le_25: n`` → ``latency_hist: {"le_25": n}``."""
    out: dict[str, Any] = {}
    for name, value in doc.items():
        head, sep, bucket = name.partition(_BUCKET_SEP)
        if sep:
            out.setdefault(head, {})[bucket] = value
        else:
            out[name] = value
    return out


DEAD_LETTERS: Final = "dead_letters"


def _keep(db: firestore.Client, message_id: str, content: dict[str, Any]) -> None:
    # Keyed by the Pub/Sub message id: a redelivered dead letter overwrites itself.
    db.collection(DEAD_LETTERS).document(message_id).set(content)
