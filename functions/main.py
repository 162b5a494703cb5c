"""Cloud Functions entry points: one functions-framework target per function (DESIGN §2).

Thin on purpose: each target hands its Flask request to ``shared`` and writes back what it
returns. Public functions go through ``shared.http.serve``; workers receive the standard
Pub/Sub push envelope (their own push subscriptions, not Eventarc) and answer 204 to ack,
or fail (500) so Pub/Sub redelivers and, after 5 attempts, dead-letters.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import flask
import functions_framework

from shared.endpoints import ENDPOINTS, step_worker
from shared.endpoints import deadletter_worker as _deadletter
from shared.endpoints import usage_aggregator as _aggregate
from shared.errors import ApexError
from shared.http import HttpRequest, HttpResponse, serve
from shared.services import Services, services

log = logging.getLogger("apex.functions")


def _public(name: str, request: flask.Request) -> flask.Response:
    endpoint = ENDPOINTS[name]
    body = request.stream.read(endpoint.max_body + 1)
    adapted = HttpRequest(
        method=request.method,
        headers={k.lower(): v for k, v in request.headers.items()},
        query=request.args.to_dict(),
        body=body,
        truncated=len(body) > endpoint.max_body,
    )
    return _flask(serve(endpoint, adapted, services()))


def _flask(response: HttpResponse) -> flask.Response:
    body = "" if response.body is None else json.dumps(response.body, separators=(",", ":"))
    return flask.Response(
        body,
        status=response.status,
        headers=response.headers,
        mimetype="application/json" if response.body is not None else None,
    )


def _worker(work: Callable[[Services, bytes], str], request: flask.Request) -> flask.Response:
    if request.method != "POST":
        return flask.Response(status=405, headers={"Allow": "POST"})
    try:
        action = work(services(), request.get_data())
    except ApexError as e:
        # A malformed message: refused, so Pub/Sub retries it and then dead-letters it.
        log.error("push message refused", extra={"fields": {"error": e.message}})
        return _flask(HttpResponse(e.http_status, e.body()))
    log.info(action)
    return flask.Response(status=204)


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
def runs_get(request: flask.Request) -> flask.Response:
    return _public("runs_get", request)


@functions_framework.http
def threads_get(request: flask.Request) -> flask.Response:
    return _public("threads_get", request)


@functions_framework.http
def triage_worker(request: flask.Request) -> flask.Response:
    return _worker(step_worker, request)


@functions_framework.http
def data_worker(request: flask.Request) -> flask.Response:
    return _worker(step_worker, request)


@functions_framework.http
def optimization_worker(request: flask.Request) -> flask.Response:
    return _worker(step_worker, request)


@functions_framework.http
def usage_aggregator(request: flask.Request) -> flask.Response:
    return _worker(_aggregate, request)


@functions_framework.http
def deadletter_worker(request: flask.Request) -> flask.Response:
    return _worker(_deadletter, request)
