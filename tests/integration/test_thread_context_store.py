"""A thread's context in the run store (DESIGN §13), against the emulator: written only
with the unit of work that ends its run (all or nothing), read back whole, each thread its
own; a step's context findings kept on its claim."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from google.cloud import firestore

from shared.agents.data import driver_days
from shared.agents.triage.context import next_context
from shared.models.context import ThreadContext
from shared.models.events import PendingEvent
from shared.store.documents import RunDoc
from shared.store.interfaces import CreateConflict, RunStore, Storage
from shared.store.runs import FirestoreRunStore
from shared.store.storage import FirestoreStorage
from tests.support.findings import END, _rollups, data_report, optimization_report, triage

NOW = datetime(2026, 11, 21, tzinfo=UTC)


def _context(run_id: str) -> ThreadContext:
    question = "What did we spend last month, and where can we save?"
    data = data_report()
    rows, _ = _rollups(END, 7, 0)
    return next_context(
        None,
        run_id=run_id,
        question=question,
        triaged=triage(question),
        data=data,
        optimization=optimization_report(),
        driver_days=driver_days(rows, data.anomalies),
    )


def _run(run_id: str) -> RunDoc:
    return RunDoc(
        run_id=run_id,
        thread_id="t1",
        uid="u1",
        workspace_id="w1",
        message_id=f"{run_id}-m",
        question="q",
        status="running",
        created_at=NOW,
        updated_at=NOW,
    )


@pytest.fixture
def stores(firestore_client: firestore.Client) -> tuple[Storage, RunStore]:
    return FirestoreStorage(firestore_client), FirestoreRunStore(firestore_client)


def test_a_context_is_read_back_whole_and_per_thread(stores: tuple[Storage, RunStore]) -> None:
    storage, runs = stores
    assert runs.thread_context("t1") is None
    context = _context("r1")
    assert context.recommendations
    assert context.driver_days
    work = storage.begin()
    runs.save_context_in(work, "t1", context)
    assert runs.thread_context("t1") is None  # staged, not written
    work.commit()
    assert runs.thread_context("t1") == context
    assert runs.thread_context("t2") is None
    later = context.model_copy(update={"run_id": "r2", "question": "and last week?"})
    work = storage.begin()
    runs.save_context_in(work, "t1", later)
    work.commit()
    assert runs.thread_context("t1") == later


def test_a_context_is_written_with_its_run_or_not_at_all(
    stores: tuple[Storage, RunStore], firestore_client: firestore.Client
) -> None:
    storage, runs = stores
    firestore_client.collection("runs").document("r1").set(_run("r1").model_dump())
    event = PendingEvent(event="run_completed", data={"status": "completed"}, ts=NOW)
    first = storage.begin()
    runs.commit_in(first, _run("r1"), "triage", [event], {"status": "completed"}, terminal=True)
    runs.save_context_in(first, "t1", _context("r1"))
    first.commit()
    # A duplicate delivery commits the same step again: it conflicts, and its context (for
    # another run) is not written either.
    second = storage.begin()
    runs.commit_in(second, _run("r1"), "triage", [event], {"status": "completed"}, terminal=True)
    runs.save_context_in(second, "t1", _context("r-other"))
    with pytest.raises(CreateConflict):
        second.commit()
    stored = runs.thread_context("t1")
    assert stored is not None
    assert stored.run_id == "r1"


def test_a_step_s_context_findings_are_kept_on_its_claim(
    stores: tuple[Storage, RunStore], firestore_client: firestore.Client
) -> None:
    _, runs = stores
    firestore_client.collection("runs").document("r1").set(_run("r1").model_dump())
    found = {"driver_days": [d.model_dump(mode="json") for d in _context("r1").driver_days]}
    committed = runs.commit(
        _run("r1"),
        "data",
        [PendingEvent(event="agent_started", data={}, agent="data", ts=NOW)],
        {},
        next_step="optimization",
        context=found,
    )
    assert committed is not None
    marker = runs.marker("r1", "data")
    assert marker is not None
    assert marker.context == found
