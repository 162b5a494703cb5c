"""Usage records: the two wire forms of DESIGN §5 and the one normalized ``UsageRecord``.

A record describes one LLM call (or, for aggregate importers, ``requests`` identical-shape
calls summed together). Two input forms are accepted:

- the OpenTelemetry span-like form ``{"start_time_unix_nano", "end_time_unix_nano",
  "attributes": {...}}`` with GenAI semantic-convention attribute names;
- the plain form ``{"id", "model", "provider", "input_tokens", ...}``.

Both normalize into a frozen ``UsageRecord`` whose ``record_id`` is the given id, or else the
sha256 of the record's canonical JSON, so a retried ingest of the same call counts once.
As in OTel, ``input_tokens`` includes the cached ones. Nothing here reads the clock: the
"not in the future" check takes an injected ``now``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)

MAX_ID_LEN: Final = 128
MAX_NAME_LEN: Final = 128
MAX_REQUEST_HASH_LEN: Final = 128
# Larger than any context window plus output today; a bigger count is a unit mistake.
MAX_TOKENS_PER_CALL: Final = 10_000_000
# Aggregate importers (OpenAI usage buckets) carry many calls in one record.
MAX_REQUESTS_PER_RECORD: Final = 100_000_000
MAX_LATENCY_MS: Final = 3_600_000.0
EARLIEST_TS: Final = datetime(2020, 1, 1, tzinfo=UTC)
# How far ahead of the ingest clock a record may be stamped (client clock skew).
MAX_FUTURE_SKEW: Final = timedelta(hours=1)

# OTel `gen_ai.provider.name` values whose price-table (genai-prices) id differs.
OTEL_PROVIDER_IDS: Final[Mapping[str, str]] = {
    "aws.bedrock": "aws",
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "mistral_ai": "mistral",
    "x_ai": "x-ai",
}

Status = Literal["ok", "error"]
_WHITESPACE_OR_SLASH: Final = re.compile(r"[\s/]")


def _no_bool(value: object) -> object:
    # pydantic's lax int accepts True/False; a boolean token count is always a client bug.
    if isinstance(value, bool):
        raise ValueError("expected an integer, not a boolean")
    return value


def _printable(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    if not value.isprintable():
        raise ValueError("must contain only printable characters")
    return value


def _record_id_chars(value: str) -> str:
    if _WHITESPACE_OR_SLASH.search(value):
        raise ValueError("must not contain whitespace or '/'")
    return value


def _provider_id(value: str) -> str:
    lowered = value.strip().lower()
    return OTEL_PROVIDER_IDS.get(lowered, lowered)


def _utc(value: datetime) -> datetime:
    # A naive timestamp is taken to be UTC, as everywhere in Apex (shared/models/period.py).
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if value < EARLIEST_TS:
        raise ValueError(f"must not be before {EARLIEST_TS.date().isoformat()}")
    return value


def _iso_string(value: object) -> object:
    if not isinstance(value, str):
        raise ValueError("expected an ISO 8601 string")
    return value


Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME_LEN), AfterValidator(_printable)]
RecordId = Annotated[
    str,
    Field(min_length=1, max_length=MAX_ID_LEN),
    AfterValidator(_printable),
    AfterValidator(_record_id_chars),
]
RequestHash = Annotated[
    str,
    Field(min_length=1, max_length=MAX_REQUEST_HASH_LEN),
    AfterValidator(_printable),
    AfterValidator(_record_id_chars),
]
ProviderId = Annotated[Name, AfterValidator(_provider_id)]
TokenCount = Annotated[int, BeforeValidator(_no_bool), Field(ge=0)]
RequestCount = Annotated[int, BeforeValidator(_no_bool), Field(ge=1, le=MAX_REQUESTS_PER_RECORD)]
LatencyMs = Annotated[float, BeforeValidator(_no_bool), Field(ge=0, le=MAX_LATENCY_MS)]
UtcDatetime = Annotated[datetime, AfterValidator(_utc)]
IsoUtcDatetime = Annotated[datetime, BeforeValidator(_iso_string), AfterValidator(_utc)]
UnixNanos = Annotated[int, BeforeValidator(_no_bool), Field(ge=0, lt=2**63)]


class UsageRecordError(ValueError):
    """A raw record that cannot be normalized; ``field`` is the dotted path of the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class UsageContent(BaseModel):
    """Everything a usage record says, before it gets its id. Validated and normalized."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ts: UtcDatetime
    provider: ProviderId | None = None
    model: Name
    feature: Name | None = None
    user: Name | None = None
    status: Status = "ok"
    error_type: Name | None = None
    operation: Name | None = None
    requests: RequestCount = 1
    input_tokens: TokenCount
    cached_input_tokens: TokenCount = 0
    output_tokens: TokenCount
    latency_ms: LatencyMs | None = None
    request_hash: RequestHash | None = None
    batch: bool = False
    # The sender's hash of the prompt's stable prefix (system prompt, tools, shared context):
    # calls that share it within minutes could be served from a provider's prompt cache.
    prompt_prefix_hash: RequestHash | None = None

    # Cross-field checks are field validators (fields are validated in declaration order) so
    # that the error names the field at fault.
    @field_validator("error_type")
    @classmethod
    def _error_type_needs_error(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("status") != "error":
            raise ValueError("is only allowed on a record with status 'error'")
        return value

    @field_validator("input_tokens", "output_tokens")
    @classmethod
    def _per_call_bound(cls, value: int, info: ValidationInfo) -> int:
        requests = info.data.get("requests", 1)
        if value > requests * MAX_TOKENS_PER_CALL:
            raise ValueError(f"exceeds {MAX_TOKENS_PER_CALL} tokens per request")
        return value

    @field_validator("cached_input_tokens")
    @classmethod
    def _cached_within_input(cls, value: int, info: ValidationInfo) -> int:
        input_tokens = info.data.get("input_tokens")
        if input_tokens is not None and value > input_tokens:
            raise ValueError("must not exceed input_tokens (which includes the cached ones)")
        return value

    def canonical_json(self) -> str:
        """The content as canonical JSON (sorted keys, no spaces, ts in UTC microseconds)."""
        # Content fields only: on a UsageRecord the id is not part of what it hashes.
        data = self.model_dump(mode="python", include=set(UsageContent.model_fields))
        # Fields added after ids were first hashed are left out while unset, so the id of a
        # record that does not use them stays what it was (a retried ingest counts once).
        for name in _LATER_FIELDS:
            if data[name] is None:
                del data[name]
        data["ts"] = self.ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    def content_hash(self) -> str:
        """sha256 (hex) of ``canonical_json()``: the record id when the sender gives none."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()

    @property
    def day(self) -> str:
        """The UTC day of the call, ``YYYY-MM-DD``."""
        return self.ts.date().isoformat()


_LATER_FIELDS: Final = ("prompt_prefix_hash",)


class UsageRecord(UsageContent):
    """One normalized usage record, as stored and aggregated. Build it with ``make_record``."""

    record_id: RecordId


_RECORD_ID: Final = TypeAdapter(RecordId)


def make_record(content: UsageContent, record_id: str | None = None) -> UsageRecord:
    """Give ``content`` its stable id: ``record_id`` if given, else its content hash."""
    rid = content.content_hash() if record_id is None else _RECORD_ID.validate_python(record_id)
    # The content is validated already; only the id is new (this is the ingest hot path).
    return UsageRecord.model_construct(**vars(content), record_id=rid)


def usage_record(*, record_id: str | None = None, **fields: Any) -> UsageRecord:
    """Validate ``fields`` as ``UsageContent`` and return the record (convenience for importers)."""
    return make_record(UsageContent.model_validate(fields), record_id)


class PlainUsageRecordIn(BaseModel):
    """The plain wire form. Unknown fields are refused so that a misspelt field is caught."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: RecordId | None = None
    model: Name
    provider: ProviderId | None = None
    input_tokens: TokenCount
    output_tokens: TokenCount
    cached_input_tokens: TokenCount = 0
    latency_ms: LatencyMs | None = None
    ts: IsoUtcDatetime
    feature: Name | None = None
    user: Name | None = None
    status: Status = "ok"
    request_hash: RequestHash | None = None
    batch: Annotated[bool, Field(strict=True)] = False
    prompt_prefix_hash: RequestHash | None = None

    def to_content(self) -> UsageContent:
        return UsageContent(
            ts=self.ts,
            provider=self.provider,
            model=self.model,
            feature=self.feature,
            user=self.user,
            status=self.status,
            input_tokens=self.input_tokens,
            cached_input_tokens=self.cached_input_tokens,
            output_tokens=self.output_tokens,
            latency_ms=self.latency_ms,
            request_hash=self.request_hash,
            batch=self.batch,
            prompt_prefix_hash=self.prompt_prefix_hash,
        )


_MODEL_REQUIRED: Final = "gen_ai.response.model or gen_ai.request.model is required"
_TOKENS_REQUIRED: Final = "is required on a call without error.type"
_OTLP_VALUE_KEYS: Final = ("stringValue", "intValue", "boolValue", "doubleValue")


def _otlp_attribute_list(value: object) -> object:
    """Accept OTLP/JSON's ``[{"key", "value": {"intValue": ...}}]`` list as well as a dict."""
    if not isinstance(value, list):
        return value
    flat: dict[str, object] = {}
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise ValueError("an OTLP attribute must be an object with a string 'key'")
        wrapped = item.get("value")
        if not isinstance(wrapped, dict):
            raise ValueError(f"OTLP attribute {item['key']!r} needs a 'value' object")
        found = [k for k in _OTLP_VALUE_KEYS if k in wrapped]
        if len(found) != 1:
            raise ValueError(f"OTLP attribute {item['key']!r} needs exactly one scalar value")
        flat[item["key"]] = wrapped[found[0]]
    return flat


class OtelAttributes(BaseModel):
    """The GenAI semantic-convention attributes Apex reads; other attributes are ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=False)

    request_model: Name | None = Field(None, alias="gen_ai.request.model")
    response_model: Name | None = Field(None, alias="gen_ai.response.model")
    input_tokens: TokenCount | None = Field(None, alias="gen_ai.usage.input_tokens")
    output_tokens: TokenCount | None = Field(None, alias="gen_ai.usage.output_tokens")
    cached_input_tokens: TokenCount = Field(0, alias="gen_ai.usage.cache_read.input_tokens")
    provider: ProviderId | None = Field(None, alias="gen_ai.provider.name")
    operation: Name | None = Field(None, alias="gen_ai.operation.name")
    user: Name | None = Field(None, alias="enduser.id")
    error_type: Name | None = Field(None, alias="error.type")
    feature: Name | None = Field(None, alias="apex.feature")
    # Apex extensions giving the OTel form parity with the plain one.
    request_hash: RequestHash | None = Field(None, alias="apex.request_hash")
    batch: Annotated[bool, Field(strict=True)] = Field(False, alias="apex.batch")
    prompt_prefix_hash: RequestHash | None = Field(None, alias="apex.prompt_prefix_hash")


def _from_unix_nanos(nanos: int) -> datetime:
    # Integer arithmetic: a float of nanoseconds since 1970 cannot hold microseconds exactly.
    seconds, rest = divmod(nanos, 1_000_000_000)
    return datetime.fromtimestamp(seconds, tz=UTC) + timedelta(microseconds=rest // 1000)


class OtelSpanIn(BaseModel):
    """The OpenTelemetry span-like wire form. Other span fields (name, kind, ...) are ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    start_time_unix_nano: UnixNanos
    end_time_unix_nano: UnixNanos
    attributes: Annotated[OtelAttributes, BeforeValidator(_otlp_attribute_list)]
    trace_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    span_id: Annotated[str, Field(min_length=1, max_length=32)] | None = None

    @field_validator("end_time_unix_nano")
    @classmethod
    def _after_start(cls, end: int, info: ValidationInfo) -> int:
        start = info.data.get("start_time_unix_nano")
        if start is not None and end < start:
            raise ValueError("must not be before start_time_unix_nano")
        return end

    def record_id(self) -> str | None:
        """``{trace_id}-{span_id}`` when the span carries both (globally unique), else None."""
        if self.trace_id and self.span_id:
            return f"{self.trace_id}-{self.span_id}"
        return None

    def to_content(self) -> UsageContent:
        """Normalize; raises ``UsageRecordError`` for a missing model or token count."""
        attrs = self.attributes
        model = attrs.response_model or attrs.request_model
        if model is None:
            raise UsageRecordError("attributes.gen_ai.response.model", _MODEL_REQUIRED)
        # A failed call may have consumed no tokens and report none; a successful one must.
        if attrs.error_type is None:
            for alias, count in (
                ("gen_ai.usage.input_tokens", attrs.input_tokens),
                ("gen_ai.usage.output_tokens", attrs.output_tokens),
            ):
                if count is None:
                    raise UsageRecordError(f"attributes.{alias}", _TOKENS_REQUIRED)
        return UsageContent(
            ts=_from_unix_nanos(self.start_time_unix_nano),
            provider=attrs.provider,
            model=model,
            feature=attrs.feature,
            user=attrs.user,
            status="ok" if attrs.error_type is None else "error",
            error_type=attrs.error_type,
            operation=attrs.operation,
            input_tokens=attrs.input_tokens or 0,
            cached_input_tokens=attrs.cached_input_tokens,
            output_tokens=attrs.output_tokens or 0,
            latency_ms=(self.end_time_unix_nano - self.start_time_unix_nano) / 1e6,
            request_hash=attrs.request_hash,
            batch=attrs.batch,
            prompt_prefix_hash=attrs.prompt_prefix_hash,
        )


def is_otel_form(raw: Mapping[str, object]) -> bool:
    """True for the span-like form (it has ``attributes`` or span timestamps)."""
    return "attributes" in raw or "start_time_unix_nano" in raw


# Where a normalized field came from in the OTel form, to name it in errors.
_OTEL_FIELD_PATHS: Final[Mapping[str, str]] = {
    "model": "attributes.gen_ai.response.model",
    "provider": "attributes.gen_ai.provider.name",
    "operation": "attributes.gen_ai.operation.name",
    "user": "attributes.enduser.id",
    "error_type": "attributes.error.type",
    "feature": "attributes.apex.feature",
    "input_tokens": "attributes.gen_ai.usage.input_tokens",
    "output_tokens": "attributes.gen_ai.usage.output_tokens",
    "cached_input_tokens": "attributes.gen_ai.usage.cache_read.input_tokens",
    "request_hash": "attributes.apex.request_hash",
    "batch": "attributes.apex.batch",
    "prompt_prefix_hash": "attributes.apex.prompt_prefix_hash",
    "ts": "start_time_unix_nano",
    "latency_ms": "end_time_unix_nano",
}


def _error_from(exc: ValidationError, paths: Mapping[str, str]) -> UsageRecordError:
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = ".".join(str(part) for part in first["loc"]) or "(record)"
    field = paths.get(loc, loc)
    message = first["msg"].removeprefix("Value error, ")
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})"
    return UsageRecordError(field, message)


def parse_usage_record(raw: object, *, now: datetime) -> UsageRecord:
    """Normalize one raw JSON object (either form) into a ``UsageRecord``.

    Raises ``UsageRecordError`` naming the offending field (dotted path, e.g.
    ``attributes.gen_ai.usage.input_tokens``) for anything invalid, including a timestamp
    more than ``MAX_FUTURE_SKEW`` after ``now``.
    """
    if not isinstance(raw, dict):
        raise UsageRecordError("(record)", "expected a JSON object")
    otel = is_otel_form(raw)
    try:
        if otel:
            span = OtelSpanIn.model_validate(raw)
            content, record_id, ts_field = (
                span.to_content(),
                span.record_id(),
                "start_time_unix_nano",
            )
        else:
            plain = PlainUsageRecordIn.model_validate(raw)
            content, record_id, ts_field = plain.to_content(), plain.id, "ts"
    except ValidationError as exc:
        raise _error_from(exc, _OTEL_FIELD_PATHS if otel else {}) from exc
    if content.ts > _utc(now) + MAX_FUTURE_SKEW:
        skew_minutes = int(MAX_FUTURE_SKEW.total_seconds() // 60)
        raise UsageRecordError(
            ts_field, f"must not be more than {skew_minutes} minutes after the ingest time"
        )
    return make_record(content, record_id)
