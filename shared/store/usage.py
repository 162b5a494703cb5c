"""The usage store in Firestore (``UsageStore``): a workspace's daily rollups as day documents
and write-once parts (``shared.usage.layout``), its catalogue, and the aggregator's markers.

No document is written more than once a second on average, whatever the ingest rate
(DESIGN §10; docs/usage.md has the reasoning and the figures):

- applying a batch *creates* each record's marker and, per UTC day, one *part* in
  ``usage_daily`` and one in ``usage_daily_users`` holding that commit's rollups (and
  catalogue) as blobs, and writes the window markers of request and prompt prefix hashes
  (``shared.usage.repeats``) that moved enough: created, or updated under the version it
  read. Each commit is atomic, so a record counts once however often its batch is
  delivered; a commit that loses a race on a marker is recomputed against the markers as
  they now are;
- *compaction* folds a day's parts into its day document(s) and deletes them, in one atomic
  commit per day and collection, at most once per ``COMPACT_EVERY_S`` per workspace: the
  aggregator that claims the window's lease (``usage_compaction/lease``) compacts. Each day
  document is rewritten with its read ``update_time`` as precondition and each part deleted
  with ``exists`` as precondition, so overlapping compactions cannot lose or double a part;
- reads fold a day's documents and its parts not yet compacted, from one query (one
  snapshot): what the aggregator committed is visible at once, before any compaction. The
  catalogue is the workspace document's (compacted) fields plus the parts', read at one
  read time.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, TypeVar

from google.api_core.exceptions import AlreadyExists, FailedPrecondition, NotFound
from google.cloud import firestore
from google.cloud.firestore_v1 import ArrayUnion, FieldFilter, Increment, Maximum, Minimum
from pydantic import BaseModel, ConfigDict, Field

from shared.errors import Unavailable
from shared.models.usage import UsageRecord
from shared.store import raw_reads, raw_writes
from shared.store.documents import Catalogue
from shared.usage import parts, repeats
from shared.usage.layout import (
    APPLIED_RECORDS_COLLECTION,
    COMPACTION_COLLECTION,
    COMPACTION_LEASE,
    DAY_KIND,
    HASH_WINDOWS_COLLECTION,
    PART_KIND,
    USAGE_DAILY_COLLECTION,
    USAGE_DAILY_USERS_COLLECTION,
    day_doc_id,
    marker_ids,
    part_doc_id,
    record_marker_id,
)
from shared.usage.rollups import DailyRollup, RollupBatch, UserDailyRollup, accumulate

log = logging.getLogger(__name__)
_R = TypeVar("_R", DailyRollup, UserDailyRollup)

WORKSPACES: Final = "workspaces"
# One commit holds at most 500 writes.
MAX_WRITES: Final = 500
# Reads of the catalogue tried before giving up (see ``catalogue``), a pause apart: longer in
# all than a compaction window, so a quiet moment between two compactions is found.
CATALOGUE_ATTEMPTS: Final = 40
CATALOGUE_PAUSE_S: Final = 0.1
MAX_COMMIT_ATTEMPTS: Final = 8
# After a commit lost a race on a marker: a pause of up to this, times the attempt, drawn at
# random, so racing aggregators (a hot request or prefix hash in every batch) stop colliding.
CONFLICT_PAUSE_S: Final = 0.02
# Commits of one batch in flight at once (see ``FirestoreUsageStore.apply``).
COMMITTERS: Final = 2
# A workspace is compacted at most once per window: each day document is then written at
# most once per window (a part is written twice: created, then deleted).
COMPACT_EVERY_S: Final = 2.0
# Parts folded per day and collection by one compaction (one commit: the day's documents,
# the parts' deletions and the workspace's catalogue within MAX_WRITES).
MAX_PARTS_FOLDED: Final = 400
# Parts one compaction looks at to find the days to compact.
MAX_PARTS_FOUND: Final = 2000
# A day document's rows blob: Firestore documents hold 1 MiB.
MAX_BLOB_BYTES: Final = 900_000
# Workspaces whose last claimed window a process remembers.
KNOWN_LEASES: Final = 10_000

DAY_PATTERN: Final = r"^\d{4}-\d{2}-\d{2}$"
_COLLECTIONS: Final[dict[str, type[DailyRollup] | type[UserDailyRollup]]] = {
    USAGE_DAILY_COLLECTION: DailyRollup,
    USAGE_DAILY_USERS_COLLECTION: UserDailyRollup,
}


class StoredRollups(BaseModel):
    """A document of ``usage_daily`` / ``usage_daily_users`` (``shared.usage.layout``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    day: str = Field(pattern=DAY_PATTERN)
    kind: Literal["day", "part"]
    rows: bytes
    catalogue: bytes | None = None


class StoredWindow(BaseModel):
    """A document of ``usage_hash_windows`` (``shared.usage.repeats``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    slots: dict[str, list[int]]
    expires_at: datetime

    def decoded(self) -> dict[int, tuple[int, int]]:
        return repeats.decode(self.slots)


class StoredPartCatalogue(BaseModel):
    """What the catalogue reads of a part of ``usage_daily`` (a projection: not its rows)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    day: str = Field(pattern=DAY_PATTERN)
    kind: Literal["part"]
    catalogue: bytes


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


@dataclass(frozen=True, slots=True)
class WindowState:
    """A window marker as this process knows it: as stored (``None``: this process believes
    there is none), the stored version (the precondition of its next write), and what the
    process has noted since without writing (calls of its own committed parts: evidence of
    repeats as good as the stored times)."""

    stored: repeats.Slots | None
    version: datetime | None
    local: repeats.Slots


class KnownWindows:
    """Window markers this process has read or written, most recent first, bounded. A stale
    one costs a failed commit (its write's precondition), never a wrong count."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._states: OrderedDict[tuple[str, str], WindowState] = OrderedDict()
        self._lock = threading.Lock()

    def of(self, workspace_id: str, marker_ids: Iterable[str]) -> dict[str, WindowState]:
        with self._lock:
            found = {}
            for marker in marker_ids:
                state = self._states.get((workspace_id, marker))
                if state is not None:
                    found[marker] = state
                    self._states.move_to_end((workspace_id, marker))
        return found

    def put(self, workspace_id: str, states: dict[str, WindowState]) -> None:
        with self._lock:
            for marker, state in states.items():
                self._states[(workspace_id, marker)] = state
                self._states.move_to_end((workspace_id, marker))
            while len(self._states) > self._capacity:
                self._states.popitem(last=False)


# A few hundred bytes a marker's state.
KNOWN_WINDOWS: Final = 100_000
# How long a window marker outlives its last write or call: a day's window and three to
# spare for calls that arrive late.
WINDOW_MARKER_TTL: Final = timedelta(days=4)


@dataclass(frozen=True, slots=True)
class Compaction:
    """What one compaction did: parts folded into day documents, and the commits that lost
    to an overlapping compaction (their parts are left for the next)."""

    days: int = 0
    parts_folded: int = 0
    commits: int = 0
    conflicts: int = 0

    def __add__(self, other: Compaction) -> Compaction:
        return Compaction(
            self.days + other.days,
            self.parts_folded + other.parts_folded,
            self.commits + other.commits,
            self.conflicts + other.conflicts,
        )


class DecodedDays:
    """Decoded day documents by (name, update time), least recently used first out, bounded
    by the rollups they hold.

    A day document is immutable between compactions (a past day's for good) and read by
    every question on its workspace: decoding a 90-day read's documents costs more than the
    rest of the read. A rewritten document has a new update time, so nothing stale is kept
    past the query that finds the new version."""

    def __init__(self, capacity_rows: int) -> None:
        self._capacity = capacity_rows
        self._rows = 0
        self._docs: OrderedDict[tuple[str, int, int], list[Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, version: tuple[str, int, int]) -> list[Any] | None:
        with self._lock:
            found = self._docs.get(version)
            if found is not None:
                self._docs.move_to_end(version)
            return found

    def put(self, version: tuple[str, int, int], rollups: list[Any]) -> None:
        if len(rollups) > self._capacity:
            return
        with self._lock:
            if version in self._docs:
                return
            self._docs[version] = rollups
            self._rows += len(rollups)
            while self._rows > self._capacity:
                _, evicted = self._docs.popitem(last=False)
                self._rows -= len(evicted)


# ~2 KB a decoded daily rollup: ~100 MB at most.
DECODED_ROWS: Final = 50_000


class FirestoreUsageStore:
    def __init__(
        self,
        client: firestore.Client,
        clock: Callable[[], float] = time.time,
        decoded_rows: int = DECODED_ROWS,
    ) -> None:
        self._db = client
        self._clock = clock
        self._known = KnownMarkers(KNOWN_MARKERS)
        self._windows = KnownWindows(KNOWN_WINDOWS)
        self._decoded_days = DecodedDays(decoded_rows)
        self._leases: OrderedDict[str, int] = OrderedDict()
        self._leases_lock = threading.Lock()

    def _ws(self, workspace_id: str) -> firestore.DocumentReference:
        return self._db.collection(WORKSPACES).document(workspace_id)

    # --- reads ----------------------------------------------------------------------------

    def catalogue(self, workspace_id: str) -> Catalogue:
        """The workspace document's catalogue plus what its parts add, at one read time."""
        ws = self._ws(workspace_id)
        query = (
            ws.collection(USAGE_DAILY_COLLECTION)
            .where(filter=FieldFilter("kind", "==", PART_KIND))
            .select(["day", "kind", "catalogue"])
        )
        for _ in range(CATALOGUE_ATTEMPTS):
            found, read_time = raw_reads.documents(self._db, query)
            snap = ws.get(read_time=_datetime(read_time))
            # The local emulator ignores `read_time` on a get: a compaction that lands between
            # the two reads would count its parts twice. Compaction deletes the parts it folds,
            # so if every part read is still there after the document was read, none was
            # folded meanwhile and the two reads agree.
            again, _ = raw_reads.documents(self._db, query)
            if {doc.name for doc in found} <= {doc.name for doc in again}:
                break
            time.sleep(CATALOGUE_PAUSE_S)
        else:
            raise Unavailable("the usage catalogue changed under every read; retry")
        base = Catalogue.model_validate(snap.to_dict()) if snap.exists else Catalogue()
        records = base.records
        names: dict[str, set[str]] = {"models": set(), "features": set(), "providers": set()}
        days = [d for d in (base.first_day, base.last_day) if d is not None]
        for doc in found:
            stored = StoredPartCatalogue.model_validate(doc.fields)
            added = parts.PartCatalogue.decode(stored.catalogue)
            records += added.records
            names["models"].update(added.models)
            names["features"].update(added.features)
            names["providers"].update(added.providers)
            days.append(_day_number(stored.day))
        return Catalogue(
            records=records,
            models=_union(base.models, names["models"]),
            features=_union(base.features, names["features"]),
            providers=_union(base.providers, names["providers"]),
            first_day=min(days) if days else None,
            last_day=max(days) if days else None,
        )

    def daily(self, workspace_id: str, first_day: str, last_day: str) -> list[DailyRollup]:
        return self._rollups(DailyRollup, workspace_id, USAGE_DAILY_COLLECTION, first_day, last_day)

    def users(self, workspace_id: str, first_day: str, last_day: str) -> list[UserDailyRollup]:
        return self._rollups(
            UserDailyRollup, workspace_id, USAGE_DAILY_USERS_COLLECTION, first_day, last_day
        )

    def _rollups(
        self, cls: type[_R], workspace_id: str, collection: str, first_day: str, last_day: str
    ) -> list[_R]:
        """The day documents and parts of the days, from one query, folded per day."""
        query = (
            self._ws(workspace_id)
            .collection(collection)
            .where(filter=FieldFilter("day", ">=", first_day))
            .where(filter=FieldFilter("day", "<=", last_day))
        )
        found, _ = raw_reads.documents(self._db, query)
        by_day: dict[str, list[tuple[raw_reads.RawDocument, StoredRollups]]] = {}
        for doc in found:
            stored = StoredRollups.model_validate(doc.fields)
            by_day.setdefault(stored.day, []).append((doc, stored))
        out: list[_R] = []
        for day in sorted(by_day):
            docs = by_day[day]
            if len(docs) == 1:
                out.extend(self._decoded(cls, *docs[0]))
                continue
            totals: dict[tuple[Any, ...], dict[str, Any]] = {}
            for doc, stored in docs:
                # Copies: the fold adds into them, and decoded day documents are shared.
                parts.fold(cls, totals, (dict(vars(r)) for r in self._decoded(cls, doc, stored)))
            out.extend(parts.build(cls, totals.values()))
        return out

    def _decoded(
        self, cls: type[_R], doc: raw_reads.RawDocument, stored: StoredRollups
    ) -> list[_R]:
        """The rollups of one stored document; a day document's kept decoded by version."""
        if stored.kind == PART_KIND:
            return parts.build(cls, parts.decode(cls, stored.rows, stored.day))
        version = (doc.name, doc.update_time.seconds, doc.update_time.nanos)
        rollups = self._decoded_days.get(version)
        if rollups is None:
            rollups = parts.build(cls, parts.decode(cls, stored.rows, stored.day))
            self._decoded_days.put(version, rollups)
        return rollups

    def keep_dead_batch(self, message_id: str, content: dict[str, Any]) -> None:
        """A dead-lettered message, kept (``dead_letters/{message id}``) so it can be replayed."""
        _keep(self._db, message_id, content)

    # --- the aggregator -------------------------------------------------------------------

    def apply(self, workspace_id: str, records: Sequence[UsageRecord]) -> int:
        """Add the records to the rollups, each at most once; returns how many were new.
        Then compact the workspace if no one has in this window (``COMPACT_EVERY_S``).

        The batch is committed in chunks, ``COMMITTERS`` at a time: while one commit waits on
        Firestore the next is folded and encoded. A chunk that shares a window marker with a
        chunk in flight waits for it, so it starts from the marker that chunk wrote: repeats
        are counted as in one sequential pass, and two chunks never race on a marker.
        """
        with ThreadPoolExecutor(COMMITTERS, thread_name_prefix="usage-commit") as pool:
            futures: list[tuple[Future[int], dict[str, repeats.Window]]] = []
            for chunk in commit_chunks(records):
                windows = {m: w for r in chunk for w, m in marker_ids(r)}
                for future, used in futures:
                    if not future.done() and used.keys() & windows.keys():
                        future.result()
                futures.append(
                    (pool.submit(self._apply_chunk, workspace_id, chunk, windows), windows)
                )
            applied = sum(future.result() for future, _ in futures)
        if self._claim_window(workspace_id):
            done = self.compact(workspace_id)
            log.info(
                "usage compacted",
                extra={"fields": {"workspace_id": workspace_id, **_fields(done)}},
            )
        return applied

    def _apply_chunk(
        self,
        workspace_id: str,
        chunk: Sequence[UsageRecord],
        windows: dict[str, repeats.Window],
    ) -> int:
        """Commit the chunk optimistically, leaving out what known markers cover (one round
        trip); if a marker was created or moved meanwhile, read the markers and commit what
        is left against them."""
        ws = self._ws(workspace_id)
        record_markers = {record_marker_id(r.record_id): r.record_id for r in chunk}
        applied_ids = {record_markers[m] for m in self._known.of(workspace_id, record_markers)}
        # Window markers this process does not know are taken to be absent: created, and if
        # one exists after all, the commit fails and they are read.
        states = self._windows.of(workspace_id, windows)
        for attempt in range(MAX_COMMIT_ATTEMPTS):
            rollups = accumulate(
                chunk,
                markers={m: state.local for m, state in states.items()},
                applied_record_ids=applied_ids,
            )
            if not rollups.record_ids:
                return 0
            writes = self._window_writes(rollups, states, windows)
            versions = self._try_commit(ws, rollups, chunk, writes, states)
            if versions is not None:
                self._known.add(workspace_id, [record_marker_id(r) for r in rollups.record_ids])
                self._windows.put(
                    workspace_id,
                    {
                        m: WindowState(slots, versions[m], slots)
                        if m in writes
                        else WindowState(states[m].stored, states[m].version, slots)
                        for m, slots in rollups.markers.items()
                    },
                )
                return len(rollups.record_ids)
            # Someone else wrote one of these markers: read them as they are, and recompute.
            time.sleep(random.uniform(0, CONFLICT_PAUSE_S * (attempt + 1)))  # noqa: S311 (jitter)
            applied_ids = self._existing(ws.collection(APPLIED_RECORDS_COLLECTION), record_markers)
            self._known.add(workspace_id, [record_marker_id(r) for r in applied_ids])
            states = self._read_windows(ws, windows)
            self._windows.put(workspace_id, states)
        raise Unavailable("usage rollups: too many concurrent writers; the batch is retried")

    def _window_writes(
        self,
        rollups: RollupBatch,
        states: dict[str, WindowState],
        windows: dict[str, repeats.Window],
    ) -> dict[str, repeats.Slots]:
        """The window markers the commit writes: those that changed enough
        (``repeats.needs_write``). A time moved beyond the slack is written too, though only
        precision rests on it: put off, another aggregator would judge calls against a time
        that lags by more than the slack (tested: repeats were then missed under
        concurrent aggregators)."""
        writes: dict[str, repeats.Slots] = {}
        for marker, slots in rollups.markers.items():
            known = states.get(marker)
            stored = None if known is None else known.stored
            if repeats.needs_write(stored, slots, windows[marker]) is not None:
                writes[marker] = slots
        return writes

    def _existing(self, collection: Any, ids: dict[str, str]) -> set[str]:
        """The values of ``ids`` (marker doc id → value) whose marker document exists."""
        if not ids:
            return set()
        refs = [collection.document(doc_id) for doc_id in ids]
        return {ids[snap.id] for snap in self._db.get_all(refs) if snap.exists}

    def _read_windows(self, ws: Any, windows: dict[str, repeats.Window]) -> dict[str, WindowState]:
        """The window markers that exist, as stored."""
        if not windows:
            return {}
        collection = ws.collection(HASH_WINDOWS_COLLECTION)
        found = {}
        for snap in self._db.get_all([collection.document(m) for m in windows]):
            if snap.exists:
                slots = StoredWindow.model_validate(snap.to_dict()).decoded()
                found[snap.id] = WindowState(slots, snap.update_time, slots)
        return found

    def _try_commit(
        self,
        ws: Any,
        rollups: RollupBatch,
        chunk: Sequence[UsageRecord],
        writes: Mapping[str, repeats.Slots],
        states: dict[str, WindowState],
    ) -> dict[str, datetime] | None:
        """Commit the rollups with the markers of the records they hold and the window
        markers ``writes``; their new versions, or None if a record marker already exists or
        a window marker is not the version read (nothing was written: the commit is atomic)."""
        records = list(
            {r.record_id: r for r in chunk if r.record_id in rollups.record_ids}.values()
        )
        batch = self._db.batch()
        windows = ws.collection(HASH_WINDOWS_COLLECTION)
        # Before the records' markers and parts: their results come first, in this order.
        for marker, slots in writes.items():
            fields = _window_fields(slots)
            known = states.get(marker)
            if known is None or known.version is None:
                batch.create(windows.document(marker), fields)
            else:
                batch.update(
                    windows.document(marker),
                    fields,
                    option=self._db.write_option(last_update_time=known.version),
                )
        self.add_to_batch(batch, ws.id, rollups, records)
        try:
            results = batch.commit()
        except (AlreadyExists, FailedPrecondition, NotFound):
            return None
        return {m: result.update_time for m, result in zip(writes, results, strict=False)}

    def batch(
        self, workspace_id: str, rollups: RollupBatch, records: Sequence[UsageRecord]
    ) -> firestore.WriteBatch:
        """The one atomic write of ``rollups`` (the deltas of ``records``) into a workspace
        that has none of their window markers yet: the markers created, then the records'
        markers and parts (what ``bench.ingest`` replays; ``apply`` commits through
        ``_try_commit``, which also updates markers that exist)."""
        batch = self._db.batch()
        windows = self._ws(workspace_id).collection(HASH_WINDOWS_COLLECTION)
        for marker, slots in rollups.markers.items():
            batch.create(windows.document(marker), _window_fields(slots))
        self.add_to_batch(batch, workspace_id, rollups, records)
        return batch

    def add_to_batch(
        self,
        batch: firestore.WriteBatch,
        workspace_id: str,
        rollups: RollupBatch,
        records: Sequence[UsageRecord],
    ) -> None:
        """Add to ``batch`` the records' markers and, per day, a part in each rollup
        collection. Every write creates a document."""
        ws = self._ws(workspace_id)
        # Markers are empty documents: their existence is all they say (the id names them).
        applied = ws.collection(APPLIED_RECORDS_COLLECTION)
        raw_writes.add(
            batch,
            [
                raw_writes.create_empty(applied.document(record_marker_id(r.record_id)))
                for r in records
            ],
        )
        at_ms = int(self._clock() * 1000)
        for day, (daily, users, catalogue) in _by_day(rollups, records).items():
            part = part_doc_id(day, at_ms, uuid.uuid4().hex[:12])
            batch.create(
                ws.collection(USAGE_DAILY_COLLECTION).document(part),
                {
                    "day": day,
                    "kind": PART_KIND,
                    "rows": parts.encode(DailyRollup, parts.rows_of(daily)),
                    "catalogue": catalogue.encode(),
                },
            )
            batch.create(
                ws.collection(USAGE_DAILY_USERS_COLLECTION).document(part),
                {
                    "day": day,
                    "kind": PART_KIND,
                    "rows": parts.encode(UserDailyRollup, parts.rows_of(users)),
                },
            )

    # --- compaction -----------------------------------------------------------------------

    def _claim_window(self, workspace_id: str) -> bool:
        """Whether this call claimed the current compaction window of the workspace: its
        lease document moves to the window (a write at most once per window), guarded by the
        version it read, so of racing claimants exactly one wins."""
        window = int(self._clock() // COMPACT_EVERY_S)
        with self._leases_lock:
            if self._leases.get(workspace_id, -1) >= window:
                return False
        ref = self._ws(workspace_id).collection(COMPACTION_COLLECTION).document(COMPACTION_LEASE)
        snap = ref.get()
        held = snap.get("window") if snap.exists else None
        won = False
        if held is None or held < window:
            try:
                if snap.exists:
                    ref.update(
                        {"window": window},
                        option=self._db.write_option(last_update_time=snap.update_time),
                    )
                else:
                    ref.create({"window": window})
                won = True
            except (AlreadyExists, FailedPrecondition):
                pass  # another aggregator claimed it: it compacts this window
        with self._leases_lock:
            self._leases[workspace_id] = max(window, held or -1)
            self._leases.move_to_end(workspace_id)
            while len(self._leases) > KNOWN_LEASES:
                self._leases.popitem(last=False)
        return won

    def compact(self, workspace_id: str) -> Compaction:
        """Fold the workspace's parts into their day documents: per day and collection one
        atomic commit (at most ``MAX_PARTS_FOLDED`` parts each; the rest wait for the next).

        Safe against any other compaction running at once: each day document is written
        only if it is still the version read, and each part deleted only if it still exists,
        in the commit that adds it; a commit that loses changes nothing (``conflicts``)."""
        ws = self._ws(workspace_id)
        days: set[str] = set()
        for collection in _COLLECTIONS:
            query = (
                ws.collection(collection)
                .where(filter=FieldFilter("kind", "==", PART_KIND))
                .select(["day"])
                .limit(MAX_PARTS_FOUND)
            )
            days.update(fields["day"] for fields in raw_reads.stream(self._db, query))
        done = Compaction()
        for day in sorted(days):
            for collection in _COLLECTIONS:
                done += self._compact_day(workspace_id, collection, day)
        return done

    def _compact_day(self, workspace_id: str, collection: str, day: str) -> Compaction:
        cls = _COLLECTIONS[collection]
        ws = self._ws(workspace_id)
        coll = ws.collection(collection)
        found, _ = raw_reads.documents(self._db, coll.where(filter=FieldFilter("day", "==", day)))
        stored = [(doc, StoredRollups.model_validate(doc.fields)) for doc in found]
        day_docs = {_doc_id(doc.name): doc for doc, s in stored if s.kind == DAY_KIND}
        folded = sorted(
            ((doc, s) for doc, s in stored if s.kind == PART_KIND), key=lambda p: p[0].name
        )[:MAX_PARTS_FOLDED]
        if not folded:
            return Compaction()
        totals: dict[tuple[Any, ...], dict[str, Any]] = {}
        for _doc, s in stored:
            if s.kind == DAY_KIND:
                parts.fold(cls, totals, parts.decode(cls, s.rows, day))
        for _, s in folded:
            parts.fold(cls, totals, parts.decode(cls, s.rows, day))
        rows = sorted(totals.values(), key=lambda row: _sort_key(parts.identity(cls, row)))
        blobs = parts.split(cls, rows, MAX_BLOB_BYTES)
        if len(blobs) + len(folded) + 1 > MAX_WRITES:
            raise ValueError(f"{collection} {day}: {len(blobs)} day documents do not fit a commit")
        batch = self._db.batch()
        for piece, blob in enumerate(blobs):
            doc_id = day_doc_id(day, piece)
            fields = {"day": day, "kind": DAY_KIND, "rows": blob}
            if doc_id in day_docs:
                version = _version(day_docs.pop(doc_id))
                batch.update(
                    coll.document(doc_id),
                    fields,
                    option=self._db.write_option(last_update_time=version),
                )
            else:
                batch.create(coll.document(doc_id), fields)
        for doc_id, doc in day_docs.items():  # pieces no longer needed
            batch.delete(
                coll.document(doc_id), option=self._db.write_option(last_update_time=_version(doc))
            )
        for doc, _ in folded:
            batch.delete(
                coll.document(_doc_id(doc.name)), option=self._db.write_option(exists=True)
            )
        if cls is DailyRollup:
            batch.set(ws, _catalogue_delta(day, [s for _, s in folded]), merge=True)
        try:
            batch.commit()
        except (FailedPrecondition, NotFound, AlreadyExists):
            # Another compaction committed first: its result stands; these parts (if any
            # are left) are folded by the next one.
            return Compaction(days=1, conflicts=1)
        return Compaction(days=1, parts_folded=len(folded), commits=1)


def _fields(done: Compaction) -> dict[str, int]:
    return {
        "days": done.days,
        "parts_folded": done.parts_folded,
        "commits": done.commits,
        "conflicts": done.conflicts,
    }


def _window_fields(slots: repeats.Slots) -> dict[str, Any]:
    """A window marker as stored: its slots, and when Firestore's TTL may delete it:
    ``WINDOW_MARKER_TTL`` after it is written or after its last call, whichever is later
    (a hash seen again is written again at least once a slot), so the markers of hashes no
    longer seen do not pile up, and a backfill of old calls keeps its markers while it runs."""
    last_us = max(last for _, last in slots.values())
    last = datetime.fromtimestamp(last_us / 1_000_000, UTC)
    return {
        "slots": repeats.encode(slots),
        "expires_at": max(last, datetime.now(UTC)) + WINDOW_MARKER_TTL,
    }


def _doc_id(name: str) -> str:
    return name.rsplit("/", 1)[1]


def _version(doc: raw_reads.RawDocument) -> datetime:
    return _datetime(doc.update_time)


def _datetime(timestamp: Any) -> datetime:
    """A protobuf Timestamp as a datetime: Firestore's times are whole microseconds."""
    return datetime.fromtimestamp(timestamp.seconds, UTC) + timedelta(
        microseconds=timestamp.nanos // 1000
    )


def _sort_key(identity: tuple[Any, ...]) -> tuple[str, ...]:
    # None (no feature, no user) sorts first.
    return tuple("" if part is None else "\x00" + part for part in identity)


def _union(first: Sequence[str], more: Iterable[str]) -> list[str]:
    """``first`` in its order, then what ``more`` adds, sorted."""
    return [*first, *sorted(set(more) - set(first))]


def _by_day(
    rollups: RollupBatch, records: Sequence[UsageRecord]
) -> dict[str, tuple[list[DailyRollup], list[UserDailyRollup], parts.PartCatalogue]]:
    """Per day: the batch's daily rollups, user rollups and what it adds to the catalogue."""
    daily: dict[str, list[DailyRollup]] = {}
    users: dict[str, list[UserDailyRollup]] = {}
    for row in rollups.daily.values():
        daily.setdefault(row.day, []).append(row)
    for user in rollups.users.values():
        users.setdefault(user.day, []).append(user)
    by_day: dict[str, list[UsageRecord]] = {}
    for record in records:
        by_day.setdefault(record.day, []).append(record)
    return {
        day: (
            daily[day],
            users[day],
            parts.PartCatalogue(
                records=len(day_records),
                models=sorted({r.model for r in day_records}),
                features=sorted({r.feature for r in day_records if r.feature}),
                providers=sorted({row.provider for row in daily[day]}),
            ),
        )
        for day, day_records in by_day.items()
    }


def _catalogue_delta(day: str, folded: Sequence[StoredRollups]) -> dict[str, Any]:
    """What the folded parts add to the workspace document's catalogue, as transforms."""
    records = 0
    names: dict[str, set[str]] = {"models": set(), "features": set(), "providers": set()}
    for part in folded:
        if part.catalogue is None:
            raise ValueError(f"a usage part of {day} has no catalogue")
        added = parts.PartCatalogue.decode(part.catalogue)
        records += added.records
        names["models"].update(added.models)
        names["features"].update(added.features)
        names["providers"].update(added.providers)
    delta: dict[str, Any] = {
        "records": Increment(records),
        "first_day": Minimum(_day_number(day)),
        "last_day": Maximum(_day_number(day)),
    }
    # The client refuses an empty ArrayUnion (parts with no feature).
    delta.update({field: ArrayUnion(sorted(values)) for field, values in names.items() if values})
    return delta


def commit_chunks(records: Sequence[UsageRecord]) -> Iterator[Sequence[UsageRecord]]:
    """Consecutive runs of records whose commit fits ``MAX_WRITES``: each record's marker,
    its window markers, and two parts for each day the run touches."""
    start, writes = 0, 0
    touched: set[str] = set()  # days and window markers the run writes
    for index, record in enumerate(records):
        keys = {"d" + record.day}
        keys.update("h" + marker for _, marker in marker_ids(record))
        cost = 1 + _cost(keys - touched)
        if writes + cost > MAX_WRITES:
            yield records[start:index]
            start, writes = index, 0
            touched.clear()
            cost = 1 + _cost(keys)
        writes += cost
        touched |= keys
    if start < len(records):
        yield records[start:]


def _cost(keys: Iterable[str]) -> int:
    """Writes the new keys add: two parts for a day, one marker for a hash."""
    return sum(2 if key[0] == "d" else 1 for key in keys)


DEAD_LETTERS: Final = "dead_letters"


def _keep(db: firestore.Client, message_id: str, content: dict[str, Any]) -> None:
    # Keyed by the Pub/Sub message id: a redelivered dead letter overwrites itself.
    db.collection(DEAD_LETTERS).document(message_id).set(content)
