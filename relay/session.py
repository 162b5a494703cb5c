"""One WebSocket: authentication, the client frames, and the runs it watches (docs/relay.md).

Frames from the client are handled one at a time, in order; everything sent to the client
goes through one ``Outbox``, in call order, so ``chat.accepted`` precedes the run's events
and a run's events keep their order. Blocking calls (Firestore, Pub/Sub, Firebase Auth) run
in the loop's thread pool. The socket is served as a plain ASGI app (``relay.app``), not
through Starlette's ``WebSocket``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final
from urllib.parse import urlsplit

from google.api_core.exceptions import DeadlineExceeded, RetryError, ServiceUnavailable
from starlette.datastructures import Headers
from starlette.types import Message, Receive, Scope, Send

from relay.fanout import Fanout
from relay.outbox import INTERNAL_ERROR, Outbox
from shared.auth import Principal
from shared.chat import cancel
from shared.errors import ApexError, Forbidden, Unauthenticated, Unavailable
from shared.logging import log_context, trace_id_from_headers
from shared.models.events import RunEvent
from shared.models.frames import (
    AuthFrame,
    AuthOk,
    ChatAccepted,
    ChatSend,
    ClientFrame,
    ErrorFrame,
    Ping,
    Pong,
    RunCancel,
    RunCancelOk,
    RunResume,
    RunResumed,
    ServerFrame,
    parse_client_frame,
)
from shared.sequencer import RunSequencer
from shared.services import Services

log = logging.getLogger("apex.relay.session")

# Close codes (RFC 6455 §7.4.1 and IANA's registry), as docs/relay.md lists them (1011 and
# 1013: relay/outbox.py).
POLICY_VIOLATION: Final = 1008
# A gap in a run's seq is usually a reordering of one step's events: wait this long for the
# missing ones before reading the store; then retry the read this often, this many times.
GAP_GRACE_S: Final = 0.25
FILL_RETRY_S: Final = 1.0
MAX_FILL_READS: Final = 30
DEPENDENCY_ERRORS: Final = (ServiceUnavailable, DeadlineExceeded, RetryError)


@dataclass(frozen=True, slots=True)
class RelayContext:
    """What every socket of this instance shares."""

    services: Services
    fanout: Fanout
    relay_id: str
    auth_timeout_s: float

    def origin_allowed(self, origin: str | None, host: str | None) -> bool:
        """No Origin (not a browser), a configured origin, or the relay's own host."""
        if origin is None:
            return True
        if origin in self.services.settings.cors_origins:
            return True
        return host is not None and urlsplit(origin).netloc == host


class RunWatch:
    """One socket watching one run: every event after ``after_seq`` once, in order, from
    Pub/Sub and, for what Pub/Sub did not bring, from Firestore."""

    def __init__(
        self,
        run_id: str,
        after_seq: int,
        session: Session,
    ) -> None:
        self.run_id = run_id
        self.sequencer = RunSequencer(run_id, after_seq)
        self._session = session
        self._send_text = session.outbox.send_text
        self._fill: asyncio.Task[None] | None = None
        self.closed = False

    # Called on the loop by the fan-out, with the event's frame serialized once for every
    # watcher. Every live event of every socket takes this path: it makes few calls.
    def on_event(self, event: RunEvent, text: str) -> None:
        sequencer = self.sequencer
        ready = sequencer.offer((event,))
        if ready and not self.closed:
            send = self._send_text
            for delivered in ready:
                send(text if delivered is event else delivered.frame_json())
            if sequencer.finished:
                self._session.unwatch(self)
        if sequencer.has_gap:
            self._start_fill(at_once=sequencer.terminal_held)

    def on_resync(self) -> None:
        self._start_fill(at_once=True)

    async def catch_up(self) -> None:
        """Read the store after what was delivered, and deliver it."""
        events = await asyncio.to_thread(
            self._session.services.runs.events_after, self.run_id, self.sequencer.delivered
        )
        if not self.closed:
            self._deliver(self.sequencer.offer(events))

    def close(self) -> None:
        self.closed = True
        if self._fill is not None:
            self._fill.cancel()

    def _deliver(self, events: list[RunEvent]) -> None:
        if self.closed:
            return
        for event in events:
            self._send_text(event.frame_json())
        if self.sequencer.finished:
            self._session.unwatch(self)

    def _start_fill(self, *, at_once: bool) -> None:
        if self.closed or (self._fill is not None and not self._fill.done()):
            return
        self._fill = asyncio.get_running_loop().create_task(
            self._fill_gaps(0.0 if at_once else GAP_GRACE_S), name=f"fill-{self.run_id}"
        )

    async def _fill_gaps(self, first_delay: float) -> None:
        try:
            await self._fill_gaps_or_give_up(first_delay)
        except Exception:  # noqa: BLE001 - logged with its stack trace by fail()
            self._session.fail("reading a run's events failed")

    async def _fill_gaps_or_give_up(self, first_delay: float) -> None:
        delay = first_delay
        for _ in range(MAX_FILL_READS):
            await asyncio.sleep(delay)
            delay = FILL_RETRY_S
            if self.closed:
                return
            try:
                await self.catch_up()
            except (*DEPENDENCY_ERRORS, Unavailable) as e:
                log.warning(
                    "cannot read a run's events yet",
                    extra={"fields": {"run_id": self.run_id, "error": str(e)}},
                )
                continue
            if self.closed or not self.sequencer.has_gap:
                return
        log.error(
            "a run's events stayed missing after every read",
            extra={"fields": {"run_id": self.run_id, "delivered": self.sequencer.delivered}},
        )
        self._session.send_frame(
            ErrorFrame(
                code=Unavailable.code,
                message="some events of this run could not be read; send run.resume to retry",
                run_id=self.run_id,
                retry_after_s=5,
            )
        )
        self._session.unwatch(self)


class Session:
    """One socket, from the upgrade to the disconnect (``serve``)."""

    # An idle socket holds little more than this object (docs/benchmarks.md, relay capacity).
    __slots__ = (
        "_auth_deadline",
        "_expiry",
        "_receive",
        "ctx",
        "outbox",
        "principal",
        "services",
        "session_id",
        "trace",
        "watches",
    )

    def __init__(self, context: RelayContext, receive: Receive, send: Send) -> None:
        self.ctx = context
        self.services = context.services
        self.session_id = uuid.uuid4().hex
        self.principal: Principal | None = None
        self.watches: dict[str, RunWatch] = {}
        self.trace: str | None = None
        self._receive = receive
        self.outbox = Outbox(send, self.session_id)
        self._auth_deadline: asyncio.TimerHandle | None = None
        self._expiry: asyncio.TimerHandle | None = None

    # --- the socket's life ------------------------------------------------------------------

    async def serve(self, scope: Scope) -> None:
        headers = Headers(scope=scope)
        if not self.ctx.origin_allowed(headers.get("origin"), headers.get("host")):
            log.warning(
                "refused a WebSocket from another origin",
                extra={"fields": {"origin": headers.get("origin")}},
            )
            await self.outbox.refuse(POLICY_VIOLATION)
            return
        await self._receive()  # "websocket.connect": an ASGI server's first message
        await self.outbox.accept()
        self.trace = trace_id_from_headers(dict(headers))
        try:
            await self._sign_in_on_upgrade(headers)
            if self.principal is None and self.outbox.closing is None:
                self._auth_deadline = asyncio.get_running_loop().call_later(
                    self.ctx.auth_timeout_s, self._auth_timed_out
                )
            while await self._take(await self._receive()):
                pass
        finally:
            self._cancel_timers()
            for watch in list(self.watches.values()):
                self.unwatch(watch)
            self.outbox.stop()
            log.info(
                "socket closed",
                extra={"fields": {"session_id": self.session_id, "uid": self._uid()}},
            )

    async def _sign_in_on_upgrade(self, headers: Headers) -> None:
        # A call of its own so that an idle socket holds no reference to the token.
        token = _bearer(headers.get("authorization"))
        if token is not None:
            with log_context(trace=self.trace):
                await self._authenticate(token)

    async def _take(self, message: Message) -> bool:
        """One message from the client; False once it has gone. (A call of its own so that
        an idle socket holds no reference to its last frame, such as the auth frame's token.)"""
        if message["type"] == "websocket.disconnect":
            return False
        if self.outbox.closing is not None:
            return True  # our close is on its way; wait for the client's
        text = message.get("text")
        with log_context(trace=self.trace, uid=self._uid()):
            if text is None:
                self.send_frame(ErrorFrame(code="bad_request", message="send text frames"))
            else:
                await self._handle(text)
        return True

    # --- sending ----------------------------------------------------------------------------

    def send_frame(self, frame: ServerFrame) -> None:
        self.outbox.send_text(frame.text())

    def close(self, code: int, reason: str, *, now: bool = False) -> None:
        """Close after what is waiting to be sent (``now``: instead of it)."""
        if self.outbox.closing is not None:
            return
        self._cancel_timers()
        self.outbox.close(code, reason, now=now)

    # --- frames -----------------------------------------------------------------------------

    async def _handle(self, text: str) -> None:
        frame: ClientFrame | None = None
        try:
            frame = parse_client_frame(text)
            if isinstance(frame, AuthFrame):
                await self._authenticate(frame.token)
                return
            if self.principal is None:
                raise Unauthenticated('send {"type":"auth","token":...} first')
            if isinstance(frame, ChatSend):
                await self._chat_send(self.principal, frame)
            elif isinstance(frame, RunResume):
                await self._resume(self.principal, frame)
            elif isinstance(frame, RunCancel):
                await self._cancel(self.principal, frame)
            elif isinstance(frame, Ping):
                self.send_frame(Pong())
        except ApexError as e:
            self.send_frame(_error_frame(e, frame))
        except DEPENDENCY_ERRORS as e:
            log.warning("a dependency is unavailable", extra={"fields": {"error": str(e)}})
            unavailable = Unavailable("a dependency did not answer in time; retry", retry_after_s=5)
            self.send_frame(_error_frame(unavailable, frame))
        except Exception:  # noqa: BLE001 - logged with its stack trace by fail()
            self.fail("internal error in a WebSocket frame")

    def fail(self, what: str) -> None:
        """A fault of the relay (in an ``except`` block): logged with a reference id that
        the 1011 close carries."""
        reference = uuid.uuid4().hex[:12]
        log.exception(
            what, extra={"fields": {"reference": reference, "session_id": self.session_id}}
        )
        self.close(INTERNAL_ERROR, f"internal error; reference {reference}", now=True)

    async def _authenticate(self, token: str) -> None:
        try:
            principal = await asyncio.to_thread(self.services.verifier.verify, token)
        except (Unauthenticated, Forbidden) as e:
            log.info("refused a token", extra={"fields": {"reason": e.message}})
            self.close(POLICY_VIOLATION, e.message)
            return
        if self.principal is not None and principal.uid != self.principal.uid:
            self.close(POLICY_VIOLATION, "a fresh token must be the same user's")
            return
        first = self.principal is None
        self.principal = principal
        self._cancel_timers()
        loop = asyncio.get_running_loop()
        self._expiry = loop.call_later(
            max(0.0, principal.expires_at - time.time()), self._token_expired
        )
        self.send_frame(
            AuthOk(
                uid=principal.uid,
                workspace_id=principal.workspace_id,
                session_id=self.session_id,
                expires_at=principal.expires_at,
            )
        )
        if first:
            log.info(
                "socket signed in",
                extra={"fields": {"session_id": self.session_id, "uid": principal.uid}},
            )

    async def _chat_send(self, principal: Principal, frame: ChatSend) -> None:
        services = self.services
        await asyncio.to_thread(
            services.limiter.hit,
            "chat_messages",
            principal.uid,
            services.settings.chat_messages_per_minute,
            datetime.now(UTC),
        )
        accepted = await asyncio.to_thread(
            lambda: services.submitter.submit(
                principal,
                frame.content,
                thread_id=frame.thread_id,
                client_msg_id=str(frame.client_msg_id),
                if_busy=frame.if_busy,
                relay=self.ctx.relay_id,
            )
        )
        if accepted.duplicate:
            # A retry (perhaps after a reconnect to another instance): its events come here now.
            await asyncio.to_thread(
                services.runs.update, accepted.run_id, {"relay": self.ctx.relay_id}
            )
        self.send_frame(
            ChatAccepted(
                client_msg_id=frame.client_msg_id,
                thread_id=accepted.thread_id,
                run_id=accepted.run_id,
                message_id=accepted.message_id,
            )
        )
        with log_context(run_id=accepted.run_id):
            log.info("chat message accepted", extra={"fields": {"duplicate": accepted.duplicate}})
        # Events published before the watch began are read from the store (retried on a
        # dependency's error: the message is accepted, whatever the read does).
        self._watch(accepted.run_id, 0).on_resync()

    async def _resume(self, principal: Principal, frame: RunResume) -> None:
        runs = self.services.runs
        run = await asyncio.to_thread(runs.get_owned, frame.run_id, principal.uid)
        self.send_frame(RunResumed(run_id=run.run_id, status=run.status))
        # Watch first, then move the run's live events here, then read what came before:
        # an event is either committed before the read or published after the move.
        watch = self._watch(run.run_id, frame.after_seq)
        if not run.terminal:
            await asyncio.to_thread(runs.update, run.run_id, {"relay": self.ctx.relay_id})
        await watch.catch_up()
        if run.terminal and not watch.closed and watch.sequencer.delivered >= run.last_seq:
            self.unwatch(watch)  # it had ended before, and the client has every event

    async def _cancel(self, principal: Principal, frame: RunCancel) -> None:
        run = await asyncio.to_thread(cancel, self.services.pipeline, principal, frame.run_id)
        self.send_frame(RunCancelOk(run_id=run.run_id, status=run.status))

    # --- watching runs ----------------------------------------------------------------------

    def _watch(self, run_id: str, after_seq: int) -> RunWatch:
        earlier = self.watches.get(run_id)
        if earlier is not None:
            self.unwatch(earlier)
        watch = RunWatch(run_id, after_seq, self)
        self.watches[run_id] = watch
        self.ctx.fanout.watch(run_id, watch)
        return watch

    def unwatch(self, watch: RunWatch) -> None:
        watch.close()
        if self.watches.get(watch.run_id) is watch:
            del self.watches[watch.run_id]
        self.ctx.fanout.unwatch(watch.run_id, watch)

    # --- timers -----------------------------------------------------------------------------

    def _auth_timed_out(self) -> None:
        self.close(
            POLICY_VIOLATION,
            f"no auth frame within {self.ctx.auth_timeout_s:g} s",
        )

    def _token_expired(self) -> None:
        self.close(POLICY_VIOLATION, "the ID token expired; send a fresh one before it does")

    def _cancel_timers(self) -> None:
        for timer in (self._auth_deadline, self._expiry):
            if timer is not None:
                timer.cancel()
        self._auth_deadline = self._expiry = None

    def _uid(self) -> str | None:
        return self.principal.uid if self.principal is not None else None


def _bearer(value: str | None) -> str | None:
    if value is None:
        return None
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer":
        return ""  # present but not a bearer token: refused like a bad one
    return token.strip()


def _error_frame(error: ApexError, frame: ClientFrame | None) -> ErrorFrame:
    return ErrorFrame(
        code=error.code,
        message=error.message,
        client_msg_id=frame.client_msg_id if isinstance(frame, ChatSend) else None,
        run_id=frame.run_id if isinstance(frame, RunResume | RunCancel) else None,
        retry_after_s=error.retry_after_s,
    )
