"""What every edge of Apex shares: the public HTTP functions (``shared.http``), the push
workers (``shared.endpoints``) and the relay (``relay/``) alike.

- the request-size limits (defined once in ``shared.limits``, re-exported here);
- the bearer token of an ``Authorization`` header;
- which per-minute rate limit a call counts against;
- what a failure becomes for the client: an ``ApexError`` is itself, a dependency that did
  not answer is ``unavailable`` (503, retry), anything else ``internal`` (500) with a logged
  reference id (the relay sends the same codes in error frames, and ``CloseCode`` beside
  the errors in ``shared.errors``);
- the push workers' reply: parse the Pub/Sub push envelope, run the worker inside the log
  context of its message (run id, uid, step: DESIGN §7), 204 to ack, an error's status
  otherwise so that Pub/Sub retries and then dead-letters.

An entry point turns its framework's request into an ``HttpRequest`` and writes the
``HttpResponse`` back (DESIGN §1: no transport below).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar, assert_never

from google.api_core.exceptions import DeadlineExceeded, RetryError, ServiceUnavailable

from shared.config import Settings
from shared.errors import ApexError, Internal, Unavailable
from shared.limits import KIB as KIB
from shared.limits import MAX_BODY_BYTES as MAX_BODY_BYTES
from shared.limits import MAX_FRAME_BYTES as MAX_FRAME_BYTES
from shared.limits import MAX_INGEST_BODY_BYTES as MAX_INGEST_BODY_BYTES
from shared.limits import MAX_INGEST_RECORDS as MAX_INGEST_RECORDS
from shared.limits import MIB as MIB
from shared.limits import size_text as size_text
from shared.logging import log_context, trace_id_from_headers
from shared.models.budgets import BudgetTick, NotifyRequested
from shared.models.messages import PushEnvelope, StepRequested, UsageBatch
from shared.store.documents import LimitKind

if TYPE_CHECKING:
    from shared.services import Services

log = logging.getLogger(__name__)

# --- credentials ------------------------------------------------------------------------------


def bearer_token(authorization: str | None) -> str | None:
    """The token of ``Authorization: Bearer <token>``: None without the header, "" when the
    header holds no bearer token (every edge refuses that like a bad token)."""
    if authorization is None:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


# --- rate limits ------------------------------------------------------------------------------

# agents_execute and the relay's chat.send count against one limit: both send a chat message.
CHAT_LIMIT: Final[LimitKind] = "chat_messages"


def per_minute(settings: Settings, kind: LimitKind) -> int:
    """The calls a user may make a minute under ``kind``."""
    match kind:
        case "function_calls":
            return settings.function_calls_per_minute
        case "chat_messages":
            return settings.chat_messages_per_minute
        case "workspace_calls":
            return settings.workspace_calls_per_minute
        case _:
            assert_never(kind)


def count_call(services: Services, kind: LimitKind, who: str, now: datetime) -> None:
    """Count one call of ``who`` (a uid; a workspace id for ``workspace_calls``);
    ``RateLimited`` (with Retry-After) past the limit."""
    services.limiter.hit(kind, who, per_minute(services.settings, kind), now)


# --- faults -----------------------------------------------------------------------------------

# A dependency (Firestore, Pub/Sub, Google's certificates) that did not answer in time.
DEPENDENCY_ERRORS: Final = (ServiceUnavailable, DeadlineExceeded, RetryError)
RETRY_AFTER_S: Final = 5


def fault_of(error: Exception, what: str = "internal error", **fields: object) -> ApexError:
    """What ``error`` is for the client: an ``ApexError`` itself; a dependency's failure
    ``Unavailable`` (logged as a warning); anything else ``Internal`` (``internal``)."""
    if isinstance(error, ApexError):
        return error
    if isinstance(error, DEPENDENCY_ERRORS):
        log.warning(
            "a dependency is unavailable", extra={"fields": {"error": str(error), **fields}}
        )
        return Unavailable(
            "a dependency did not answer in time; retry", retry_after_s=RETRY_AFTER_S
        )
    return internal(error, what, **fields)


def internal(error: BaseException, what: str, **fields: object) -> Internal:
    """A fault of Apex itself: logged with its stack trace and a reference id that the
    client's error carries (so a report can be matched to the log)."""
    reference = uuid.uuid4().hex[:12]
    log.error(what, exc_info=error, extra={"fields": {"reference": reference, **fields}})
    return Internal(f"internal error; reference {reference}")


# --- HTTP, framework-free ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    headers: Mapping[str, str]  # lower-case names
    query: Mapping[str, str]
    body: bytes
    # Whether the body was longer than the endpoint's limit (the adapter stops reading there).
    truncated: bool = False
    # The path below the function's URL ("/" for most; `workspaces` routes on it).
    path: str = "/"

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def content_type(self) -> str:
        return (self.header("content-type") or "").split(";", 1)[0].strip().lower()


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    body: Any  # JSON-ready, or None for an empty body
    headers: dict[str, str] = field(default_factory=dict)


def error_response(error: ApexError, headers: Mapping[str, str] | None = None) -> HttpResponse:
    """``{"error": {"code", "message"}}`` with the error's status (and Retry-After)."""
    extra = dict(headers or {})
    if error.retry_after_s is not None:
        extra["Retry-After"] = str(error.retry_after_s)
    return HttpResponse(error.http_status, error.body(), extra)


# --- push workers -----------------------------------------------------------------------------

# What a worker reads from a push envelope (None: a dead letter of an unknown kind).
WorkMessage = StepRequested | UsageBatch | BudgetTick | NotifyRequested | None
_W = TypeVar("_W", bound=WorkMessage)


@dataclass(frozen=True, slots=True)
class PushWorker(Generic[_W]):
    """A push subscription's worker: the message it reads from the envelope (a malformed
    one raises an ``ApexError``), and what it does with it (returning what it did, logged)."""

    decode: Callable[[PushEnvelope], _W]
    run: Callable[[Services, _W, PushEnvelope], str]


def serve_push(worker: PushWorker[_W], request: HttpRequest, services: Services) -> HttpResponse:
    """204 to ack; an ``ApexError``'s status for a message refused, 503 or 500 for a failure:
    Pub/Sub redelivers it, and after the subscription's attempts dead-letters it."""
    if request.method != "POST":
        return HttpResponse(405, None, {"Allow": "POST"})
    with log_context(trace=trace_id_from_headers(dict(request.headers))):
        try:
            envelope = PushEnvelope.parse(request.body)
            message = worker.decode(envelope)
        except ApexError as e:
            return _refused(e)
        with work_context(message):
            try:
                action = worker.run(services, message, envelope)
            except ApexError as e:
                return _refused(e)
            except Exception as e:  # noqa: BLE001 - every failure gets its code and is logged
                return error_response(fault_of(e, "a push worker failed"))
            log.info(action)
    return HttpResponse(204, None)


def _refused(error: ApexError) -> HttpResponse:
    # A malformed message or a refusal: Pub/Sub retries it and then dead-letters it.
    log.error("push message refused", extra={"fields": {"error": error.message}})
    return error_response(error)


def work_context(message: WorkMessage) -> AbstractContextManager[None]:
    """The log context of a worker's message: every line it logs names its run, user and step."""
    match message:
        case StepRequested():
            return log_context(run_id=message.run_id, uid=message.uid, step=message.step)
        case UsageBatch():
            return log_context(uid=message.uid, workspace=message.workspace_id)
        case BudgetTick() | NotifyRequested():
            return log_context(workspace=message.workspace_id)
        case None:
            return nullcontext()
        case _:
            assert_never(message)
