from __future__ import annotations

import json
import logging

import pytest

from shared.logging import TRACE_FIELD, CloudLoggingFormatter, log_context, trace_id_from_headers


def _line(record_msg: str, **fields: object) -> dict[str, object]:
    record = logging.LogRecord("apex", logging.WARNING, __file__, 1, record_msg, (), None)
    if fields:
        record.fields = fields
    parsed: dict[str, object] = json.loads(CloudLoggingFormatter("demo-apex").format(record))
    return parsed


def test_a_line_has_severity_message_and_the_request_context() -> None:
    with log_context(run_id="r-1", uid="u-1", trace="abc123"):
        line = _line("step claimed", step="triage")
    assert line["severity"] == "WARNING"
    assert line["message"] == "step claimed"
    assert line["run_id"] == "r-1"
    assert line["uid"] == "u-1"
    assert line[TRACE_FIELD] == "projects/demo-apex/traces/abc123"
    assert line["step"] == "triage"


def test_context_ends_with_the_block() -> None:
    with log_context(run_id="r-1"):
        pass
    assert "run_id" not in _line("after")


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (
            {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
            "4bf92f3577b34da6a3ce929d0e0e4736",
        ),
        (
            {"x-cloud-trace-context": "105445aa7843bc8bf206b12000100000/1;o=1"},
            "105445aa7843bc8bf206b12000100000",
        ),
        ({"x-cloud-trace-context": "../etc;o=1"}, None),
        ({}, None),
    ],
)
def test_trace_ids_from_headers(headers: dict[str, str], expected: str | None) -> None:
    assert trace_id_from_headers(headers) == expected
