"""Accepting a chat message (relay ``chat.send``, ``agents_execute``) and cancelling a run.

The user message, the run (``queued``), the thread (when new) and the idempotency key are
committed in one unit of work (all or nothing) *before* ``StepRequested(triage)`` is
published and before the client hears "accepted" (DESIGN §3.3, §7). A retried submission
with the same client key returns the first one's ids and re-publishes its start
(idempotent: the step is claimed).
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict

from shared.agents.pipeline import FIRST_STEP, Pipeline
from shared.agents.trace import Clock, utc_now
from shared.auth import Principal
from shared.bus import Bus
from shared.errors import ThreadBusy
from shared.models.messages import STEP_TOPICS, StepRequested
from shared.store.documents import MessageDoc, RunDoc, ThreadDoc, dedup_key, title_of
from shared.store.interfaces import CreateConflict, DedupStore, RunStore, Storage, ThreadStore

# How long a client message id is remembered (a client retries within seconds or minutes).
CLIENT_KEY_TTL: Final = timedelta(days=1)
IfBusy = Literal["enqueue", "reject"]


class Accepted(BaseModel):
    """``chat.accepted``'s ids; ``duplicate`` when the client key was seen before."""

    model_config = ConfigDict(frozen=True)

    thread_id: str
    run_id: str
    message_id: str
    duplicate: bool = False


def new_id() -> str:
    return uuid.uuid4().hex


class Submitter:
    def __init__(
        self,
        storage: Storage,
        runs: RunStore,
        threads: ThreadStore,
        dedup: DedupStore,
        bus: Bus,
        clock: Clock = utc_now,
    ) -> None:
        self.storage = storage
        self.runs = runs
        self.threads = threads
        self.dedup = dedup
        self.bus = bus
        self.clock = clock

    def submit(
        self,
        principal: Principal,
        content: str,
        *,
        thread_id: str | None,
        client_msg_id: str | None,
        if_busy: IfBusy = "enqueue",
        relay: str = "",
    ) -> Accepted:
        now = self.clock()
        key = dedup_key("chat", principal.uid, client_msg_id) if client_msg_id is not None else None
        if key is not None:
            earlier = self.dedup.get(key, now)
            if earlier is not None:
                return self._again(Accepted.model_validate({**earlier, "duplicate": True}))
        thread = (
            self.threads.get_owned(thread_id, principal.uid, principal.workspace_id)
            if thread_id
            else None
        )
        if thread is not None and if_busy == "reject":
            self._refuse_if_busy(thread.thread_id)
        ids = Accepted(
            thread_id=thread.thread_id if thread is not None else new_id(),
            run_id=new_id(),
            message_id=_message_id(principal.uid, client_msg_id),
        )
        work = self.storage.begin()
        if thread is None:
            self.threads.create_in(
                work,
                ThreadDoc(
                    thread_id=ids.thread_id,
                    owner_uid=principal.uid,
                    workspace_id=principal.workspace_id,
                    title=title_of(content),
                    created_at=now,
                    updated_at=now,
                ),
            )
        else:
            self.threads.touch_in(work, ids.thread_id, now)
        self.threads.add_message_in(
            work,
            ids.thread_id,
            MessageDoc(
                message_id=ids.message_id,
                role="user",
                text=content,
                ts=now,
                run_id=ids.run_id,
                client_msg_id=client_msg_id,
            ),
        )
        self.runs.create_in(
            work,
            RunDoc(
                run_id=ids.run_id,
                thread_id=ids.thread_id,
                uid=principal.uid,
                workspace_id=principal.workspace_id,
                message_id=ids.message_id,
                question=content,
                status="queued",
                created_at=now,
                updated_at=now,
                relay=relay,
            ),
        )
        if key is not None:
            self.dedup.create_in(work, key, ids.model_dump(), now + CLIENT_KEY_TTL)
        try:
            work.commit()
        except CreateConflict:
            # The same client message raced in on another connection and won.
            if key is None:
                raise
            earlier = self.dedup.get(key, now)
            if earlier is None:
                raise
            return self._again(Accepted.model_validate({**earlier, "duplicate": True}))
        self._start(ids.run_id, principal.uid)
        return ids

    def _again(self, accepted: Accepted) -> Accepted:
        run = self.runs.get(accepted.run_id)
        if run is not None and run.status == "queued":
            self._start(run.run_id, run.uid)  # the first attempt may have died before publishing
        return accepted

    def _start(self, run_id: str, uid: str) -> None:
        self.bus.publish(
            STEP_TOPICS[FIRST_STEP], StepRequested(run_id=run_id, uid=uid, step=FIRST_STEP)
        )

    def _refuse_if_busy(self, thread_id: str) -> None:
        holder = self.runs.lock_holder(thread_id)
        if holder is None:
            return
        run = self.runs.get(holder)
        if run is not None and not run.terminal:
            raise ThreadBusy(f"thread {thread_id} has a run in progress ({holder})")


def _message_id(uid: str, client_msg_id: str | None) -> str:
    if client_msg_id is None:
        return new_id()
    # Stable for a client key, so a retried message lands on the same document.
    return hashlib.sha256(f"{uid}\x00{client_msg_id}".encode()).hexdigest()[:32]


def cancel(pipeline: Pipeline, principal: Principal, run_id: str) -> RunDoc:
    """Ask a run to stop: at once if it has not started, else between its steps."""
    run = pipeline.runs.get_owned(run_id, principal.uid, principal.workspace_id)
    if run.terminal:
        return run
    pipeline.runs.update(run_id, {"cancel_requested": True})
    if run.status == "queued":
        pipeline.cancel_now(run.model_copy(update={"cancel_requested": True}))
    return pipeline.runs.get_owned(run_id, principal.uid, principal.workspace_id)
