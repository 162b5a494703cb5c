"""The public functions of DESIGN §2, one ``Endpoint`` each, and the push workers, one
``PushWorker`` each.

Each handler reads its validated request, calls the agents or stores, and returns its
response model; ``shared.http.serve`` (and ``shared.edge.serve_push`` for the workers) does
everything they share.
"""

from __future__ import annotations

import hashlib
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Final, assert_never

from pydantic import BaseModel, ConfigDict, Field

from shared.agents.data import measure
from shared.agents.optimization import optimize
from shared.agents.trace import EventLog
from shared.agents.triage import triage
from shared.budgets import notify
from shared.edge import CHAT_LIMIT, MAX_INGEST_BODY_BYTES, HttpResponse, PushWorker, WorkMessage
from shared.errors import BadRequest, Conflict, NotFound, UnsupportedMediaType
from shared.http import JSON, NDJSON, Context, Endpoint, ok
from shared.ingest import otlp
from shared.ingest.accept import accept
from shared.ingest.records import parse_batch, split_body
from shared.limits import INGEST_MAX_RETRY_AFTER_S
from shared.models.api import (
    DataRequest,
    ExecuteAccepted,
    ExecuteRequest,
    ExecuteResponse,
    Identifier,
    IngestResponse,
    OptimizationRequest,
    RunResponse,
    ThreadList,
    ThreadView,
    TriageRequest,
)
from shared.models.budgets import BudgetTick, NotifyRequested
from shared.models.events import RunEvent
from shared.models.findings import Answer, Recommendation
from shared.models.messages import PushEnvelope, StepRequested, UsageBatch
from shared.models.usage import UsageRecord
from shared.services import Services
from shared.store.documents import dedup_key
from shared.workspaces.api import workspaces as workspaces_api
from shared.workspaces.service import price_book

log = logging.getLogger(__name__)

IDEMPOTENCY_TTL: Final = timedelta(hours=24)
WAIT_POLL_S: Final = 0.02
WAIT_POLL_MAX_S: Final = 0.25
MAX_KEY_CHARS: Final = 256


# --- agents_execute -------------------------------------------------------------------------


def execute(ctx: Context) -> HttpResponse:
    request = ctx.parse(ExecuteRequest)
    key = ctx.request.header("idempotency-key")
    if key is None:
        return _execute(ctx, request)
    if not 1 <= len(key) <= MAX_KEY_CHARS:
        raise BadRequest(f"Idempotency-Key must be 1..{MAX_KEY_CHARS} characters")
    dedup = ctx.services.dedup
    doc = dedup_key("execute", ctx.principal.uid, key)
    body_hash = hashlib.sha256(ctx.request.body).hexdigest()
    held = dedup.claim(doc, {"body": body_hash, "response": None}, ctx.now, IDEMPOTENCY_TTL)
    if held is not None:
        if held["body"] != body_hash:
            raise Conflict("this Idempotency-Key was used with another body")
        if held["response"] is None:
            raise Conflict("a request with this Idempotency-Key is still being processed")
        first = held["response"]
        return HttpResponse(first["status"], first["body"], {"Idempotent-Replayed": "true"})
    try:
        response = _execute(ctx, request)
    except BaseException:
        dedup.release(doc)  # a failed request is not remembered: the client may retry it
        raise
    dedup.update(
        doc, {"body": body_hash, "response": {"status": response.status, "body": response.body}}
    )
    return response


def _execute(ctx: Context, request: ExecuteRequest) -> HttpResponse:
    services = ctx.services
    accepted = services.submitter.submit(
        ctx.principal, request.message, thread_id=request.thread_id, client_msg_id=None
    )
    if request.wait:
        deadline = time.monotonic() + request.timeout_s
        pause = WAIT_POLL_S
        while time.monotonic() < deadline:
            run = services.runs.get(accepted.run_id)
            if run is not None and run.terminal:
                events = services.runs.events_after(run.run_id, 0)
                return ok(
                    ExecuteResponse(
                        run_id=run.run_id,
                        thread_id=run.thread_id,
                        status=run.status,
                        answer=_answer_of(events),
                        events=events,
                        reason=run.reason,
                    )
                )
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 1.5, WAIT_POLL_MAX_S)
    run = services.runs.get(accepted.run_id)
    status = run.status if run is not None else "queued"
    return ok(
        ExecuteAccepted(run_id=accepted.run_id, thread_id=accepted.thread_id, status=status), 202
    )


def _answer_of(events: list[RunEvent]) -> Answer | None:
    for event in reversed(events):
        if event.event == "message":
            return Answer(
                text=event.data["text"],
                recommendations=[
                    Recommendation.model_validate(r) for r in event.data["recommendations"]
                ],
            )
    return None


# --- the agents as functions ---------------------------------------------------------------


def agents_triage(ctx: Context) -> HttpResponse:
    request = ctx.parse(TriageRequest)
    catalogue = ctx.services.usage.catalogue(ctx.principal.workspace_id)
    trace = EventLog().agent("triage", "classify one message")
    return ok(triage(trace, request.message, catalogue, ctx.now))


def agents_data(ctx: Context) -> HttpResponse:
    request = ctx.parse(DataRequest)
    trace = EventLog().agent("data", "measure usage")
    return ok(
        measure(
            trace,
            ctx.services.usage,
            ctx.principal.workspace_id,
            request.period.resolve(ctx.now),
            filters=request.filters,
            dimensions=request.group_by,
            book=price_book(ctx.services.workspaces, ctx.principal.workspace_id),
        )
    )


def agents_optimization(ctx: Context) -> HttpResponse:
    request = ctx.parse(OptimizationRequest)
    trace = EventLog().agent("optimization", "find savings")
    return ok(
        optimize(
            trace,
            ctx.services.usage,
            ctx.principal.workspace_id,
            request.period.resolve(ctx.now),
            min_monthly_savings_usd=request.min_monthly_savings_usd,
            book=price_book(ctx.services.workspaces, ctx.principal.workspace_id),
            what_if_spec=request.what_if,
        )
    )


# --- usage_ingest ---------------------------------------------------------------------------


def usage_ingest(ctx: Context) -> HttpResponse:
    """Validate each record, publish the accepted ones, answer 202 once Pub/Sub has them."""
    items = split_body(ctx.request.body, ndjson=ctx.request.content_type == NDJSON)
    parsed = parse_batch(items, now=ctx.now)
    accept(ctx.services, ctx.principal, parsed.records, now=ctx.now)
    return ok(IngestResponse(accepted=len(parsed.records), rejected=parsed.rejected), 202)


# --- otlp_ingest ----------------------------------------------------------------------------


def otlp_ingest(ctx: Context) -> HttpResponse:
    """OTLP/HTTP traces (DESIGN §10): the GenAI spans accepted as usage records, the rest
    skipped; 200 with the ``ExportTraceServiceResponse`` once Pub/Sub has the records."""
    if ctx.request.path != otlp.TRACES_PATH:
        raise NotFound(f"otlp_ingest serves POST {otlp.TRACES_PATH}, not {ctx.request.path[:100]}")
    encoding = otlp.encoding_of(ctx.request.content_type)
    if encoding is None:
        raise UnsupportedMediaType(f"send {' or '.join(otlp.Encoding)}")
    body = otlp.inflate(ctx.request.body, ctx.request.header("content-encoding"))
    mapped = otlp.map_spans(otlp.decode(body, encoding), now=ctx.now)
    accept(ctx.services, ctx.principal, mapped.records, now=ctx.now)
    log.info(
        "otlp export",
        extra={
            "fields": {
                "accepted": len(mapped.records),
                "rejected": mapped.rejected,
                "skipped": mapped.skipped,
            }
        },
    )
    return otlp.export_response(mapped, encoding)


# --- runs_get, threads_get --------------------------------------------------------------------


class RunQuery(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: Identifier
    after_seq: int = Field(default=0, ge=0)


class ThreadQuery(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    thread_id: Identifier | None = None


def runs_get(ctx: Context) -> HttpResponse:
    query = ctx.query(RunQuery)
    run = ctx.services.runs.get_owned(query.run_id, ctx.principal.uid, ctx.principal.workspace_id)
    events = ctx.services.runs.events_after(run.run_id, query.after_seq)
    return ok(RunResponse(run=run.view(), events=events))


def threads_get(ctx: Context) -> HttpResponse:
    query = ctx.query(ThreadQuery)
    threads = ctx.services.threads
    if query.thread_id is None:
        return ok(
            ThreadList(threads=threads.list_for(ctx.principal.uid, ctx.principal.workspace_id))
        )
    thread = threads.get_owned(query.thread_id, ctx.principal.uid, ctx.principal.workspace_id)
    return ok(ThreadView(thread=thread.summary(), messages=threads.messages(thread.thread_id)))


_POST: Final = frozenset({"POST"})
_GET: Final = frozenset({"GET"})
# Each function's action in the active workspace and the API key scope it accepts (§9):
# the role x function table the tests walk (tests/functions/test_roles.py).
ENDPOINTS: Final[dict[str, Endpoint]] = {
    "agents_execute": Endpoint(
        "agents_execute", _POST, execute, rate_limit=CHAT_LIMIT, action="chat"
    ),
    "agents_triage": Endpoint("agents_triage", _POST, agents_triage),
    "agents_data": Endpoint("agents_data", _POST, agents_data, key_scope="read"),
    "agents_optimization": Endpoint(
        "agents_optimization", _POST, agents_optimization, key_scope="read"
    ),
    "usage_ingest": Endpoint(
        "usage_ingest",
        _POST,
        usage_ingest,
        max_body=MAX_INGEST_BODY_BYTES,
        content_types=frozenset({JSON, NDJSON}),
        action="ingest",
        key_scope="ingest",
        max_retry_after_s=INGEST_MAX_RETRY_AFTER_S,
    ),
    "otlp_ingest": Endpoint(
        "otlp_ingest",
        _POST,
        otlp_ingest,
        max_body=MAX_INGEST_BODY_BYTES,
        content_types=frozenset(otlp.Encoding),
        action="ingest",
        key_scope="ingest",
        max_retry_after_s=INGEST_MAX_RETRY_AFTER_S,
        reply=otlp.otlp_reply,
    ),
    "runs_get": Endpoint("runs_get", _GET, runs_get),
    "threads_get": Endpoint("threads_get", _GET, threads_get),
    "workspaces": Endpoint(
        "workspaces",
        frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"}),
        workspaces_api,
        workspace_header=False,
    ),
}


# --- push workers -----------------------------------------------------------------------------
# Each reads its message from the push envelope; ``shared.edge.serve_push`` runs it inside
# the message's log context and answers Pub/Sub.


def _run_step(services: Services, message: StepRequested, envelope: PushEnvelope) -> str:
    return services.pipeline.handle(message, envelope.delivery_attempt).action


def _aggregate(services: Services, batch: UsageBatch, envelope: PushEnvelope) -> str:
    records = [UsageRecord.model_validate(r) for r in batch.records]
    applied = services.usage.apply(batch.workspace_id, records)
    return f"applied {applied} of {len(records)} records"


def _dead_letter_of(envelope: PushEnvelope) -> WorkMessage:
    """A dead letter of any work queue, by its ``kind`` (None: a kind Apex does not send)."""
    match envelope.message.attributes.get("kind"):
        case "run_step":
            return envelope.decode(StepRequested)
        case "usage_batch":
            return envelope.decode(UsageBatch)
        case "budget_tick":
            return envelope.decode(BudgetTick)
        case "notify":
            return envelope.decode(NotifyRequested)
        case _:
            return None


def _keep_dead_letter(services: Services, message: WorkMessage, envelope: PushEnvelope) -> str:
    """Fail the run of a dead step, keep the lost usage batch (or unknown letter), record an
    undelivered notification, or log a dead budget tick (the next tick judges again)."""
    match message:
        case NotifyRequested():
            return notify.dead_letter(services.budgets, message, datetime.now(UTC))
        case BudgetTick():
            log.error(
                "a budget tick was dead-lettered; the next tick checks again",
                extra={"fields": {"workspace": message.workspace_id}},
            )
            return "a dead budget tick: logged"
        case StepRequested():
            return services.pipeline.dead_letter(message).action
        case UsageBatch():
            services.usage.keep_dead_batch(
                envelope.message.message_id, message.model_dump(mode="json")
            )
            log.error(
                "a usage batch was dead-lettered; kept for replay",
                extra={"fields": {"batch_id": message.batch_id, "records": len(message.records)}},
            )
            return "kept the dead usage batch"
        case None:
            services.usage.keep_dead_batch(
                envelope.message.message_id,
                {"attributes": envelope.message.attributes, "data": envelope.message.data},
            )
            log.error(
                "a dead letter of unknown kind was kept",
                extra={"fields": {"kind": envelope.message.attributes.get("kind")}},
            )
            return "kept an unknown dead letter"
        case _:
            assert_never(message)


# triage_worker, data_worker and optimization_worker alike.
STEP_WORKER: Final = PushWorker(lambda envelope: envelope.decode(StepRequested), _run_step)
USAGE_AGGREGATOR: Final = PushWorker(lambda envelope: envelope.decode(UsageBatch), _aggregate)
DEADLETTER_WORKER: Final = PushWorker(_dead_letter_of, _keep_dead_letter)
