"""The live path's ordering (DESIGN §3.5): a relay that gets a run's events out of order,
twice, or not at all from Pub/Sub still gives its socket each seq once and in order,
reading the gaps from Firestore. The run is written and published here with the pipeline's
own store and bus (``FirestoreRunStore.commit``, ``Bus.publish_events``), so the test
decides which events Pub/Sub carries."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from google.cloud import firestore

from devstack.stack import RunningStack
from shared.bus import Bus
from shared.models.events import PendingEvent, RunEvent
from shared.store.documents import RunDoc
from shared.store.runs import FirestoreRunStore
from shared.store.storage import FirestoreStorage
from tests.support.relay import ChatUser, OwnRelay
from tests.support.wsclient import chat


def _thinking(i: int) -> PendingEvent:
    return PendingEvent(
        event="agent_thinking",
        agent="triage",
        data={"reasoning": f"step {i}"},
        ts=datetime.now(UTC),
    )


def _commit(
    runs: FirestoreRunStore, run_id: str, step: str, pending: list[PendingEvent]
) -> list[RunEvent]:
    run = runs.get(run_id)
    assert run is not None
    committed = runs.commit(run, step, pending, {"updated_at": datetime.now(UTC)})
    assert committed is not None
    return committed.events


def test_out_of_order_duplicated_and_missing_live_events_arrive_once_in_order(
    relay_stack: RunningStack,
    start_relay: Callable[..., OwnRelay],
    new_chat_user: Callable[[], ChatUser],
    relay_db: firestore.Client,
) -> None:
    relay = start_relay()
    user = new_chat_user()
    runs = FirestoreRunStore(relay_db)
    bus = Bus(Bus.publisher(), relay_stack.project)
    run_id = uuid.uuid4().hex
    now = datetime.now(UTC)
    work = FirestoreStorage(relay_db).begin()
    runs.create_in(
        work,
        RunDoc(
            run_id=run_id,
            thread_id=uuid.uuid4().hex,
            uid=user.uid,
            workspace_id=user.workspace,
            message_id=uuid.uuid4().hex,
            question="a run written by the test",
            status="running",
            created_at=now,
            updated_at=now,
        ),
    )
    work.commit()
    first = _commit(runs, run_id, "one", [_thinking(i) for i in range(1, 4)])  # seq 1..3

    with chat(relay.ws_url) as c:
        c.auth(user.id_token)
        c.send({"type": "run.resume", "run_id": run_id, "after_seq": 1})
        assert c.expect("run.resumed")["status"] == "running"
        assert [c.expect("event")["seq"] for _ in range(2)] == [2, 3]  # from the store
        assert relay_db.collection("runs").document(run_id).get().get("relay") == relay.relay_id

        # Seq 4..6 committed; Pub/Sub brings 6 first, then 4, and never 5.
        second = _commit(runs, run_id, "two", [_thinking(i) for i in range(4, 7)])
        bus.publish_events([second[2]], uid=user.uid, relay=relay.relay_id)
        bus.publish_events([second[0]], uid=user.uid, relay=relay.relay_id)
        assert [c.expect("event")["seq"] for _ in range(3)] == [4, 5, 6]

        # Duplicates of what was delivered change nothing; the terminal event, published
        # twice and ahead of a missing one, ends the run with every seq once.
        bus.publish_events([*first, *second], uid=user.uid, relay=relay.relay_id)
        last = _commit(
            runs,
            run_id,
            "three",
            [
                _thinking(7),
                PendingEvent(
                    event="run_completed",
                    data={"status": "completed", "duration_ms": 5},
                    ts=datetime.now(UTC),
                ),
            ],
        )
        bus.publish_events([last[1], last[1]], uid=user.uid, relay=relay.relay_id)
        tail = c.events_until_terminal(timeout=30)
        assert [e["seq"] for e in tail] == [7, 8]
        assert tail == [e.frame() for e in last]
        # Nothing more arrives for the run (the socket still answers).
        time.sleep(1)
        assert c.is_open()
