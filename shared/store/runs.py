"""The run store in Firestore (``RunStore``): ``runs/{run}``, ``runs/{run}/events/{seq}``,
``runs/{run}/steps/{step}``, the one-run-per-thread lock ``thread_locks/{thread}``, and the
thread's context ``thread_contexts/{thread}`` (DESIGN §13; read by id, no query).

A step commits everything it did in one atomic batch (a unit of work, with the thread's
writes when the step ends the run): its claim (``steps/{marker}``,
created), its events (``events/{seq}``, created, consecutive after the run's ``last_seq``)
and the run's new fields. A duplicate delivery, or a racing writer, fails on a create and
changes nothing. What must happen after the commit (publishing) is recorded on the claim
and marked done, so a delivery that died in between is finished by the redelivery.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

from google.api_core.exceptions import AlreadyExists
from google.cloud import firestore
from google.cloud.firestore_v1 import FieldFilter

from shared.errors import NotFound
from shared.models.context import ThreadContext
from shared.models.events import PendingEvent, RunEvent, seq_doc_id
from shared.models.messages import Step
from shared.store.documents import Committed, RunDoc, StepMarker
from shared.store.interfaces import CreateConflict, UnitOfWork
from shared.store.storage import FirestoreUnitOfWork, batch_of

RUNS: Final = "runs"
EVENTS: Final = "events"
STEPS: Final = "steps"
THREAD_LOCKS: Final = "thread_locks"
THREAD_CONTEXTS: Final = "thread_contexts"
# A run's events are read in pages of this many (runs have tens of events).
EVENT_PAGE: Final = 500


class FirestoreRunStore:
    def __init__(self, client: firestore.Client) -> None:
        self._db = client

    def _run(self, run_id: str) -> firestore.DocumentReference:
        return self._db.collection(RUNS).document(run_id)

    def get(self, run_id: str) -> RunDoc | None:
        snap = self._run(run_id).get()
        return RunDoc.model_validate(snap.to_dict()) if snap.exists else None

    def get_owned(self, run_id: str, uid: str, workspace_id: str) -> RunDoc:
        """The run if ``uid`` owns it in ``workspace_id``; another user's run, or one of
        another workspace, is "not found" (DESIGN §2, §9)."""
        run = self.get(run_id)
        if run is None or run.uid != uid or run.workspace_id != workspace_id:
            raise NotFound(f"no run {run_id}")
        return run

    def create_in(self, work: UnitOfWork, run: RunDoc) -> None:
        batch_of(work).create(self._run(run.run_id), run.model_dump())

    def events_after(self, run_id: str, after_seq: int) -> list[RunEvent]:
        """Every event with ``seq > after_seq``, in order (paged by a range on ``seq``)."""
        events: list[RunEvent] = []
        while True:
            query = (
                self._run(run_id)
                .collection(EVENTS)
                .where(filter=FieldFilter("seq", ">", after_seq))
                .order_by("seq")
                .limit(EVENT_PAGE)
            )
            page = [_event_of(doc.to_dict()) for doc in query.stream()]
            events.extend(page)
            if len(page) < EVENT_PAGE:
                return events
            after_seq = page[-1].seq

    def get_with_markers(
        self, run_id: str, names: Sequence[str]
    ) -> tuple[RunDoc | None, dict[str, StepMarker | None]]:
        """The run and its named step markers, in one round trip."""
        run_ref = self._run(run_id)
        marker_refs = {name: run_ref.collection(STEPS).document(name) for name in names}
        refs = {ref.path: name for name, ref in marker_refs.items()}
        run: RunDoc | None = None
        markers: dict[str, StepMarker | None] = dict.fromkeys(names)
        for snap in self._db.get_all([run_ref, *marker_refs.values()]):
            if not snap.exists:
                continue
            if snap.reference.path == run_ref.path:
                run = RunDoc.model_validate(snap.to_dict())
            else:
                markers[refs[snap.reference.path]] = _marker_of(snap.to_dict())
        return run, markers

    def marker(self, run_id: str, name: str) -> StepMarker | None:
        snap = self._run(run_id).collection(STEPS).document(name).get()
        return _marker_of(snap.to_dict()) if snap.exists else None

    def commit_in(
        self,
        work: UnitOfWork,
        run: RunDoc,
        marker_name: str,
        pending: Sequence[PendingEvent],
        run_fields: dict[str, Any],
        *,
        next_step: Step | None = None,
        terminal: bool = False,
        result: dict[str, Any] | None = None,
        handoff: str | None = None,
        context: dict[str, Any] | None = None,
    ) -> Committed:
        first = run.last_seq + 1
        events = [p.numbered(run.run_id, first + i) for i, p in enumerate(pending)]
        marker = StepMarker(
            step=marker_name,
            first_seq=first,
            last_seq=first + len(events) - 1,
            next_step=next_step,
            terminal=terminal,
            result=result,
            handoff=handoff,
            context=context,
        )
        ref = self._run(run.run_id)
        batch = batch_of(work)
        batch.create(ref.collection(STEPS).document(marker_name), _marker_doc(marker))
        for event in events:
            batch.create(ref.collection(EVENTS).document(seq_doc_id(event.seq)), _event_doc(event))
        batch.update(ref, {**run_fields, "last_seq": marker.last_seq})
        return Committed(events=events, marker=marker)

    def commit(
        self,
        run: RunDoc,
        marker_name: str,
        pending: Sequence[PendingEvent],
        run_fields: dict[str, Any],
        *,
        next_step: Step | None = None,
        terminal: bool = False,
        result: dict[str, Any] | None = None,
        handoff: str | None = None,
        context: dict[str, Any] | None = None,
    ) -> Committed | None:
        work = FirestoreUnitOfWork(self._db)
        committed = self.commit_in(
            work,
            run,
            marker_name,
            pending,
            run_fields,
            next_step=next_step,
            terminal=terminal,
            result=result,
            handoff=handoff,
            context=context,
        )
        try:
            work.commit()
        except CreateConflict:
            return None
        return committed

    def mark_published(self, run_id: str, marker_name: str) -> None:
        self._run(run_id).collection(STEPS).document(marker_name).update({"published": True})

    def update(self, run_id: str, fields: dict[str, Any]) -> None:
        self._run(run_id).update(fields)

    # --- one run per thread -------------------------------------------------------------

    def _lock(self, thread_id: str) -> firestore.DocumentReference:
        return self._db.collection(THREAD_LOCKS).document(thread_id)

    def try_lock(self, thread_id: str, run_id: str) -> bool:
        """Whether ``run_id`` holds the thread's lock (taking it if it is free)."""
        try:
            self._lock(thread_id).create({"run_id": run_id})
        except AlreadyExists:
            return self.lock_holder(thread_id) == run_id
        return True

    def lock_holder(self, thread_id: str) -> str | None:
        snap = self._lock(thread_id).get()
        return str(snap.get("run_id")) if snap.exists else None

    def release_lock(self, thread_id: str, run_id: str) -> None:
        """Free the lock if ``run_id`` holds it (only the holder ever deletes it)."""
        if self.lock_holder(thread_id) == run_id:
            self._lock(thread_id).delete()

    def oldest_queued(self, thread_id: str) -> RunDoc | None:
        query = (
            self._db.collection(RUNS)
            .where(filter=FieldFilter("thread_id", "==", thread_id))
            .where(filter=FieldFilter("status", "==", "queued"))
            .order_by("created_at")
            .limit(1)
        )
        for snap in query.stream():
            return RunDoc.model_validate(snap.to_dict())
        return None

    # --- a thread's context -------------------------------------------------------------

    def _context(self, thread_id: str) -> firestore.DocumentReference:
        return self._db.collection(THREAD_CONTEXTS).document(thread_id)

    def thread_context(self, thread_id: str) -> ThreadContext | None:
        snap = self._context(thread_id).get()
        if not snap.exists:
            return None
        return ThreadContext.model_validate_json(snap.get("context_json"))

    def save_context_in(self, work: UnitOfWork, thread_id: str, context: ThreadContext) -> None:
        # One JSON string, like a step's result: read back whole, never field by field.
        batch_of(work).set(
            self._context(thread_id),
            {"run_id": context.run_id, "context_json": context.model_dump_json()},
        )


# Kept as JSON strings: later steps read them whole, and a report stored as nested maps
# costs milliseconds to encode and decode field by field.
_JSON_FIELDS: Final = ("result", "context")
# Kept as the JSON text the step made (``handoff_json``): no second serialization here.
_TEXT_FIELDS: Final = ("handoff",)


def _marker_doc(marker: StepMarker) -> dict[str, Any]:
    doc = marker.model_dump(mode="json", exclude={*_JSON_FIELDS, *_TEXT_FIELDS})
    for name in _JSON_FIELDS:
        value = getattr(marker, name)
        if value is not None:
            doc[f"{name}_json"] = json.dumps(value, separators=(",", ":"))
    for name in _TEXT_FIELDS:
        value = getattr(marker, name)
        if value is not None:
            doc[f"{name}_json"] = value
    return doc


def _marker_of(doc: dict[str, Any] | None) -> StepMarker:
    fields = dict(doc or {})
    for name in _JSON_FIELDS:
        if f"{name}_json" in fields:
            fields[name] = json.loads(fields.pop(f"{name}_json"))
    for name in _TEXT_FIELDS:
        if f"{name}_json" in fields:
            fields[name] = fields.pop(f"{name}_json")
    return StepMarker.model_validate(fields)


def _event_doc(event: RunEvent) -> dict[str, Any]:
    # The wire frame as one JSON string (reads return exactly what was sent), and ``seq`` for
    # the range read. As nested maps, a data step's events (its report, twice) cost ~50 ms
    # to encode through the client's wrappers and as much again for the emulator to store;
    # as text, ~3 ms both (docs/benchmarks.md, golden path).
    return {"seq": event.seq, "frame": event.frame_json()}


def _event_of(doc: dict[str, Any] | None) -> RunEvent:
    return RunEvent.model_validate_json((doc or {})["frame"])
