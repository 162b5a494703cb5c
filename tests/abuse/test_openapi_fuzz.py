"""schemathesis against every public function, from the OpenAPI document generated from the
pydantic models: no 5xx, and every response (including errors) matches the document.

The functions run in-process (functions-framework apps, one per path, as the load balancer
would mount them) on this test's project on the emulators, with a real signed-in user.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flask
import pytest
import schemathesis
from functions_framework import create_app
from google.cloud.pubsub_v1 import PublisherClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from devstack.auth_emulator import SignedIn
from shared.endpoints import ENDPOINTS
from shared.openapi import openapi_document
from shared.topology import load_topology
from tests.support.functions import SOURCE


def _at_root(app: Any) -> Any:
    """A function's URL is its root: ``/agents_data`` reaches its app as ``/``."""

    def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
        environ["PATH_INFO"] = environ.get("PATH_INFO") or "/"
        return app(environ, start_response)

    return wsgi


def _app() -> DispatcherMiddleware:
    root = flask.Flask("openapi")
    root.get("/openapi.json")(lambda: openapi_document())
    mounts = {
        f"/{name}": _at_root(create_app(name, SOURCE))  # type: ignore[no-untyped-call]
        for name in ENDPOINTS
    }
    return DispatcherMiddleware(root, mounts)


APP = _app()
schema = schemathesis.openapi.from_wsgi("/openapi.json", APP)
# usage_ingest's NDJSON body is a string in the document: sent as is, like text/plain (without
# a serializer schemathesis would skip those cases and warn).
schemathesis.serializer.alias("application/x-ndjson", "text/plain")
# otlp_ingest's protobuf body is binary in the document: sent as the bytes generated.
schemathesis.serializer.alias("application/x-protobuf", "application/octet-stream")


@pytest.fixture
def token(
    sign_up: Callable[..., SignedIn],
    monkeypatch: pytest.MonkeyPatch,
    project_id: str,
    publisher: PublisherClient,
) -> str:
    monkeypatch.setenv("APEX_FUNCTION_CALLS_PER_MINUTE", "100000")
    monkeypatch.setenv("APEX_CHAT_MESSAGES_PER_MINUTE", "100000")
    for topic in load_topology().topics:
        publisher.create_topic(name=publisher.topic_path(project_id, topic.name))
    return sign_up(claims={"workspace": "fuzz"}).id_token


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_function_conforms_and_never_fails(case: schemathesis.Case[Any], token: str) -> None:
    if case.path == "/agents_execute" and isinstance(case.body, dict):
        # No workers run here: waiting would only sleep out timeout_s (tested elsewhere).
        case.body["wait"] = False
    case.call_and_validate(
        headers={"Authorization": f"Bearer {token}"},
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
