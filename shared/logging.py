"""Structured JSON logs in the shape Cloud Logging reads from stdout.

Each line carries `severity`, `message`, the trace (`logging.googleapis.com/trace`), and the
run id, uid, workspace and pipeline step of the request or message being served, taken from context
variables that the entry points set once per request (``shared.edge``). Secrets never go
into a log line: nothing here logs request bodies or headers.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

_run_id: ContextVar[str | None] = ContextVar("run_id", default=None)
_uid: ContextVar[str | None] = ContextVar("uid", default=None)
_trace: ContextVar[str | None] = ContextVar("trace", default=None)
_step: ContextVar[str | None] = ContextVar("step", default=None)
_workspace: ContextVar[str | None] = ContextVar("workspace", default=None)

TRACE_FIELD = "logging.googleapis.com/trace"
_SEVERITY = {
    logging.DEBUG: "DEBUG",
    logging.INFO: "INFO",
    logging.WARNING: "WARNING",
    logging.ERROR: "ERROR",
    logging.CRITICAL: "CRITICAL",
}


class CloudLoggingFormatter(logging.Formatter):
    def __init__(self, project: str) -> None:
        super().__init__()
        self.project = project

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": _SEVERITY.get(record.levelno, "DEFAULT"),
            "message": record.getMessage(),
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "logger": record.name,
        }
        if trace := _trace.get():
            entry[TRACE_FIELD] = f"projects/{self.project}/traces/{trace}"
        if run_id := _run_id.get():
            entry["run_id"] = run_id
        if uid := _uid.get():
            entry["uid"] = uid
        if step := _step.get():
            entry["step"] = step
        if workspace := _workspace.get():
            entry["workspace"] = workspace
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["stack_trace"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(project: str, level: int = logging.INFO) -> None:
    """Route every logger to one JSON handler on stdout (idempotent)."""
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(CloudLoggingFormatter(project))
    root.handlers = [handler]
    root.setLevel(level)


def trace_id_from_headers(headers: dict[str, str]) -> str | None:
    """The trace id from `traceparent` (W3C) or `X-Cloud-Trace-Context` (Google's front end)."""
    if traceparent := headers.get("traceparent"):
        parts = traceparent.split("-")
        if len(parts) == 4 and len(parts[1]) == 32:
            return parts[1]
    if cloud := headers.get("x-cloud-trace-context"):
        trace = cloud.split("/", 1)[0]
        if trace and len(trace) <= 64 and trace.isalnum():
            return trace
    return None


@contextmanager
def log_context(
    *,
    run_id: str | None = None,
    uid: str | None = None,
    trace: str | None = None,
    step: str | None = None,
    workspace: str | None = None,
) -> Iterator[None]:
    """Attach run id, uid, trace, step and workspace to every line logged inside the block
    (a value left out keeps what an enclosing block set)."""
    tokens = []
    for var, value in (
        (_run_id, run_id),
        (_uid, uid),
        (_trace, trace),
        (_step, step),
        (_workspace, workspace),
    ):
        if value is not None:
            tokens.append((var, var.set(value)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)
