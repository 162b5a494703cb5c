"""What every edge shares (``shared.edge``, with the close codes of ``shared.errors``): bearer
tokens, which rate limit applies, what a failure becomes, the size limits, the push
workers' reply and log context."""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest
from google.api_core.exceptions import DeadlineExceeded, RetryError, ServiceUnavailable

from shared import errors
from shared.config import Settings
from shared.edge import (
    CHAT_LIMIT,
    MAX_BODY_BYTES,
    MAX_FRAME_BYTES,
    MAX_INGEST_BODY_BYTES,
    MAX_INGEST_RECORDS,
    HttpRequest,
    PushWorker,
    bearer_token,
    error_response,
    fault_of,
    per_minute,
    serve_push,
    size_text,
    work_context,
)
from shared.endpoints import ENDPOINTS, STEP_WORKER
from shared.errors import (
    ApexError,
    CloseCode,
    Forbidden,
    Internal,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ThreadBusy,
    Unauthenticated,
    Unavailable,
    close_code,
)
from shared.logging import CloudLoggingFormatter, log_context
from shared.models.messages import PushEnvelope, StepRequested, UsageBatch
from shared.openapi import openapi_document
from shared.services import Services

Lines = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def logged() -> Iterator[Lines]:
    """The JSON lines Apex's edge logged so far, formatted as they were written (in their
    log context), as the functions' and the relay's handler formats them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(CloudLoggingFormatter("demo-apex"))
    edge = logging.getLogger("shared.edge")
    edge.addHandler(handler)
    edge.setLevel(logging.INFO)
    try:
        yield lambda: [json.loads(text) for text in stream.getvalue().splitlines()]
    finally:
        edge.removeHandler(handler)
        edge.setLevel(logging.NOTSET)


# --- bearer tokens ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (None, None),  # no header: the relay waits for an auth frame, HTTP refuses
        ("Bearer abc.def", "abc.def"),
        ("bearer   abc.def  ", "abc.def"),
        ("BEARER abc", "abc"),
        ("Bearer", ""),
        ("Bearer    ", ""),
        ("Basic dXNlcjpwYXNz", ""),  # not a bearer token: refused like a bad one
        ("", ""),
    ],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


# --- rate limits ------------------------------------------------------------------------------


def test_each_limit_kind_reads_its_own_setting() -> None:
    settings = Settings.from_env(
        {
            "GOOGLE_CLOUD_PROJECT": "demo-apex",
            "APEX_FUNCTION_CALLS_PER_MINUTE": "7",
            "APEX_CHAT_MESSAGES_PER_MINUTE": "3",
        }
    )
    assert per_minute(settings, "function_calls") == 7
    assert per_minute(settings, "chat_messages") == 3
    assert per_minute(settings, CHAT_LIMIT) == 3


def test_a_chat_message_counts_against_the_chat_limit_every_other_call_the_functions_one() -> None:
    limits = {name: endpoint.rate_limit for name, endpoint in ENDPOINTS.items()}
    assert limits.pop("agents_execute") == CHAT_LIMIT == "chat_messages"
    assert set(limits.values()) == {"function_calls"}


# --- faults -----------------------------------------------------------------------------------


def test_an_apex_error_is_itself() -> None:
    error = NotFound("no such run")
    assert fault_of(error) is error


@pytest.mark.parametrize(
    "error",
    [
        ServiceUnavailable("down"),  # type: ignore[no-untyped-call]
        DeadlineExceeded("slow"),  # type: ignore[no-untyped-call]
        RetryError("gave up", cause=None),  # type: ignore[no-untyped-call]
    ],
)
def test_a_dependency_that_did_not_answer_is_unavailable_with_retry_after(
    error: Exception, logged: Lines
) -> None:
    fault = fault_of(error, session_id="s-1")
    assert isinstance(fault, Unavailable)
    [line] = logged()
    assert (line["severity"], line["message"]) == ("WARNING", "a dependency is unavailable")
    assert line["session_id"] == "s-1"
    response = error_response(fault)
    assert response.status == 503
    assert response.headers == {"Retry-After": "5"}
    assert response.body == {
        "error": {"code": "unavailable", "message": "a dependency did not answer in time; retry"}
    }


def test_any_other_failure_is_internal_with_the_reference_of_its_logged_stack(
    logged: Lines,
) -> None:
    try:
        raise ValueError("a bug")
    except ValueError as e:
        fault = fault_of(e, "reading a run failed", session_id="s-1")
    assert isinstance(fault, Internal)
    response = error_response(fault)
    assert response.status == 500
    assert response.headers == {}
    assert response.body["error"]["code"] == "internal"
    reference = response.body["error"]["message"].removeprefix("internal error; reference ")
    assert len(reference) == 12
    [line] = logged()
    assert line["severity"] == "ERROR"
    assert line["message"] == "reading a run failed"
    assert (line["reference"], line["session_id"]) == (reference, "s-1")
    assert "ValueError: a bug" in line["stack_trace"]


# --- close codes ------------------------------------------------------------------------------


def test_close_codes_are_rfc_6455s() -> None:
    assert {c.name: int(c) for c in CloseCode} == {
        "ABNORMAL": 1006,
        "POLICY_VIOLATION": 1008,
        "MESSAGE_TOO_BIG": 1009,
        "INTERNAL_ERROR": 1011,
        "SERVICE_RESTART": 1012,
        "TRY_AGAIN_LATER": 1013,
    }


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (Unauthenticated("the ID token has expired"), 1008),
        (Forbidden("a fresh token must be the same user's"), 1008),
        (PayloadTooLarge("too big"), 1009),
        (RateLimited("slow down"), 1013),
        (Unavailable("down"), 1013),
        (Internal("internal error; reference x"), 1011),
        (ApexError("not classified"), 1011),
    ],
)
def test_an_error_that_ends_a_socket_closes_it_with_its_code(error: ApexError, code: int) -> None:
    assert close_code(error) == code


def test_every_error_of_the_vocabulary_has_a_close_code_and_an_http_status() -> None:
    kinds = [
        kind
        for kind in vars(errors).values()
        if isinstance(kind, type) and issubclass(kind, ApexError)
    ]
    assert len(kinds) >= 14
    for kind in kinds:
        error = kind("x")
        assert close_code(error) in CloseCode
        assert 400 <= error.http_status < 600
        # 4xx is the client's doing, 5xx Apex's or a dependency's; the close says the same.
        if close_code(error) == CloseCode.INTERNAL_ERROR:
            assert error.http_status == 500, kind
    assert close_code(ThreadBusy("busy")) == CloseCode.POLICY_VIOLATION


# --- size limits ------------------------------------------------------------------------------


def test_the_size_limits_and_where_they_apply() -> None:
    assert (MAX_BODY_BYTES, MAX_INGEST_BODY_BYTES, MAX_FRAME_BYTES) == (2**20, 5 * 2**20, 2**16)
    bodies = {name: endpoint.max_body for name, endpoint in ENDPOINTS.items()}
    assert bodies.pop("usage_ingest") == MAX_INGEST_BODY_BYTES
    assert bodies.pop("otlp_ingest") == MAX_INGEST_BODY_BYTES  # as sent; 32 MiB inflated
    assert set(bodies.values()) == {MAX_BODY_BYTES}
    summary = openapi_document()["paths"]["/usage_ingest"]["post"]["summary"]
    assert f"{MAX_INGEST_RECORDS:,} records, 5 MiB" in summary


@pytest.mark.parametrize(
    ("size", "text"),
    [(5 * 2**20, "5 MiB"), (2**20, "1 MiB"), (2**16, "64 KiB"), (1500, "1,500 bytes")],
)
def test_size_text(size: int, text: str) -> None:
    assert size_text(size) == text


# --- push workers -----------------------------------------------------------------------------

# The workers below never reach their services: the reply is decided before, or by them.
NO_SERVICES = cast(Services, object())


def _push(data: Any, attributes: dict[str, str] | None = None) -> bytes:
    return json.dumps(
        {
            "message": {
                "data": base64.b64encode(json.dumps(data).encode()).decode(),
                "attributes": attributes or {"kind": "run_step"},
                "messageId": "m-1",
            },
            "subscription": "projects/p/subscriptions/s",
            "deliveryAttempt": 1,
        }
    ).encode()


def _post(body: bytes, method: str = "POST") -> HttpRequest:
    return HttpRequest(method=method, headers={}, query={}, body=body)


def _failing(error: Exception) -> PushWorker[StepRequested]:
    def run(services: Services, message: StepRequested, envelope: PushEnvelope) -> str:
        raise error

    return PushWorker(lambda envelope: envelope.decode(StepRequested), run)


STEP = {"run_id": "r-1", "uid": "u-1", "step": "data"}


def test_a_worker_takes_only_post() -> None:
    response = serve_push(STEP_WORKER, _post(b"", "GET"), NO_SERVICES)
    assert (response.status, response.body, response.headers) == (405, None, {"Allow": "POST"})


def test_a_body_that_is_not_a_push_envelope_is_refused_so_pubsub_dead_letters_it() -> None:
    response = serve_push(STEP_WORKER, _post(b'{"message": {}}'), NO_SERVICES)
    assert response.status == 422
    assert response.body["error"]["code"] == "validation_failed"


def test_a_message_that_is_not_the_workers_is_refused() -> None:
    response = serve_push(STEP_WORKER, _post(_push({"run_id": "r-1"})), NO_SERVICES)
    assert response.status == 400
    assert response.body["error"]["code"] == "bad_request"


def test_a_worker_whose_dependency_is_down_answers_503_so_pubsub_retries(
    logged: Lines,
) -> None:
    worker = _failing(DeadlineExceeded("firestore is slow"))  # type: ignore[no-untyped-call]
    response = serve_push(worker, _post(_push(STEP)), NO_SERVICES)
    assert (response.status, response.headers) == (503, {"Retry-After": "5"})
    assert response.body["error"]["code"] == "unavailable"
    [line] = logged()
    assert (line["run_id"], line["uid"], line["step"]) == ("r-1", "u-1", "data")


def test_a_worker_that_fails_answers_500_and_logs_it_in_its_messages_context(
    logged: Lines,
) -> None:
    response = serve_push(_failing(KeyError("bug")), _post(_push(STEP)), NO_SERVICES)
    assert response.status == 500
    reference = response.body["error"]["message"].removeprefix("internal error; reference ")
    [line] = logged()
    assert (line["reference"], line["severity"]) == (reference, "ERROR")
    assert (line["run_id"], line["uid"], line["step"]) == ("r-1", "u-1", "data")
    assert "KeyError: 'bug'" in line["stack_trace"]


def test_a_refused_message_is_logged_and_its_status_returned(logged: Lines) -> None:
    worker = _failing(NotFound("no such thing"))
    response = serve_push(worker, _post(_push(STEP)), NO_SERVICES)
    assert response.status == 404
    [line] = logged()
    assert (line["message"], line["error"], line["step"]) == (
        "push message refused",
        "no such thing",
        "data",
    )


# --- log context ------------------------------------------------------------------------------


def _line() -> dict[str, Any]:
    record = logging.LogRecord("apex", logging.INFO, __file__, 1, "something", (), None)
    parsed: dict[str, Any] = json.loads(CloudLoggingFormatter("demo-apex").format(record))
    return parsed


def _context(line: dict[str, Any]) -> tuple[Any, Any, Any]:
    return line.get("run_id"), line.get("uid"), line.get("step")


def test_log_context_carries_the_step() -> None:
    with log_context(run_id="r-1", uid="u-1", step="triage"):
        with log_context(step="data"):
            assert _context(_line()) == ("r-1", "u-1", "data")
        assert _context(_line()) == ("r-1", "u-1", "triage")
    assert _context(_line()) == (None, None, None)


def test_a_workers_message_names_its_context() -> None:
    step = StepRequested(run_id="r-1", uid="u-1", step="optimization")
    batch = UsageBatch(batch_id="b-1", workspace_id="ws-1", uid="u-2", records=[{"record_id": "x"}])
    with work_context(step):
        assert _context(_line()) == ("r-1", "u-1", "optimization")
    with work_context(batch):
        assert _context(_line()) == (None, "u-2", None)
    with work_context(None):
        assert _context(_line()) == (None, None, None)
