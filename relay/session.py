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
from typing import Final, assert_never
from urllib.parse import urlsplit
from uuid import UUID

from starlette.datastructures import Headers
from starlette.types import Message, Receive, Scope, Send

from relay.fanout import Fanout
from relay.outbox import Outbox
from shared.auth import Principal
from shared.chat import cancel
from shared.edge import (
    CHAT_LIMIT,
    DEPENDENCY_ERRORS,
    RETRY_AFTER_S,
    bearer_token,
    count_call,
    fault_of,
    internal,
)
from shared.errors import (
    ApexError,
    CloseCode,
    Forbidden,
    Internal,
    NotFound,
    Unauthenticated,
    Unavailable,
    close_code,
)
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

# A gap in a run's seq is usually a reordering of one step's events: wait this long for the
# missing ones before reading the store; then retry the read this often, this many times.
GAP_GRACE_S: Final = 0.25
FILL_RETRY_S: Final = 1.0
MAX_FILL_READS: Final = 30
# Alert frames being sent (a task needs a reference until it is done).
_TASKS: set[asyncio.Task[None]] = set()


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
        except Exception as e:  # noqa: BLE001 - logged with its stack trace by internal()
            self._session.fail(e, "reading a run's events failed")

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
                retry_after_s=RETRY_AFTER_S,
            )
        )
        self._session.unwatch(self)


class Session:
    """One socket, from the upgrade to the disconnect (``serve``)."""

    # An idle socket holds little more than this object (docs/benchmarks.md, relay capacity).
    __slots__ = (
        "_auth_deadline",
        "_expiry",
        "_joined",
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
        # The workspace whose alert frames this socket gets (the fan-out's table).
        self._joined: str | None = None

    # --- the socket's life ------------------------------------------------------------------

    async def serve(self, scope: Scope) -> None:
        headers = Headers(scope=scope)
        if not self.ctx.origin_allowed(headers.get("origin"), headers.get("host")):
            log.warning(
                "refused a WebSocket from another origin",
                extra={"fields": {"origin": headers.get("origin")}},
            )
            await self.outbox.refuse(CloseCode.POLICY_VIOLATION)
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
            self._join(None)
            self.outbox.stop()
            log.info(
                "socket closed",
                extra={"fields": {"session_id": self.session_id, "uid": self._uid()}},
            )

    async def _sign_in_on_upgrade(self, headers: Headers) -> None:
        # A call of its own so that an idle socket holds no reference to the token.
        token = bearer_token(headers.get("authorization"))
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

    def end(self, error: ApexError) -> None:
        """Close the socket for ``error``, with its close code (``shared.errors``) and its
        message as the reason; a fault of the relay closes it at once."""
        self.close(close_code(error), error.message, now=isinstance(error, Internal))

    def fail(self, error: BaseException, what: str) -> None:
        """A fault of the relay: logged with a reference id that the 1011 close carries."""
        self.end(internal(error, what, session_id=self.session_id))

    # --- frames -----------------------------------------------------------------------------

    async def _handle(self, text: str) -> None:
        """One client frame. An error is an error frame and the socket stays open; only a
        fault of the relay ends it (1011)."""
        frame: ClientFrame | None = None
        try:
            frame = parse_client_frame(text)
            match frame:
                case AuthFrame():
                    await self._authenticate(frame.token, frame.workspace_id)
                case ChatSend():
                    if member := await self._member():
                        await self._chat_send(member, frame)
                case RunResume():
                    if member := await self._member():
                        await self._resume(member, frame)
                case RunCancel():
                    await self._cancel(self._signed_in(), frame)
                case Ping():
                    self._signed_in()
                    self.send_frame(Pong())
                case _:
                    assert_never(frame)
        except Exception as e:  # noqa: BLE001 - every failure gets its code (shared.edge)
            fault = fault_of(e, "internal error in a WebSocket frame", session_id=self.session_id)
            if isinstance(fault, Internal):
                self.end(fault)
            else:
                self.send_frame(_error_frame(fault, frame))

    def _signed_in(self) -> Principal:
        """Who sent the frame: every frame but ``auth`` needs a signed-in socket."""
        if self.principal is None:
            raise Unauthenticated('send {"type":"auth","token":...} first')
        return self.principal

    async def _authenticate(self, token: str, workspace_id: str | None = None) -> None:
        """Sign the socket in (or refresh its token), in ``workspace_id`` (default: the one it
        is in, or the user's personal workspace). Not a member, an API key, or a bad token
        closes the socket (1008, DESIGN §3.2)."""
        current = self.principal
        if workspace_id is None and current is not None:
            workspace_id = current.workspace_id
        access = self.services.access
        try:
            identity = await asyncio.to_thread(access.identify, token)
            if current is not None and identity.uid != current.uid:
                raise Forbidden("a fresh token must be the same user's")
            principal = await asyncio.to_thread(access.enter, identity, workspace_id, "chat")
        except (Unauthenticated, Forbidden, NotFound) as e:
            log.info("refused a sign-in", extra={"fields": {"reason": e.message}})
            self.end(e)
            return
        expires_at = identity.expires_at
        self.principal = principal
        self._join(principal.workspace_id)
        self._cancel_timers()
        loop = asyncio.get_running_loop()
        self._expiry = loop.call_later(max(0.0, expires_at - time.time()), self._token_expired)
        self.send_frame(
            AuthOk(
                uid=principal.uid,
                workspace_id=principal.workspace_id,
                role=principal.role,
                session_id=self.session_id,
                expires_at=expires_at,
            )
        )
        if current is None or current.workspace_id != principal.workspace_id:
            log.info(
                "socket signed in",
                extra={
                    "fields": {
                        "session_id": self.session_id,
                        "uid": principal.uid,
                        "workspace": principal.workspace_id,
                    }
                },
            )

    async def _member(self) -> Principal | None:
        """The socket's principal as its membership stands now (the §9 cache bound applies);
        None, and the socket closed (1008), if the user is no longer a member."""
        principal = self._signed_in()
        try:
            fresh = await asyncio.to_thread(self.services.access.recheck, principal, "chat")
        except (NotFound, Forbidden) as e:
            log.info("closed a removed member's socket", extra={"fields": {"reason": e.message}})
            self.end(e)
            return None
        self.principal = fresh
        return fresh

    async def _chat_send(self, principal: Principal, frame: ChatSend) -> None:
        services = self.services
        await asyncio.to_thread(count_call, services, CHAT_LIMIT, principal.uid, datetime.now(UTC))
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
        run = await asyncio.to_thread(
            runs.get_owned, frame.run_id, principal.uid, principal.workspace_id
        )
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

    # --- alerts (DESIGN §3.8, §11) -----------------------------------------------------------

    def _join(self, workspace_id: str | None) -> None:
        """Get the alert frames of ``workspace_id`` (None: of none) from now on."""
        if self._joined == workspace_id:
            return
        if self._joined is not None:
            self.ctx.fanout.leave(self._joined, self)
        if workspace_id is not None:
            self.ctx.fanout.join(workspace_id, self)
        self._joined = workspace_id

    def on_notification(self, workspace_id: str, text: str) -> None:
        """Called on the loop by the fan-out: send the frame once the user's membership is
        re-checked (a removed member's socket is closed instead, as for chat.send)."""
        task = asyncio.get_running_loop().create_task(self._notify(workspace_id, text))
        _TASKS.add(task)
        task.add_done_callback(_TASKS.discard)

    async def _notify(self, workspace_id: str, text: str) -> None:
        if self.principal is None or self.outbox.closing is not None:
            return
        try:
            member = await self._member()
        except (*DEPENDENCY_ERRORS, Unavailable) as e:
            # The alert stays listed (GET notifications): the page reads it there.
            log.warning("an alert frame was not sent", extra={"fields": {"error": str(e)}})
            return
        except Exception as e:  # noqa: BLE001 - a fault: logged, the socket closed (1011)
            self.fail(e, "checking membership for an alert failed")
            return
        if member is not None and member.workspace_id == workspace_id:
            self.outbox.send_text(text)

    # --- timers -----------------------------------------------------------------------------

    def _auth_timed_out(self) -> None:
        self.end(Unauthenticated(f"no auth frame within {self.ctx.auth_timeout_s:g} s"))

    def _token_expired(self) -> None:
        self.end(Unauthenticated("the ID token expired; send a fresh one before it does"))

    def _cancel_timers(self) -> None:
        for timer in (self._auth_deadline, self._expiry):
            if timer is not None:
                timer.cancel()
        self._auth_deadline = self._expiry = None

    def _uid(self) -> str | None:
        return self.principal.uid if self.principal is not None else None


def _error_frame(error: ApexError, frame: ClientFrame | None) -> ErrorFrame:
    """The error frame answering ``frame`` (None: it could not be read), naming what it was
    about: a chat message's id, or a run."""
    client_msg_id: UUID | None = None
    run_id: str | None = None
    match frame:
        case ChatSend():
            client_msg_id = frame.client_msg_id
        case RunResume() | RunCancel():
            run_id = frame.run_id
        case AuthFrame() | Ping() | None:
            pass
        case _:
            assert_never(frame)
    return ErrorFrame(
        code=error.code,
        message=error.message,
        client_msg_id=client_msg_id,
        run_id=run_id,
        retry_after_s=error.retry_after_s,
    )
