"""What every public function shares, independent of Flask: CORS, method, auth, rate limit,
body limits, content type, JSON parsing, pydantic validation, and the JSON error body.

An entry point turns its framework's request into an ``HttpRequest``, calls ``serve`` with
its ``Endpoint``, and writes the ``HttpResponse`` back (DESIGN §1: no transport below).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

from google.api_core.exceptions import DeadlineExceeded, RetryError, ServiceUnavailable
from pydantic import BaseModel, ValidationError

from shared.auth import Principal
from shared.errors import (
    ApexError,
    BadRequest,
    Internal,
    MethodNotAllowed,
    PayloadTooLarge,
    Unauthenticated,
    Unavailable,
    UnsupportedMediaType,
    ValidationFailed,
)
from shared.logging import log_context, trace_id_from_headers
from shared.services import Services
from shared.store.documents import LimitKind

log = logging.getLogger(__name__)

MIB: Final = 1024 * 1024
DEFAULT_MAX_BODY: Final = MIB
JSON: Final = "application/json"
NDJSON: Final = "application/x-ndjson"
CORS_MAX_AGE_S: Final = "3600"
_M = TypeVar("_M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    headers: Mapping[str, str]  # lower-case names
    query: Mapping[str, str]
    body: bytes
    # Whether the body was longer than the endpoint's limit (the adapter stops reading there).
    truncated: bool = False

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


@dataclass(frozen=True, slots=True)
class Context:
    services: Services
    principal: Principal
    request: HttpRequest
    now: datetime

    def parse(self, model: type[_M]) -> _M:
        """The JSON body as ``model``; 400 if it is not JSON, 422 naming the bad field."""
        try:
            data = json.loads(self.request.body)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise BadRequest(f"the body is not valid JSON: {e}") from e
        return validate(model, data)

    def query(self, model: type[_M]) -> _M:
        return validate(model, dict(self.request.query))


def validate(model: type[_M], data: Any) -> _M:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ValidationFailed(describe(e)) from e


def describe(error: ValidationError) -> str:
    """``field.path: message`` for each problem (at most three), so the client can fix it."""
    parts = []
    for item in error.errors()[:3]:
        where = ".".join(str(p) for p in item["loc"]) or "body"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


Handler = Callable[[Context], HttpResponse]


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str
    methods: frozenset[str]
    handler: Handler
    max_body: int = DEFAULT_MAX_BODY
    content_types: frozenset[str] = frozenset({JSON})
    rate_limit: LimitKind = "function_calls"


def ok(model: BaseModel, status: int = 200) -> HttpResponse:
    return HttpResponse(status, model.model_dump(mode="json"))


def serve(endpoint: Endpoint, request: HttpRequest, services: Services) -> HttpResponse:
    cors = _cors_headers(request, services)
    if request.method == "OPTIONS":
        return HttpResponse(204, None, cors)
    trace = trace_id_from_headers(dict(request.headers))
    with log_context(trace=trace):
        response = _serve(endpoint, request, services)
    response.headers.update(cors)
    return response


def _serve(endpoint: Endpoint, request: HttpRequest, services: Services) -> HttpResponse:
    try:
        if request.method not in endpoint.methods:
            allowed = ", ".join(sorted(endpoint.methods))
            error = MethodNotAllowed(f"{request.method} is not allowed; use {allowed}")
            return _error(error, {"Allow": allowed})
        principal = services.verifier.verify(_bearer(request))
        with log_context(uid=principal.uid):
            now = datetime.now(UTC)
            limit = (
                services.settings.function_calls_per_minute
                if endpoint.rate_limit == "function_calls"
                else services.settings.chat_messages_per_minute
            )
            services.limiter.hit(endpoint.rate_limit, principal.uid, limit, now)
            if request.method in ("POST", "PUT", "PATCH"):
                _check_body(endpoint, request)
            return endpoint.handler(Context(services, principal, request, now))
    except ApexError as e:
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(e, Unauthenticated) else {}
        return _error(e, headers)
    except (ServiceUnavailable, DeadlineExceeded, RetryError) as e:
        log.warning("a dependency is unavailable", extra={"fields": {"error": str(e)}})
        return _error(Unavailable("a dependency did not answer in time; retry", retry_after_s=5))
    except Exception:
        reference = uuid.uuid4().hex[:12]
        log.exception("internal error", extra={"fields": {"reference": reference}})
        return _error(Internal(f"internal error; reference {reference}"))


def _bearer(request: HttpRequest) -> str:
    value = request.header("authorization") or ""
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("send a Firebase ID token as `Authorization: Bearer <token>`")
    return token.strip()


def _check_body(endpoint: Endpoint, request: HttpRequest) -> None:
    declared = request.header("content-length")
    if (
        request.truncated
        or len(request.body) > endpoint.max_body
        or (declared is not None and declared.isdigit() and int(declared) > endpoint.max_body)
    ):
        raise PayloadTooLarge(f"the body is over {endpoint.max_body} bytes")
    if request.content_type not in endpoint.content_types:
        wanted = " or ".join(sorted(endpoint.content_types))
        raise UnsupportedMediaType(f"send {wanted}, not {request.content_type or 'no type'}")


def _error(error: ApexError, headers: dict[str, str] | None = None) -> HttpResponse:
    extra = dict(headers or {})
    if error.retry_after_s is not None:
        extra["Retry-After"] = str(error.retry_after_s)
    return HttpResponse(error.http_status, error.body(), extra)


def _cors_headers(request: HttpRequest, services: Services) -> dict[str, str]:
    origin = request.header("origin")
    if origin is None or origin not in services.settings.cors_origins:
        return {}
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
        "Access-Control-Allow-Headers": "Authorization, Content-Type, Idempotency-Key",
        "Access-Control-Expose-Headers": "Retry-After",
        "Access-Control-Max-Age": CORS_MAX_AGE_S,
        "Vary": "Origin",
    }
