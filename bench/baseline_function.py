"""The baseline: a functions-framework function that does nothing, served the same way."""

from __future__ import annotations

import flask
import functions_framework


@functions_framework.http
def hello(request: flask.Request) -> flask.Response:
    return flask.Response('{"ok":true}', mimetype="application/json")
