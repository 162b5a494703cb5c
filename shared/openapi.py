"""The OpenAPI 3.1 document of the public HTTP functions, generated from the pydantic models
that validate them (so the document cannot drift from what the functions accept).

Each function is its own Cloud Function at its own URL; the document names them as paths
``/{function}`` (the shape the optional load balancer serves under ``/api/agents/``).
"""

from __future__ import annotations

from typing import Any, Final

from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from pydantic import BaseModel, ConfigDict
from pydantic.json_schema import models_json_schema

from shared.endpoints import RunQuery, ThreadQuery
from shared.ingest import otlp_schema
from shared.ingest.otlp import MAX_DECOMPRESSED_BYTES, TRACES_PATH
from shared.limits import (
    INGEST_MAX_RETRY_AFTER_S,
    MAX_INGEST_BODY_BYTES,
    MAX_INGEST_RECORDS,
    size_text,
)
from shared.models.api import (
    DataRequest,
    ExecuteAccepted,
    ExecuteRequest,
    ExecuteResponse,
    IngestResponse,
    OptimizationRequest,
    RunResponse,
    ThreadList,
    ThreadView,
    TriageRequest,
)
from shared.models.budgets import (
    BudgetChangeRequest,
    BudgetCreated,
    BudgetList,
    BudgetRequest,
    NotificationList,
    NotificationsQuery,
    ReadMarked,
    ReadRequest,
    WebhookSecretView,
)
from shared.models.findings import DataReport, OptimizationReport
from shared.models.triage import TriageResponse
from shared.models.usage import OtelSpanIn, PlainUsageRecordIn
from shared.models.workspaces import (
    AcceptRequest,
    AuditList,
    AuditQuery,
    CreateWorkspaceRequest,
    InviteCreated,
    InviteList,
    InviteRequest,
    KeyCreated,
    KeyList,
    KeyRequest,
    MemberList,
    MemberView,
    NoQuery,
    PriceList,
    PricesRequest,
    RoleRequest,
    SettingsRequest,
    SettingsView,
    WorkspaceList,
    WorkspaceView,
)

REF: Final = "#/components/schemas/{model}"


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str
    message: str


class ErrorBody(BaseModel):
    """``{"error": {"code", "message"}}`` (DESIGN §2)."""

    model_config = ConfigDict(extra="forbid")

    error: ErrorDetail


_ERRORS: Final = {
    "400": "malformed request (not JSON, not UTF-8)",
    "401": "no, invalid or expired ID token",
    "403": "the caller's role does not allow this",
    "404": "no such resource for this user",
    "405": "method not allowed",
    "409": "conflict",
    "410": "gone (an expired invite)",
    "413": "body over its limit",
    "415": "unsupported content type",
    "422": "validation failed (the message names the field)",
    "429": "rate limited (see Retry-After)",
    "503": "a dependency is unavailable; retry",
    "500": "internal error (the message carries a reference id)",
}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _json(model: type[BaseModel]) -> dict[str, Any]:
    return {"application/json": {"schema": _ref(model)}}


def _responses(ok: dict[str, tuple[str, type[BaseModel]]], errors: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {
        code: {"description": text, "content": _json(model)} for code, (text, model) in ok.items()
    }
    for code in [*errors, "401", "405", "429", "500", "503"]:
        out[code] = {"description": _ERRORS[code], "content": _json(ErrorBody)}
    return out


def _post(
    summary: str,
    body: dict[str, Any],
    ok: dict[str, tuple[str, type[BaseModel]]],
    extra: list[str],
) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "requestBody": {"required": True, "content": body},
            "responses": _responses(ok, ["400", "413", "415", "422", *extra]),
        }
    }


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema()
    required = set(schema.get("required", []))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": prop}
        for name, prop in schema["properties"].items()
    ]


# --- the workspaces function: paths below its URL (DESIGN §9) ----------------------------------

_ID_SCHEMA: Final = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,128}$"}
# Every path naming a workspace: 404 if the caller is not a member, 403 if the role lacks it.
_IN_WORKSPACE: Final = ["403", "404"]


def _path_parameters(*names: str) -> list[dict[str, Any]]:
    return [{"name": n, "in": "path", "required": True, "schema": _ID_SCHEMA} for n in names]


def _operation(
    summary: str,
    ok: dict[str, tuple[str, type[BaseModel]]] | str,
    errors: list[str],
    body: type[BaseModel] | None = None,
    body_required: bool = True,
    query: type[BaseModel] | None = None,
) -> dict[str, Any]:
    """One operation; ``ok`` a description alone is a 204 without a body."""
    if body is not None:
        errors = [*errors, "400", "413", "415", "422"]
    if query is not None:
        errors = [*errors, "422"]
    done = {"204": {"description": ok}} if isinstance(ok, str) else {}
    responses = _responses({} if isinstance(ok, str) else ok, sorted(set(errors)))
    operation: dict[str, Any] = {"summary": summary, "responses": {**done, **responses}}
    if body is not None:
        operation["requestBody"] = {"required": body_required, "content": _json(body)}
    if query is not None:
        operation["parameters"] = _query_parameters(query)
    return operation


def _workspaces_paths() -> dict[str, Any]:
    ws = "/workspaces/{workspace_id}"
    return {
        "/workspaces": {
            "get": _operation(
                "The caller's workspaces, each with their role",
                {"200": ("the workspaces", WorkspaceList)}, [], query=NoQuery,
            ),
            "post": _operation(
                "Create a team workspace; the caller is its owner",
                {"201": ("created", WorkspaceView)}, ["409"], body=CreateWorkspaceRequest,
            ),
        },
        "/workspaces/invites/{invite_id}/accept": {
            "parameters": _path_parameters("invite_id"),
            "post": _operation(
                "Accept an invite addressed to the caller's verified email",
                {"200": ("joined", WorkspaceView)}, ["403", "404", "409", "410"],
                body=AcceptRequest, body_required=False,
            ),
        },
        f"{ws}/members": {
            "parameters": _path_parameters("workspace_id"),
            "get": _operation(
                "The workspace's members (any member)",
                {"200": ("the members", MemberList)}, _IN_WORKSPACE, query=NoQuery,
            ),
        },
        f"{ws}/members/{{uid}}": {
            "parameters": _path_parameters("workspace_id", "uid"),
            "patch": _operation(
                "Change a member's role (admin; owner to grant or take away owner)",
                {"200": ("the member", MemberView)}, [*_IN_WORKSPACE, "409"], body=RoleRequest,
            ),
            "delete": _operation(
                "Remove a member (admin), or leave (oneself); a workspace keeps an owner",
                "removed", [*_IN_WORKSPACE, "409"],
            ),
        },
        f"{ws}/invites": {
            "parameters": _path_parameters("workspace_id"),
            "get": _operation(
                "Pending invites (admin)", {"200": ("the invites", InviteList)}, _IN_WORKSPACE,
                query=NoQuery,
            ),
            "post": _operation(
                "Invite by email for 7 days (admin; never more than the inviter's role)",
                {"201": ("invited", InviteCreated)}, [*_IN_WORKSPACE, "409"], body=InviteRequest,
            ),
        },
        f"{ws}/invites/{{invite_id}}": {
            "parameters": _path_parameters("workspace_id", "invite_id"),
            "delete": _operation("Withdraw a pending invite (admin)", "deleted", _IN_WORKSPACE),
        },
        f"{ws}/keys": {
            "parameters": _path_parameters("workspace_id"),
            "get": _operation(
                "The workspace's API keys, revoked ones too, never a secret (admin)",
                {"200": ("the keys", KeyList)}, _IN_WORKSPACE, query=NoQuery,
            ),
            "post": _operation(
                "Create an API key; `secret` is the whole credential, shown this once (admin)",
                {"201": ("created", KeyCreated)}, _IN_WORKSPACE, body=KeyRequest,
            ),
        },
        f"{ws}/keys/{{key_id}}": {
            "parameters": _path_parameters("workspace_id", "key_id"),
            "delete": _operation("Revoke an API key (admin)", "revoked", _IN_WORKSPACE),
        },
        f"{ws}/audit": {
            "parameters": _path_parameters("workspace_id"),
            "get": _operation(
                "The audit log, newest first (admin)",
                {"200": ("entries", AuditList)}, _IN_WORKSPACE, query=AuditQuery,
            ),
        },
        f"{ws}/prices": {
            "parameters": _path_parameters("workspace_id"),
            "get": _operation(
                "The workspace's prices (any member; empty: list prices; docs/prices.md)",
                {"200": ("the prices", PriceList)}, _IN_WORKSPACE, query=NoQuery,
            ),
            "put": _operation(
                "Replace the workspace's prices (admin): explicit prices, discounts, private "
                "models, each from its `from` day; every cost is re-priced by them",
                {"200": ("the prices", PriceList)}, _IN_WORKSPACE, body=PricesRequest,
            ),
        },
        f"{ws}/settings": {
            "parameters": _path_parameters("workspace_id"),
            "get": _operation(
                "The workspace's settings (any member)",
                {"200": ("the settings", SettingsView)}, _IN_WORKSPACE, query=NoQuery,
            ),
            "put": _operation(
                "Set the models recommendations may propose (admin; null: any)",
                {"200": ("the settings", SettingsView)}, _IN_WORKSPACE, body=SettingsRequest,
            ),
        },
        **_budget_paths(ws),
    }  # fmt: skip


def _budget_paths(ws: str) -> dict[str, Any]:
    """Budgets, the webhook signing secret and notifications (DESIGN §11, docs/budgets.md)."""
    return {
        f"{ws}/budgets": {
            "parameters": _path_parameters("workspace_id"),
            "get": _operation(
                "Budgets with this UTC month's spend and forecast (any member; the webhook URL "
                "to admins only, its host to everyone)",
                {"200": ("the budgets", BudgetList)}, _IN_WORKSPACE, query=NoQuery,
            ),
            "post": _operation(
                "Create a budget (admin); `webhook_secret` only when this created the "
                "workspace's signing secret (its first webhook)",
                {"201": ("created", BudgetCreated)}, [*_IN_WORKSPACE, "409"], body=BudgetRequest,
            ),
        },
        f"{ws}/budgets/{{budget_id}}": {
            "parameters": _path_parameters("workspace_id", "budget_id"),
            "patch": _operation(
                "Change a budget's fields (admin; `webhook_url: null` removes the webhook)",
                {"200": ("the budget", BudgetCreated)}, _IN_WORKSPACE, body=BudgetChangeRequest,
            ),
            "delete": _operation(
                "Delete a budget (admin); its notifications stay", "deleted", _IN_WORKSPACE
            ),
        },
        f"{ws}/webhook_secret": {
            "parameters": _path_parameters("workspace_id"),
            "post": _operation(
                "Rotate the webhook signing secret (admin); the new one, shown this once",
                {"200": ("the new secret", WebhookSecretView)}, _IN_WORKSPACE,
                body=NoQuery, body_required=False,
            ),
        },
        f"{ws}/notifications": {
            "parameters": _path_parameters("workspace_id"),
            "get": _operation(
                "Alerts, newest first, each with the caller's unread state (any member)",
                {"200": ("the notifications", NotificationList)}, _IN_WORKSPACE,
                query=NotificationsQuery,
            ),
        },
        f"{ws}/notifications/read": {
            "parameters": _path_parameters("workspace_id"),
            "post": _operation(
                "Mark read, for the caller, every alert up to `notification_id` (none: all)",
                {"200": ("the caller's read mark", ReadMarked)}, _IN_WORKSPACE,
                body=ReadRequest, body_required=False,
            ),
        },
    }  # fmt: skip


# --- otlp_ingest: OTLP/HTTP below its URL (DESIGN §10) ------------------------------------------

# What the function answers with a google.rpc.Status (the OTLP specification's error body).
_OTLP_ERRORS: Final = ["400", "401", "403", "404", "405", "413", "415", "429", "500", "503"]


def _otlp_message(descriptor: Any) -> dict[str, Any]:
    """A protobuf message in either OTLP/HTTP encoding (the response uses the request's)."""
    return {
        "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
        "application/json": {"schema": otlp_schema.ref(descriptor)},
    }


def _otlp_paths() -> dict[str, Any]:
    status = _otlp_message(status_pb2.Status.DESCRIPTOR)
    errors = {
        code: {"description": f"{_ERRORS[code]}: a google.rpc.Status", "content": status}
        for code in _OTLP_ERRORS
    }
    return {
        f"/otlp_ingest{TRACES_PATH}": {
            "post": {
                "summary": "OpenTelemetry traces (OTLP/HTTP): GenAI spans become usage records",
                "description": (
                    "An OTLP exporter's ExportTraceServiceRequest, binary protobuf or OTLP/JSON "
                    f"(hex ids), optionally gzip (Content-Encoding), at most "
                    f"{size_text(MAX_INGEST_BODY_BYTES)} as sent and "
                    f"{size_text(MAX_DECOMPRESSED_BYTES)} inflated. Credential: an ingest API "
                    "key or an ID token. Spans that are not model calls are skipped; invalid "
                    "GenAI spans are counted in partialSuccess. Errors are a google.rpc.Status "
                    "in the request's encoding (its ErrorInfo reason is the Apex error code); "
                    f"Retry-After is at most {INGEST_MAX_RETRY_AFTER_S} s. See docs/otlp.md."
                ),
                "requestBody": {
                    "required": True,
                    "content": _otlp_message(ExportTraceServiceRequest.DESCRIPTOR),
                },
                "responses": {
                    "200": {
                        "description": "accepted (rejected GenAI spans in partialSuccess)",
                        "content": _otlp_message(ExportTraceServiceResponse.DESCRIPTOR),
                    },
                    **errors,
                },
            }
        }
    }


def openapi_document() -> dict[str, Any]:
    models: list[type[BaseModel]] = [
        ExecuteRequest, ExecuteResponse, ExecuteAccepted, TriageRequest, TriageResponse,
        DataRequest, DataReport, OptimizationRequest, OptimizationReport, IngestResponse,
        RunResponse, ThreadList, ThreadView, ErrorBody, PlainUsageRecordIn, OtelSpanIn,
        CreateWorkspaceRequest, WorkspaceView, WorkspaceList, MemberList, MemberView,
        InviteRequest, InviteCreated, InviteList, AcceptRequest, RoleRequest, KeyRequest,
        KeyCreated, KeyList, AuditList, BudgetRequest, BudgetChangeRequest, BudgetCreated,
        BudgetList, WebhookSecretView, NotificationList, ReadRequest, ReadMarked,
        PricesRequest, PriceList, SettingsRequest, SettingsView,
    ]  # fmt: skip
    _, schemas = models_json_schema(
        [(m, "validation" if m.__name__.endswith(("Request", "In")) else "serialization")
         for m in models],
        ref_template=REF,
    )  # fmt: skip
    record = {"oneOf": [_ref(PlainUsageRecordIn), _ref(OtelSpanIn)]}
    paths: dict[str, Any] = {
        "/agents_execute": _post(
            "Ask the agents; wait for the answer (200) or get the run to follow (202)",
            _json(ExecuteRequest),
            {"200": ("finished", ExecuteResponse), "202": ("still running", ExecuteAccepted)},
            ["404", "409"],
        ),
        "/agents_triage": _post(
            "Classify a message and route it", _json(TriageRequest),
            {"200": ("triage", TriageResponse)}, [],
        ),
        "/agents_data": _post(
            "Usage in a period: totals, breakdowns, trend, anomalies", _json(DataRequest),
            {"200": ("the data report", DataReport)}, [],
        ),
        "/agents_optimization": _post(
            "Ranked, priced recommendations", _json(OptimizationRequest),
            {"200": ("recommendations", OptimizationReport)}, [],
        ),
        "/usage_ingest": _post(
            "Usage records, a JSON array or NDJSON "
            f"(<= {MAX_INGEST_RECORDS:,} records, {size_text(MAX_INGEST_BODY_BYTES)})",
            {
                "application/json": {"schema": {"type": "array", "items": record}},
                "application/x-ndjson": {"schema": {"type": "string"}},
            },
            {"202": ("accepted (bad records listed in rejected)", IngestResponse)}, [],
        ),
        "/runs_get": {
            "get": {
                "summary": "A run and its events after after_seq",
                "parameters": _query_parameters(RunQuery),
                "responses": _responses({"200": ("the run", RunResponse)}, ["404", "422"]),
            }
        },
        "/threads_get": {
            "get": {
                "summary": "The user's threads, or one thread's messages",
                "parameters": _query_parameters(ThreadQuery),
                "responses": {
                    **_responses({"200": ("threads", ThreadList)}, ["404", "422"]),
                    "200": {
                        "description": "the thread list, or one thread with its messages",
                        "content": {
                            "application/json": {
                                "schema": {"oneOf": [_ref(ThreadList), _ref(ThreadView)]}
                            }
                        },
                    },
                },
            }
        },
        **_workspaces_paths(),
        **_otlp_paths(),
    }  # fmt: skip
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Apex functions",
            "version": "1",
            "description": "Each path is its own Cloud Function (DESIGN §2).",
        },
        "security": [{"firebase": []}],
        "paths": paths,
        "components": {
            "schemas": {
                **schemas["$defs"],
                **otlp_schema.message_schemas(
                    ExportTraceServiceRequest.DESCRIPTOR,
                    ExportTraceServiceResponse.DESCRIPTOR,
                    status_pb2.Status.DESCRIPTOR,
                ),
            },
            "securitySchemes": {
                "firebase": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }
