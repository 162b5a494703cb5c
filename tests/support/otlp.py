"""OTLP requests for tests, built with the ``opentelemetry-proto`` classes an exporter uses,
and the ``google.rpc.Status`` / ``ExportTraceServiceResponse`` read back from a reply."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf import json_format
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
Value = str | int | bool | float


def any_value(value: Value) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    return AnyValue(string_value=value)


def attributes(values: Mapping[str, Value]) -> list[KeyValue]:
    return [KeyValue(key=k, value=any_value(v)) for k, v in values.items()]


@dataclass
class SpanSpec:
    """One span: its attributes, timing, status, and random 16/8-byte ids."""

    attrs: dict[str, Value]
    start: datetime = field(default_factory=lambda: datetime.now(UTC) - timedelta(minutes=5))
    latency_ms: int = 850
    error: bool = False
    name: str = "chat gpt-4o-mini"
    trace_id: bytes = field(default_factory=lambda: os.urandom(16))
    span_id: bytes = field(default_factory=lambda: os.urandom(8))

    @property
    def record_id(self) -> str:
        return f"{self.trace_id.hex()}-{self.span_id.hex()}"

    def span(self) -> Span:
        start_ns = int(self.start.timestamp()) * 1_000_000_000 + self.start.microsecond * 1000
        return Span(
            trace_id=self.trace_id,
            span_id=self.span_id,
            name=self.name,
            kind=Span.SPAN_KIND_CLIENT,
            start_time_unix_nano=start_ns,
            end_time_unix_nano=start_ns + self.latency_ms * 1_000_000,
            attributes=attributes(self.attrs),
            status=Status(code=Status.STATUS_CODE_ERROR if self.error else Status.STATUS_CODE_OK),
        )


def chat(
    model: str = "gpt-4o-mini",
    inputs: int = 1200,
    outputs: int = 300,
    extra: Mapping[str, Value] | None = None,
) -> SpanSpec:
    """A successful chat call with the current attribute names (``extra`` added or replacing)."""
    return SpanSpec(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": model,
            "gen_ai.response.model": model,
            "gen_ai.usage.input_tokens": inputs,
            "gen_ai.usage.output_tokens": outputs,
            **(extra or {}),
        }
    )


def export(
    spans: Sequence[SpanSpec], service: str | None = "checkout", scope: str = "tests"
) -> ExportTraceServiceRequest:
    resource = Resource(attributes=attributes({"service.name": service} if service else {}))
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=resource,
                scope_spans=[ScopeSpans(spans=[s.span() for s in spans])],
            )
        ]
    )


def otlp_json(request: ExportTraceServiceRequest) -> dict[str, Any]:
    """OTLP/JSON of ``request``: protobuf's JSON mapping with hex ids and enums as integers."""
    tree = json_format.MessageToDict(request, use_integers_for_enums=True)
    for rs in tree.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for span in ss.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = _b64_to_hex(span[key])
    return tree


def _b64_to_hex(value: str) -> str:
    return base64.b64decode(value).hex()


def status_of(body: bytes, content_type: str) -> tuple[status_pb2.Status, dict[str, Any]]:
    """The ``google.rpc.Status`` of an error reply, and its details by type name."""
    status = status_pb2.Status()
    if content_type == PROTOBUF:
        status.ParseFromString(body)
    else:
        json_format.Parse(body, status)
    details: dict[str, Any] = {}
    for any_detail in status.details:
        for kind in (
            error_details_pb2.ErrorInfo,
            error_details_pb2.BadRequest,
            error_details_pb2.RetryInfo,
        ):
            if any_detail.Is(kind.DESCRIPTOR):
                detail = kind()
                any_detail.Unpack(detail)
                details[kind.DESCRIPTOR.name] = detail
    return status, details


def response_of(body: bytes, content_type: str) -> ExportTraceServiceResponse:
    response = ExportTraceServiceResponse()
    if content_type == PROTOBUF:
        response.ParseFromString(body)
    else:
        json_format.Parse(body, response)
    return response


def dumps(tree: Any) -> bytes:
    return json.dumps(tree).encode()
