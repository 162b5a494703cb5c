"""The Firestore stores behind their protocols (``shared.store.interfaces``), against the
emulator: each store is used here through its protocol type, so mypy checks that the
Firestore class still satisfies it; a unit of work commits every store's writes together,
and a create that conflicts leaves nothing of the unit written, raising the store's own
``CreateConflict`` (not Google's exception)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from google.api_core.exceptions import GoogleAPICallError, RetryError
from google.cloud import firestore

from devstack.procs import free_port
from shared.errors import RateLimited
from shared.models.events import PendingEvent
from shared.store.dedup import FirestoreDedupStore
from shared.store.documents import Catalogue, MessageDoc, RunDoc, ThreadDoc, dedup_key
from shared.store.interfaces import (
    CreateConflict,
    DedupStore,
    RateLimiter,
    RunStore,
    Storage,
    ThreadStore,
    UnitOfWork,
    UsageStore,
)
from shared.store.ratelimit import FirestoreRateLimiter
from shared.store.runs import FirestoreRunStore
from shared.store.storage import FirestoreStorage
from shared.store.threads import FirestoreThreadStore
from shared.store.usage import FirestoreUsageStore

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Stores:
    storage: Storage
    runs: RunStore
    threads: ThreadStore
    dedup: DedupStore
    usage: UsageStore
    limiter: RateLimiter


@pytest.fixture
def stores(firestore_client: firestore.Client) -> Stores:
    # Each field is a protocol: mypy refuses a Firestore store that no longer satisfies it.
    return Stores(
        storage=FirestoreStorage(firestore_client),
        runs=FirestoreRunStore(firestore_client),
        threads=FirestoreThreadStore(firestore_client),
        dedup=FirestoreDedupStore(firestore_client),
        usage=FirestoreUsageStore(firestore_client),
        limiter=FirestoreRateLimiter(firestore_client),
    )


def _run(run_id: str, thread_id: str) -> RunDoc:
    return RunDoc(
        run_id=run_id,
        thread_id=thread_id,
        uid="u1",
        workspace_id="w1",
        message_id=f"{run_id}-m",
        question="what did we spend?",
        status="queued",
        created_at=NOW,
        updated_at=NOW,
    )


def _submission(stores: Stores, work: UnitOfWork, run_id: str, thread_id: str, key: str) -> None:
    """What the submitter stages for a new thread's first message."""
    stores.threads.create_in(
        work,
        ThreadDoc(
            thread_id=thread_id,
            owner_uid="u1",
            workspace_id="w1",
            title="what did we spend?",
            created_at=NOW,
            updated_at=NOW,
        ),
    )
    stores.threads.add_message_in(
        work,
        thread_id,
        MessageDoc(
            message_id=f"{run_id}-m", role="user", text="what did we spend?", ts=NOW, run_id=run_id
        ),
    )
    stores.runs.create_in(work, _run(run_id, thread_id))
    stores.dedup.create_in(work, key, {"run_id": run_id}, NOW + timedelta(days=1))


def test_a_unit_of_work_commits_the_writes_of_every_store_together(stores: Stores) -> None:
    key = dedup_key("chat", "u1", uuid.uuid4().hex)
    work = stores.storage.begin()
    _submission(stores, work, "r1", "t1", key)
    # Staged, not written.
    assert stores.runs.get("r1") is None
    assert stores.threads.get("t1") is None
    work.commit()
    run = stores.runs.get("r1")
    assert run is not None
    assert (run.thread_id, run.status) == ("t1", "queued")
    thread = stores.threads.get_owned("t1", "u1", "w1")
    assert thread.title == "what did we spend?"
    assert [m.message_id for m in stores.threads.messages("t1")] == ["r1-m"]
    assert stores.dedup.get(key, NOW) == {"run_id": "r1"}


def test_a_conflicting_create_leaves_nothing_of_the_unit_written(stores: Stores) -> None:
    first = stores.storage.begin()
    stores.runs.create_in(first, _run("r1", "t0"))
    first.commit()

    key = dedup_key("chat", "u1", uuid.uuid4().hex)
    work = stores.storage.begin()
    _submission(stores, work, "r1", "t1", key)  # the run's create conflicts
    with pytest.raises(CreateConflict) as raised:
        work.commit()
    assert not isinstance(raised.value, GoogleAPICallError)
    assert stores.threads.get("t1") is None
    assert stores.threads.messages("t1") == []
    assert stores.dedup.get(key, NOW) is None
    run = stores.runs.get("r1")
    assert run is not None
    assert run.thread_id == "t0"


def _thinking(text: str) -> PendingEvent:
    return PendingEvent(event="agent_thinking", agent="data", data={"reasoning": text}, ts=NOW)


def test_a_step_that_ends_the_run_commits_its_answer_only_with_its_claim(stores: Stores) -> None:
    """The pipeline's last step: claim, events, the run's end and the answer in one unit; a
    second delivery of the step conflicts on the claim and writes no second answer."""
    setup = stores.storage.begin()
    stores.runs.create_in(setup, _run("r1", "t1"))
    setup.commit()
    run = stores.runs.get("r1")
    assert run is not None

    def last_step(answer_id: str) -> UnitOfWork:
        work = stores.storage.begin()
        stores.runs.commit_in(
            work,
            run,
            "data",
            [_thinking(answer_id)],
            {"status": "completed", "updated_at": NOW},
            terminal=True,
            result={"answer": answer_id},
        )
        stores.threads.add_message_in(
            work,
            "t1",
            MessageDoc(message_id=answer_id, role="assistant", text=answer_id, ts=NOW),
        )
        return work

    last_step("answer-1").commit()
    with pytest.raises(CreateConflict):
        last_step("answer-2").commit()
    assert [m.message_id for m in stores.threads.messages("t1")] == ["answer-1"]
    events = stores.runs.events_after("r1", 0)
    assert [(e.seq, e.data["reasoning"]) for e in events] == [(1, "answer-1")]
    marker = stores.runs.marker("r1", "data")
    assert marker is not None
    assert (marker.terminal, marker.result) == (True, {"answer": "answer-1"})
    ended = stores.runs.get("r1")
    assert ended is not None
    assert (ended.status, ended.last_seq) == ("completed", 1)
    # The same step committed on its own (``commit``) reports the conflict as None.
    assert stores.runs.commit(run, "data", [_thinking("again")], {"updated_at": NOW}) is None


def test_a_unit_of_work_commits_once(stores: Stores) -> None:
    work = stores.storage.begin()
    stores.runs.create_in(work, _run("r1", "t1"))
    work.commit()
    with pytest.raises(RuntimeError, match="commits once"):
        work.commit()


def test_a_firestore_store_refuses_a_unit_of_work_of_another_storage(stores: Stores) -> None:
    class Elsewhere:
        def commit(self) -> None:
            raise AssertionError("never reached")

    with pytest.raises(TypeError, match="Elsewhere"):
        stores.runs.create_in(Elsewhere(), _run("r1", "t1"))


def test_the_other_stores_answer_through_their_protocols(stores: Stores) -> None:
    assert stores.usage.catalogue("w-empty") == Catalogue()
    assert stores.usage.daily("w-empty", "2026-11-01", "2026-11-30") == []
    stores.limiter.hit("chat_messages", "u1", 1, NOW)
    with pytest.raises(RateLimited):
        stores.limiter.hit("chat_messages", "u1", 1, NOW)


def test_the_probe_passes_when_firestore_answers_and_raises_when_it_does_not(
    stores: Stores, project_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    stores.storage.probe(5.0)
    # Nothing listens on a port just released: every attempt is refused until the deadline.
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{free_port()}")
    unreachable = firestore.Client(project=project_id)
    started = time.monotonic()
    try:
        with pytest.raises((RetryError, GoogleAPICallError)):
            FirestoreStorage(unreachable).probe(1.0)
    finally:
        unreachable.close()
    assert time.monotonic() - started < 5.0, "the probe keeps to its timeout"


def test_a_step_s_handoff_is_kept_as_the_text_it_made(stores: Stores) -> None:
    """The data step hands the optimization step its rollups: the claim keeps the very JSON
    text the step made, and the next step's read of the claims returns it unchanged."""
    setup = stores.storage.begin()
    stores.runs.create_in(setup, _run("r-handoff", "t-handoff"))
    setup.commit()
    run = stores.runs.get("r-handoff")
    assert run is not None
    text = '{"first_day":"2026-11-01","last_day":"2026-11-14","rows":[]}'
    committed = stores.runs.commit(
        run, "data", [_thinking("measured")], {"updated_at": NOW}, next_step="optimization",
        result={"report": 1}, handoff=text,
    )  # fmt: skip
    assert committed is not None
    _, markers = stores.runs.get_with_markers("r-handoff", ("data",))
    data = markers["data"]
    assert data is not None
    assert (data.handoff, data.result) == (text, {"report": 1})
