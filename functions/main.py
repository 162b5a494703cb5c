"""Cloud Functions entry points: one functions-framework target per function (DESIGN §2).

Thin on purpose: each target hands its Flask request to ``shared`` and writes back what it
returns. Public functions go through ``shared.http.serve``; workers receive the standard
Pub/Sub push envelope (their own push subscriptions, not Eventarc) and go through
``shared.edge.serve_push``: 204 to ack, or an error status so Pub/Sub redelivers and, after
5 attempts, dead-letters.
"""

from __future__ import annotations

import json
from typing import TypeVar

import flask
import functions_framework

from shared.budgets.workers import BUDGET_WORKER, NOTIFY_WORKER
from shared.edge import (
    HttpRequest,
    HttpResponse,
    PushWorker,
    WorkMessage,
    serve_push,
)
from shared.endpoints import DEADLETTER_WORKER, ENDPOINTS, STEP_WORKER, USAGE_AGGREGATOR
from shared.http import serve
from shared.services import services

_W = TypeVar("_W", bound=WorkMessage)


def _public(name: str, request: flask.Request) -> flask.Response:
    endpoint = ENDPOINTS[name]
    body = request.stream.read(endpoint.max_body + 1)
    adapted = HttpRequest(
        method=request.method,
        headers=_headers(request),
        query=request.args.to_dict(),
        body=body,
        truncated=len(body) > endpoint.max_body,
        path=request.path or "/",
    )
    return _flask(serve(endpoint, adapted, services()))


def _worker(worker: PushWorker[_W], request: flask.Request) -> flask.Response:
    adapted = HttpRequest(
        method=request.method, headers=_headers(request), query={}, body=request.get_data()
    )
    return _flask(serve_push(worker, adapted, services()))


def _headers(request: flask.Request) -> dict[str, str]:
    return {k.lower(): v for k, v in request.headers.items()}


def _flask(response: HttpResponse) -> flask.Response:
    if isinstance(response.body, bytes):  # already encoded (otlp_ingest); its headers say how
        return flask.Response(response.body, status=response.status, headers=response.headers)
    body = "" if response.body is None else json.dumps(response.body, separators=(",", ":"))
    return flask.Response(
        body,
        status=response.status,
        headers=response.headers,
        mimetype="application/json" if response.body is not None else None,
    )


@functions_framework.http
def agents_execute(request: flask.Request) -> flask.Response:
    return _public("agents_execute", request)


@functions_framework.http
def agents_triage(request: flask.Request) -> flask.Response:
    return _public("agents_triage", request)


@functions_framework.http
def agents_data(request: flask.Request) -> flask.Response:
    return _public("agents_data", request)


@functions_framework.http
def agents_optimization(request: flask.Request) -> flask.Response:
    return _public("agents_optimization", request)


@functions_framework.http
def usage_ingest(request: flask.Request) -> flask.Response:
    return _public("usage_ingest", request)


@functions_framework.http
def otlp_ingest(request: flask.Request) -> flask.Response:
    return _public("otlp_ingest", request)


@functions_framework.http
def runs_get(request: flask.Request) -> flask.Response:
    return _public("runs_get", request)


@functions_framework.http
def threads_get(request: flask.Request) -> flask.Response:
    return _public("threads_get", request)


@functions_framework.http
def workspaces(request: flask.Request) -> flask.Response:
    return _public("workspaces", request)


@functions_framework.http
def triage_worker(request: flask.Request) -> flask.Response:
    return _worker(STEP_WORKER, request)


@functions_framework.http
def data_worker(request: flask.Request) -> flask.Response:
    return _worker(STEP_WORKER, request)


@functions_framework.http
def optimization_worker(request: flask.Request) -> flask.Response:
    return _worker(STEP_WORKER, request)


@functions_framework.http
def usage_aggregator(request: flask.Request) -> flask.Response:
    return _worker(USAGE_AGGREGATOR, request)


@functions_framework.http
def deadletter_worker(request: flask.Request) -> flask.Response:
    return _worker(DEADLETTER_WORKER, request)


@functions_framework.http
def budget_worker(request: flask.Request) -> flask.Response:
    return _worker(BUDGET_WORKER, request)


@functions_framework.http
def notify_worker(request: flask.Request) -> flask.Response:
    return _worker(NOTIFY_WORKER, request)
