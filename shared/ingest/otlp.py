"""OTLP/HTTP trace ingest (DESIGN §10): what ``otlp_ingest`` does between the bytes an
OpenTelemetry exporter sends and the usage records Apex accepts, free of any transport.

- ``inflate``: ``Content-Encoding: gzip`` undone with the decompressed size checked while
  inflating (a gzip bomb stops at the limit, never inflated whole);
- ``decode``: an ``ExportTraceServiceRequest`` of the ``opentelemetry-proto`` package, from
  binary protobuf or OTLP/JSON (protobuf's JSON mapping with hex trace and span ids);
- ``map_spans``: GenAI spans to usage records through the OTel form of ``usage_ingest``
  (``shared.models.usage``), current and deprecated attribute names, other spans skipped;
- ``export_response`` and ``otlp_reply``: the ``ExportTraceServiceResponse`` and, for every
  error, the ``google.rpc.Status`` the OTLP specification asks for, in the request's encoding.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from google.protobuf import json_format
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import DecodeError, Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from shared.edge import HttpRequest, HttpResponse
from shared.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from shared.limits import MIB
from shared.models.usage import UsageRecord, UsageRecordError, parse_usage_record

TRACES_PATH: Final = "/v1/traces"
# DESIGN §2: 5 MiB as sent (the endpoint's max_body), 32 MiB once decompressed.
MAX_DECOMPRESSED_BYTES: Final = 32 * MIB
# What one inflate step may produce: memory stays near the limit, not twice it.
INFLATE_STEP: Final = 1 * MIB
# The errors of rejected spans that partial_success.error_message quotes.
MAX_QUOTED_ERRORS: Final = 5
MAX_ERROR_MESSAGE_CHARS: Final = 2_000
# google.rpc.ErrorInfo.domain of Apex's errors (its reason is Apex's error code).
ERROR_DOMAIN: Final = "apex"


class Encoding(StrEnum):
    """The two OTLP/HTTP encodings, by their Content-Type (the response uses the request's)."""

    PROTOBUF = "application/x-protobuf"
    JSON = "application/json"


def encoding_of(content_type: str) -> Encoding | None:
    try:
        return Encoding(content_type)
    except ValueError:
        return None


# --- the body ---------------------------------------------------------------------------------


def inflate(
    body: bytes, content_encoding: str | None, limit: int = MAX_DECOMPRESSED_BYTES
) -> bytes:
    """The body with its Content-Encoding undone: none (identity) or gzip."""
    coding = (content_encoding or "identity").strip().lower()
    if coding == "identity":
        return body
    if coding == "gzip":
        return gunzip(body, limit)
    raise UnsupportedMediaType(f"Content-Encoding {coding!r} is not supported; send gzip or none")


def gunzip(data: bytes, limit: int) -> bytes:
    """Inflate every gzip member of ``data``; ``PayloadTooLarge`` as soon as the output passes
    ``limit`` (never more than ``limit`` + 1 bytes are inflated), ``BadRequest`` for a corrupt
    or truncated stream."""
    out = bytearray()
    rest = data
    while True:
        inflater = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)  # gzip header and trailer
        pending = rest
        while not inflater.eof:
            try:
                chunk = inflater.decompress(pending, min(INFLATE_STEP, limit + 1 - len(out)))
            except zlib.error as e:
                raise BadRequest(f"the gzip body is corrupt: {e}") from e
            out += chunk
            if len(out) > limit:
                raise PayloadTooLarge(f"the body inflates to more than {limit // MIB} MiB")
            pending = inflater.unconsumed_tail
            if not chunk and not pending:
                break
        if not inflater.eof:
            raise BadRequest("the gzip body is truncated")
        rest = inflater.unused_data
        if not rest:
            return bytes(out)


def decode(body: bytes, encoding: Encoding) -> ExportTraceServiceRequest:
    """The request's ``ExportTraceServiceRequest``; ``BadRequest`` if it is not one."""
    message = ExportTraceServiceRequest()
    if encoding is Encoding.PROTOBUF:
        try:
            message.ParseFromString(body)
        except DecodeError as e:
            raise BadRequest(f"the body is not an OTLP ExportTraceServiceRequest: {e}") from e
        # Bytes that parse as nothing but unknown fields are not an export (an export with
        # no spans is the empty body, which is valid).
        if body and not message.resource_spans:
            raise BadRequest("the body holds no OTLP resourceSpans")
        return message
    try:
        tree = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise BadRequest(f"the body is not JSON: {e}") from e
    if not isinstance(tree, dict):
        raise BadRequest("the body is not an OTLP/JSON ExportTraceServiceRequest object")
    _hex_ids_to_base64(tree)
    try:
        # OTLP/JSON receivers must ignore fields they do not know (the OTLP specification).
        json_format.ParseDict(tree, message, ignore_unknown_fields=True)
    except (json_format.ParseError, RecursionError) as e:
        raise BadRequest(f"the body is not an OTLP/JSON ExportTraceServiceRequest: {e}") from e
    return message


_HEX: Final = re.compile(r"[0-9a-fA-F]*")
# OTLP/JSON writes these ids as hex where protobuf's JSON mapping would have base64.
_ID_BYTES: Final = {"traceId": 16, "spanId": 8, "parentSpanId": 8}
_SNAKE: Final = {"trace_id": "traceId", "span_id": "spanId", "parent_span_id": "parentSpanId"}


def _hex_ids_to_base64(tree: dict[str, Any]) -> None:
    """Rewrite OTLP/JSON's hex ids as the base64 protobuf's JSON parser reads, in place;
    ``BadRequest`` naming the first id that is not hex."""
    for r, resource_spans in _items(tree, "resourceSpans", "resource_spans"):
        for s, scope_spans in _items(resource_spans, "scopeSpans", "scope_spans"):
            for n, span in _items(scope_spans, "spans"):
                where = f"resourceSpans[{r}].scopeSpans[{s}].spans[{n}]"
                _rewrite_ids(span, where)
                for k, link in _items(span, "links"):
                    _rewrite_ids(link, f"{where}.links[{k}]")


def _items(parent: dict[str, Any], *names: str) -> Iterable[tuple[int, dict[str, Any]]]:
    """The objects of the list ``parent`` has under one of ``names`` (anything else is left
    for the protobuf parser to refuse)."""
    for name in names:
        children = parent.get(name)
        if isinstance(children, list):
            yield from ((i, c) for i, c in enumerate(children) if isinstance(c, dict))


def _rewrite_ids(obj: dict[str, Any], where: str) -> None:
    for key in list(obj):
        name = _SNAKE.get(key, key)
        size = _ID_BYTES.get(name)
        value = obj[key]
        if size is None or not isinstance(value, str):
            continue
        # The length is the span's to check (a GenAI span with a short id is rejected alone).
        if not _HEX.fullmatch(value) or len(value) % 2:
            raise BadRequest(
                f"{where}.{name}: {value[:40]!r} is not hex ({2 * size} hex digits: OTLP/JSON "
                "writes trace and span ids in hex, not base64)"
            )
        obj[key] = base64.b64encode(binascii.unhexlify(value)).decode("ascii")


# --- spans to usage records -------------------------------------------------------------------

# Current GenAI semantic-convention names, each with the deprecated name read in its absence.
_RENAMED: Final = (
    ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"),
    ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens"),
    ("gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens"),
    ("gen_ai.provider.name", "gen_ai.system"),
    ("enduser.id", "user.id"),
)
_TOKEN_NAMES: Final = frozenset(
    {
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.prompt_tokens",
        "gen_ai.usage.completion_tokens",
        "gen_ai.usage.cache_read.input_tokens",
        "gen_ai.usage.cache_read_input_tokens",
    }
)
# A span is a model call when it reports any of these counts (DESIGN §10).
_CALL_TOKENS: Final = frozenset(
    {
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.prompt_tokens",
        "gen_ai.usage.completion_tokens",
    }
)
_STRING_NAMES: Final = frozenset(
    {
        "gen_ai.request.model",
        "gen_ai.response.model",
        "gen_ai.provider.name",
        "gen_ai.system",
        "gen_ai.operation.name",
        "enduser.id",
        "user.id",
        "error.type",
        "apex.feature",
        "apex.request_hash",
        "apex.prompt_prefix_hash",
    }
)
_BOOL_NAMES: Final = frozenset({"apex.batch"})
# The AnyValue field each attribute Apex reads must use.
_TYPES: Final[Mapping[str, str]] = {
    **dict.fromkeys(_TOKEN_NAMES, "int_value"),
    **dict.fromkeys(_STRING_NAMES, "string_value"),
    **dict.fromkeys(_BOOL_NAMES, "bool_value"),
}
# Deprecated gen_ai.system values whose gen_ai.provider.name differs (the OTel form of
# usage_ingest then maps provider names to the price table's ids).
_DEPRECATED_SYSTEMS: Final[Mapping[str, str]] = {
    "az.ai.inference": "azure.ai.inference",
    "az.ai.openai": "azure.ai.openai",
    "gemini": "gcp.gemini",
    "vertex_ai": "gcp.vertex_ai",
    "xai": "x_ai",
}
# Operations that wrap model calls rather than being one: an agent span may sum its calls'
# tokens, and those calls have spans of their own (counting both would count twice).
_NOT_MODEL_CALLS: Final = frozenset({"invoke_agent", "create_agent", "execute_tool"})
# What the SDKs name a service nobody named ("unknown_service", "unknown_service:node"):
# no feature.
_UNNAMED_SERVICE: Final = "unknown_service"
# error.type when a span's status is ERROR and it names no type (the semantic conventions'
# fallback value).
OTHER_ERROR: Final = "_OTHER"
_TYPE_NAMES: Final[Mapping[str, str]] = {
    "string_value": "stringValue",
    "int_value": "intValue",
    "bool_value": "boolValue",
    "double_value": "doubleValue",
    "array_value": "arrayValue",
    "kvlist_value": "kvlistValue",
    "bytes_value": "bytesValue",
}


@dataclass(slots=True)
class Mapped:
    """What an export holds for Apex: its usage records, and the GenAI spans refused."""

    records: list[UsageRecord] = field(default_factory=list)
    rejected: int = 0
    errors: list[str] = field(default_factory=list)  # the first few, for error_message
    skipped: int = 0  # spans that are not model calls

    def reject(self, span: Span, error: str) -> None:
        self.rejected += 1
        if len(self.errors) < MAX_QUOTED_ERRORS:
            name = span.name[:80]
            self.errors.append(f"span {span.span_id.hex() or '(no id)'} {name!r}: {error}")


def map_spans(request: ExportTraceServiceRequest, *, now: datetime) -> Mapped:
    """Every GenAI span of ``request`` as a usage record, or counted as rejected with its
    error; every other span skipped."""
    mapped = Mapped()
    for resource_spans in request.resource_spans:
        service = _service_name(resource_spans.resource)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                _map_span(span, service, now, mapped)
    return mapped


def _service_name(resource: Resource) -> str | None:
    for kv in resource.attributes:
        if kv.key == "service.name" and kv.value.WhichOneof("value") == "string_value":
            name = kv.value.string_value
            return None if name.startswith(_UNNAMED_SERVICE) else name
    return None


def _map_span(span: Span, service: str | None, now: datetime, mapped: Mapped) -> None:
    attrs, problem = _read_attributes(span.attributes)
    failed = span.status.code == Status.STATUS_CODE_ERROR or "error.type" in attrs
    is_call = bool(_CALL_TOKENS & attrs.keys()) or (
        # A failed call may report no tokens; its model says it was a model call.
        failed and ("gen_ai.request.model" in attrs or "gen_ai.response.model" in attrs)
    )
    if not is_call or attrs.get("gen_ai.operation.name") in _NOT_MODEL_CALLS:
        mapped.skipped += 1
        return
    try:
        if problem is not None:
            raise problem
        mapped.records.append(parse_usage_record(_otel_form(span, attrs, service, failed), now=now))
    except UsageRecordError as e:
        mapped.reject(span, str(e))


def _read_attributes(
    attributes: Iterable[KeyValue],
) -> tuple[dict[str, str | int | bool | None], UsageRecordError | None]:
    """The attributes Apex reads, and the first of them whose OTLP type is wrong (kept as
    None): a count must be an ``intValue`` (a string or a double is a sender's bug, not a
    number to guess at), a name a ``stringValue``."""
    out: dict[str, str | int | bool | None] = {}
    problem: UsageRecordError | None = None
    for kv in attributes:
        if kv.key not in _TYPES:
            continue
        kind = kv.value.WhichOneof("value")
        wanted = _TYPES[kv.key]
        if kind == wanted:
            out[kv.key] = getattr(kv.value, wanted)
        else:
            out[kv.key] = None
            if problem is None:
                got = "no value" if kind is None else _TYPE_NAMES[kind]
                problem = UsageRecordError(
                    f"attributes.{kv.key}", f"expected {_TYPE_NAMES[wanted]}, got {got}"
                )
    return out, problem


def _otel_form(
    span: Span, attrs: dict[str, str | int | bool | None], service: str | None, failed: bool
) -> dict[str, Any]:
    """The span as ``usage_ingest``'s OTel form (current attribute names, ids in hex)."""
    for current, deprecated in _RENAMED:
        if current not in attrs and deprecated in attrs:
            attrs[current] = attrs[deprecated]
        attrs.pop(deprecated, None)
    system = attrs.get("gen_ai.provider.name")
    if isinstance(system, str):
        attrs["gen_ai.provider.name"] = _DEPRECATED_SYSTEMS.get(system, system)
    if service is not None:
        attrs.setdefault("apex.feature", service)
    if failed:
        attrs.setdefault("error.type", OTHER_ERROR)
    if len(span.trace_id) != 16 or not any(span.trace_id):
        raise UsageRecordError("traceId", f"must be 16 bytes, not all zero ({len(span.trace_id)})")
    if len(span.span_id) != 8 or not any(span.span_id):
        raise UsageRecordError("spanId", f"must be 8 bytes, not all zero ({len(span.span_id)})")
    return {
        "start_time_unix_nano": span.start_time_unix_nano,
        "end_time_unix_nano": span.end_time_unix_nano,
        "trace_id": span.trace_id.hex(),
        "span_id": span.span_id.hex(),
        "attributes": attrs,
    }


# --- responses --------------------------------------------------------------------------------


def export_response(mapped: Mapped, encoding: Encoding) -> HttpResponse:
    """200 with the ``ExportTraceServiceResponse``: ``partial_success`` set only when GenAI
    spans were rejected (the specification: unset on full success)."""
    response = ExportTraceServiceResponse()
    if mapped.rejected:
        message = "; ".join(mapped.errors)
        if mapped.rejected > len(mapped.errors):
            message += f"; and {mapped.rejected - len(mapped.errors)} more"
        response.partial_success.CopyFrom(
            ExportTracePartialSuccess(
                rejected_spans=mapped.rejected,
                error_message=message[:MAX_ERROR_MESSAGE_CHARS],
            )
        )
    return HttpResponse(200, _encode(response, encoding), {"Content-Type": encoding.value})


def _encode(message: Message, encoding: Encoding) -> bytes:
    if encoding is Encoding.PROTOBUF:
        return message.SerializeToString()
    return json.dumps(json_format.MessageToDict(message), separators=(",", ":")).encode()


# The gRPC code a Status carries for each HTTP status (the specification leaves it unused;
# clients may log it).
_GRPC_CODES: Final[Mapping[int, int]] = {
    400: code_pb2.INVALID_ARGUMENT,
    401: code_pb2.UNAUTHENTICATED,
    403: code_pb2.PERMISSION_DENIED,
    404: code_pb2.NOT_FOUND,
    405: code_pb2.UNIMPLEMENTED,
    413: code_pb2.OUT_OF_RANGE,
    415: code_pb2.INVALID_ARGUMENT,
    422: code_pb2.INVALID_ARGUMENT,
    429: code_pb2.RESOURCE_EXHAUSTED,
    503: code_pb2.UNAVAILABLE,
}


def otlp_reply(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """An error of ``otlp_ingest`` as the ``google.rpc.Status`` OTLP/HTTP clients read, in the
    request's encoding (JSON when it has neither): the message Apex's JSON body has, its
    error code as an ``ErrorInfo`` reason, the Retry-After as a ``RetryInfo``; a success as
    is. (Its Retry-After is already capped: ``Endpoint.max_retry_after_s``.)"""
    if response.status < 400 or not isinstance(response.body, dict):
        return response
    error = response.body["error"]
    status = status_pb2.Status(
        code=_GRPC_CODES.get(response.status, code_pb2.INTERNAL), message=error["message"]
    )
    status.details.add().Pack(
        error_details_pb2.ErrorInfo(reason=error["code"], domain=ERROR_DOMAIN)
    )
    headers = dict(response.headers)
    if response.status == 400:
        violation = error_details_pb2.BadRequest.FieldViolation(
            field="body", description=error["message"]
        )
        status.details.add().Pack(error_details_pb2.BadRequest(field_violations=[violation]))
    retry_after = headers.get("Retry-After")
    if retry_after is not None:
        seconds = int(retry_after)
        status.details.add().Pack(
            error_details_pb2.RetryInfo(retry_delay=Duration(seconds=seconds))
        )
    encoding = encoding_of(request.content_type) or Encoding.JSON
    headers["Content-Type"] = encoding.value
    return HttpResponse(response.status, _encode(status, encoding), headers)
