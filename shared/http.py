"""What every public function shares, independent of Flask: CORS, method, the credential and
the active workspace (``shared.access``), rate limits, body limits, content type, JSON
parsing, pydantic validation, and the JSON error body (with what every edge shares, from
``shared.edge``).

An entry point turns its framework's request into an ``HttpRequest``, calls ``serve`` with
its ``Endpoint``, and writes the ``HttpResponse`` back (DESIGN §1: no transport below).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

from pydantic import BaseModel, ValidationError

from shared.access import WORKSPACE_HEADER, workspace_of_header
from shared.auth import Principal
from shared.edge import (
    MAX_BODY_BYTES,
    HttpRequest,
    HttpResponse,
    bearer_token,
    count_call,
    error_response,
    fault_of,
)
from shared.errors import (
    BadRequest,
    MethodNotAllowed,
    PayloadTooLarge,
    Unauthenticated,
    UnsupportedMediaType,
    ValidationFailed,
)
from shared.logging import log_context, trace_id_from_headers
from shared.services import Services
from shared.store.documents import LimitKind
from shared.workspaces import keys
from shared.workspaces.keys import KeyScope
from shared.workspaces.roles import Action

JSON: Final = "application/json"
NDJSON: Final = "application/x-ndjson"
CORS_MAX_AGE_S: Final = "3600"
_M = TypeVar("_M", bound=BaseModel)


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
    max_body: int = MAX_BODY_BYTES
    content_types: frozenset[str] = frozenset({JSON})
    rate_limit: LimitKind = "function_calls"
    # What the call does in the active workspace (the least role it needs: §9).
    action: Action = "read"
    # The API key scope this function accepts (None: ID tokens only, DESIGN §9).
    key_scope: KeyScope | None = None
    # False: the function names workspaces in its paths (`workspaces`), the header is unused.
    workspace_header: bool = True
    # The most a 429/503's Retry-After may say (ingest: OTLP exporters give up after about
    # 10 s, DESIGN §2); None: the wait as it is.
    max_retry_after_s: int | None = None
    # Rewrites each response once made (otlp_ingest: errors as the google.rpc.Status OTLP
    # clients read); None: Apex's JSON as is.
    reply: Callable[[HttpRequest, HttpResponse], HttpResponse] | None = None


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
    cap, retry_after = endpoint.max_retry_after_s, response.headers.get("Retry-After")
    if cap is not None and retry_after is not None and int(retry_after) > cap:
        response.headers["Retry-After"] = str(cap)
    return response if endpoint.reply is None else endpoint.reply(request, response)


def _serve(endpoint: Endpoint, request: HttpRequest, services: Services) -> HttpResponse:
    try:
        if request.method not in endpoint.methods:
            allowed = ", ".join(sorted(endpoint.methods))
            error = MethodNotAllowed(f"{request.method} is not allowed; use {allowed}")
            return error_response(error, {"Allow": allowed})
        principal = _principal(endpoint, request, services)
        with log_context(uid=principal.uid, workspace=principal.workspace_id):
            now = datetime.now(UTC)
            if not principal.is_key:
                count_call(services, endpoint.rate_limit, principal.uid, now)
            count_call(services, "workspace_calls", principal.workspace_id, now)
            if request.method in ("POST", "PUT", "PATCH"):
                _check_body(endpoint, request)
            return endpoint.handler(Context(services, principal, request, now))
    except Exception as e:  # noqa: BLE001 - every failure gets its code (shared.edge)
        fault = fault_of(e)
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(fault, Unauthenticated) else {}
        return error_response(fault, headers)


def _principal(endpoint: Endpoint, request: HttpRequest, services: Services) -> Principal:
    token = bearer_token(request.header("authorization"))
    if not token:
        raise Unauthenticated("send a Firebase ID token as `Authorization: Bearer <token>`")
    workspace = (
        workspace_of_header(request.header(WORKSPACE_HEADER)) if endpoint.workspace_header else None
    )
    if keys.is_api_key(token):
        if endpoint.key_scope is None:
            raise Unauthenticated(f"{endpoint.name} does not accept API keys; send an ID token")
        return services.access.key(token, workspace, endpoint.key_scope)
    identity = services.access.identify(token)
    return services.access.enter(identity, workspace, endpoint.action)


def _check_body(endpoint: Endpoint, request: HttpRequest) -> None:
    declared = request.header("content-length")
    if (
        request.truncated
        or len(request.body) > endpoint.max_body
        or (declared is not None and declared.isdigit() and int(declared) > endpoint.max_body)
    ):
        raise PayloadTooLarge(f"the body is over {endpoint.max_body} bytes")
    # DESIGN §2: a POST without a body needs no Content-Type (an action such as accepting
    # an invite); an empty body that says its type is checked like any other.
    if not request.body and not request.content_type:
        return
    if request.content_type not in endpoint.content_types:
        wanted = " or ".join(sorted(endpoint.content_types))
        raise UnsupportedMediaType(f"send {wanted}, not {request.content_type or 'no type'}")


def _cors_headers(request: HttpRequest, services: Services) -> dict[str, str]:
    origin = request.header("origin")
    if origin is None or origin not in services.settings.cors_origins:
        return {}
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Methods": "GET, POST, PUT, PATCH, DELETE, OPTIONS",
        "Access-Control-Allow-Headers": (
            "Authorization, Content-Type, Idempotency-Key, X-Apex-Workspace"
        ),
        "Access-Control-Expose-Headers": "Retry-After",
        "Access-Control-Max-Age": CORS_MAX_AGE_S,
        "Vary": "Origin",
    }
