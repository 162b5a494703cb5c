"""This instance's share of ``apex-events``: its own filtered subscription, pulled with the
official client's streaming pull, and the fan-out of each event to the sockets watching its
run (DESIGN §3.5).

The subscription ``apex-events-relay-{relay id}`` (``shared/topology.yaml``) is created at
start-up and deleted at shutdown; its expiration policy removes it if the process dies
without deleting it. Pub/Sub calls back on its own threads; each event is handed to the
asyncio loop with ``call_soon_threadsafe`` and acknowledged (the events are in Firestore
already, so a socket that misses one reads it from there).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from concurrent.futures import CancelledError
from typing import Any, Final, Protocol

from google.api_core.exceptions import GoogleAPICallError, NotFound
from google.api_core.retry import Retry
from google.cloud.pubsub_v1 import SubscriberClient
from google.cloud.pubsub_v1.types import FlowControl
from google.protobuf.duration_pb2 import Duration
from pydantic import ValidationError

from shared.models.budgets import NotificationFrame
from shared.models.events import RunEvent
from shared.topology import NOTIFICATION_KIND, Topology

log = logging.getLogger("apex.relay.fanout")

# Messages held by the client at once (events are small; the loop drains them quickly).
MAX_OUTSTANDING: Final = 1_000
RESTART_DELAYS_S: Final = (0.5, 1.0, 2.0, 5.0)
CHECK_TIMEOUT_S: Final = 5.0
# Deadlines over all retries of a call (the client's defaults retry for 60 s): start-up
# fails within Cloud Run's startup probe, shutdown fits its 10 s, readiness answers quickly.
CREATE_RETRY: Final = Retry(timeout=15.0)
CALL_RETRY: Final = Retry(timeout=CHECK_TIMEOUT_S)


class Watcher(Protocol):
    def on_event(self, event: RunEvent, text: str) -> None: ...

    def on_resync(self) -> None: ...


class Member(Protocol):
    """A socket signed in to a workspace: it gets the workspace's alert frames."""

    def on_notification(self, workspace_id: str, text: str) -> None: ...


class Fanout:
    """The subscription, the run -> watchers table and the workspace -> sockets table.
    Watch/unwatch/join/leave/dispatch/notify run on the loop."""

    def __init__(
        self,
        subscriber: SubscriberClient,
        project: str,
        relay_id: str,
        topology: Topology,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._subscriber = subscriber
        self._project = project
        self.relay_id = relay_id
        self._topology = topology
        self._loop = loop
        # Tuples, replaced on watch and unwatch (rare) so that dispatch (every event) iterates
        # them without a copy while a watcher unwatches.
        self._watchers: dict[str, tuple[Watcher, ...]] = {}
        self._members: dict[str, tuple[Member, ...]] = {}
        self._pull: Any = None  # the StreamingPullFuture
        self._stopping = threading.Event()
        self._restarts = 0

    @property
    def subscription_name(self) -> str:
        return self._topology.relay_subscription_name(self.relay_id)

    @property
    def subscription_path(self) -> str:
        return f"projects/{self._project}/subscriptions/{self.subscription_name}"

    @property
    def topic_path(self) -> str:
        return f"projects/{self._project}/topics/{self._topology.relay_subscriptions.topic}"

    @property
    def pulling(self) -> bool:
        return self._pull is not None and not self._pull.done()

    # --- lifecycle (blocking: call from a thread) -------------------------------------------

    def start(self) -> None:
        """Create this instance's subscription and open the streaming pull; fails loudly."""
        self._create_subscription()
        self._open_pull()
        log.info(
            "subscribed to apex-events",
            extra={"fields": {"subscription": self.subscription_name, "relay": self.relay_id}},
        )

    def stop(self) -> None:
        """Close the streaming pull and delete the subscription."""
        self._stopping.set()
        if self._pull is not None:
            self._pull.cancel()
            with contextlib.suppress(CancelledError):
                self._pull.result(timeout=CHECK_TIMEOUT_S)
        try:
            self._subscriber.delete_subscription(
                request={"subscription": self.subscription_path},
                retry=CALL_RETRY,
                timeout=CHECK_TIMEOUT_S,
            )
        except NotFound:
            log.warning(
                "the relay's subscription was already gone at shutdown",
                extra={"fields": {"subscription": self.subscription_name}},
            )
        log.info("deleted the relay's subscription", extra={"fields": {"relay": self.relay_id}})

    def check(self) -> None:
        """Readiness: Pub/Sub answers and this instance's subscription exists (raises if not)."""
        self._subscriber.get_subscription(
            request={"subscription": self.subscription_path},
            retry=CALL_RETRY,
            timeout=CHECK_TIMEOUT_S,
        )

    def _create_subscription(self) -> None:
        spec = self._topology.relay_subscriptions
        self._subscriber.create_subscription(
            request={
                "name": self.subscription_path,
                "topic": self.topic_path,
                "filter": self._topology.relay_filter(self.relay_id),
                "ack_deadline_seconds": spec.ack_deadline_seconds,
                "expiration_policy": {"ttl": Duration(seconds=spec.expiration_ttl_seconds)},
            },
            retry=CREATE_RETRY,
            timeout=CHECK_TIMEOUT_S,
        )

    def _open_pull(self) -> None:
        self._pull = self._subscriber.subscribe(
            self.subscription_path,
            callback=self._on_message,
            flow_control=FlowControl(max_messages=MAX_OUTSTANDING),
        )
        self._pull.add_done_callback(self._on_pull_done)

    # --- Pub/Sub's threads ------------------------------------------------------------------

    def _on_message(self, message: Any) -> None:
        if message.attributes.get("kind") == NOTIFICATION_KIND:
            self._on_notification(message)
            return
        try:
            event = RunEvent.model_validate_json(message.data)
        except ValidationError as e:
            # Not ours to retry: a malformed event would come back forever. Logged loudly.
            log.error(
                "dropped a malformed message on apex-events",
                extra={"fields": {"message_id": message.message_id, "error": str(e)[:500]}},
            )
            message.ack()
            return
        self._loop.call_soon_threadsafe(self.dispatch, event)
        message.ack()

    def _on_notification(self, message: Any) -> None:
        try:
            frame = NotificationFrame.model_validate_json(message.data)
        except ValidationError as e:
            log.error(
                "dropped a malformed notification on apex-events",
                extra={"fields": {"message_id": message.message_id, "error": str(e)[:500]}},
            )
            message.ack()
            return
        # Stored before it was published: a socket that misses it lists it (GET notifications).
        self._loop.call_soon_threadsafe(self.notify, frame)
        message.ack()

    def _on_pull_done(self, future: Any) -> None:
        if self._stopping.is_set():
            return
        error = future.exception() if not future.cancelled() else None
        log.error(
            "the relay's streaming pull stopped; reopening it",
            extra={"fields": {"error": repr(error), "subscription": self.subscription_name}},
        )
        self._loop.call_soon_threadsafe(self._schedule_restart)

    # --- the loop ---------------------------------------------------------------------------

    def _schedule_restart(self) -> None:
        self._loop.create_task(self._restart(), name="relay-pull-restart")

    async def _restart(self) -> None:
        """Reopen the pull (recreating an expired or deleted subscription), then have every
        watcher read the store, since events published meanwhile may be lost to us."""
        delay = RESTART_DELAYS_S[min(self._restarts, len(RESTART_DELAYS_S) - 1)]
        self._restarts += 1
        await asyncio.sleep(delay)
        if self._stopping.is_set():
            return
        try:
            await asyncio.to_thread(self._reopen)
        except GoogleAPICallError as e:
            log.error("cannot reopen the streaming pull", extra={"fields": {"error": str(e)}})
            self._schedule_restart()
            return
        self._restarts = 0
        for watchers in list(self._watchers.values()):
            for watcher in watchers:
                watcher.on_resync()

    def _reopen(self) -> None:
        try:
            self.check()
        except NotFound:
            log.error(
                "the relay's subscription disappeared; creating it again",
                extra={"fields": {"subscription": self.subscription_name}},
            )
            self._create_subscription()
        self._open_pull()

    def watch(self, run_id: str, watcher: Watcher) -> None:
        watchers = self._watchers.get(run_id, ())
        if watcher not in watchers:
            self._watchers[run_id] = (*watchers, watcher)

    def unwatch(self, run_id: str, watcher: Watcher) -> None:
        watchers = tuple(w for w in self._watchers.get(run_id, ()) if w is not watcher)
        if watchers:
            self._watchers[run_id] = watchers
        else:
            self._watchers.pop(run_id, None)

    def watched_runs(self) -> int:
        return len(self._watchers)

    def dispatch(self, event: RunEvent) -> None:
        """One live event to every watcher of its run on this instance (none: dropped; the
        run's events are in Firestore for whoever resumes it). The frame is serialized once,
        for every watcher."""
        watchers = self._watchers.get(event.run_id)
        if watchers is None:
            return
        text = event.frame_json()
        for watcher in watchers:
            watcher.on_event(event, text)

    def join(self, workspace_id: str, member: Member) -> None:
        members = self._members.get(workspace_id, ())
        if member not in members:
            self._members[workspace_id] = (*members, member)

    def leave(self, workspace_id: str, member: Member) -> None:
        members = tuple(m for m in self._members.get(workspace_id, ()) if m is not member)
        if members:
            self._members[workspace_id] = members
        else:
            self._members.pop(workspace_id, None)

    def notify(self, frame: NotificationFrame) -> None:
        """An alert to every socket of its workspace on this instance (serialized once)."""
        members = self._members.get(frame.workspace_id)
        if members is None:
            return
        text = frame.text()
        for member in members:
            member.on_notification(frame.workspace_id, text)
