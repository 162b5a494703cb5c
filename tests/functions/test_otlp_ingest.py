"""otlp_ingest in-process (DESIGN §10, §2): OTLP/HTTP protobuf and JSON, gzip, the span ->
usage record mapping with current and deprecated names, partial_success, the OTLP status
codes with a google.rpc.Status body in the request's encoding, and the bad input of issue 13
(garbage protobuf, truncated gzip, a gzip bomb, base64 ids, bad token counts, a span without
a model, 10,000 spans half of them invalid): 400 / 413 / partial_success, never a 500,
nothing valid lost.

What lands is read from the captured apex-usage messages (the aggregator's input)."""

from __future__ import annotations

import gzip
import json
import re
import time
import tracemalloc
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from google.protobuf import json_format
from werkzeug.test import TestResponse

from shared.limits import MIB
from tests.support.functions import Captured, User
from tests.support.otlp import (
    JSON,
    PROTOBUF,
    SpanSpec,
    chat,
    dumps,
    export,
    otlp_json,
    response_of,
    status_of,
)
from tests.support.ratelimit import seconds_left_in_window, start_within_one_window

Fn = Callable[[str], FlaskClient]
TRACES = "/v1/traces"


@pytest.fixture
def otlp(function: Fn) -> FlaskClient:
    return function("otlp_ingest")


@pytest.fixture
def ingest_key(function: Fn, user: User) -> str:
    """An ingest key of the user's personal workspace, made through the workspaces function."""
    made = function("workspaces").post(
        f"/{user.workspace}/keys", json={"name": "otel", "scope": "ingest"}, headers=user.headers
    )
    assert made.status_code == 201, made.get_json()
    return str(made.get_json()["secret"])


def post(
    client: FlaskClient,
    key: str,
    body: bytes,
    content_type: str = PROTOBUF,
    gzipped: bool = False,
    path: str = TRACES,
) -> TestResponse:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": content_type}
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    return client.post(path, data=body, headers=headers)


def records_of(captured: Captured, batches: int = 1) -> dict[str, dict[str, Any]]:
    """The records of the next ``batches`` usage batches, by id."""
    out: dict[str, dict[str, Any]] = {}
    for message in captured.pull(batches):
        assert message.attributes["kind"] == "usage_batch"
        for record in json.loads(message.data)["records"]:
            out[record["record_id"]] = record
    return out


def error_of(response: TestResponse, status: int, code: str) -> str:
    """The Status message of an error reply, checked: its status, encoding and Apex code."""
    assert response.status_code == status, response.get_data()
    content_type = response.headers["Content-Type"]
    rpc, details = status_of(response.get_data(), content_type)
    assert details["ErrorInfo"].reason == code
    assert details["ErrorInfo"].domain == "apex"
    assert rpc.message
    return str(rpc.message)


# --- what lands -----------------------------------------------------------------------------


def test_protobuf_export_maps_current_and_deprecated_names(
    otlp: FlaskClient, ingest_key: str, user: User, topics: dict[str, Captured]
) -> None:
    current = chat(
        "gpt-4o-mini",
        1200,
        300,
        {
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
            "gen_ai.usage.cache_read.input_tokens": 400,
            "enduser.id": "u-1",
            "apex.feature": "summarize",
        },
    )
    # OpenLLMetry-style: deprecated names only, provider by gen_ai.system, user.id.
    deprecated = SpanSpec(
        {
            "gen_ai.system": "az.ai.openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.prompt_tokens": 900,
            "gen_ai.usage.completion_tokens": 100,
            "gen_ai.usage.cache_read_input_tokens": 50,
            "user.id": "u-2",
        },
        latency_ms=1500,
    )
    plain_http = SpanSpec({"http.request.method": "GET", "url.full": "https://example.com"})
    both = SpanSpec(
        {
            "gen_ai.provider.name": "anthropic",
            "gen_ai.system": "openai",  # the current name wins
            "gen_ai.request.model": "claude-sonnet-4",
            "gen_ai.usage.input_tokens": 10,
            "gen_ai.usage.prompt_tokens": 99,
            "gen_ai.usage.output_tokens": 5,
            "enduser.id": "u-3",
            "user.id": "ignored",
        }
    )
    body = export([current, deprecated, plain_http, both]).SerializeToString()

    response = post(otlp, ingest_key, body)

    assert response.status_code == 200, response.get_data()
    assert response.headers["Content-Type"] == PROTOBUF
    assert not response_of(response.get_data(), PROTOBUF).HasField("partial_success")
    got = records_of(topics["apex-usage"])
    assert set(got) == {current.record_id, deprecated.record_id, both.record_id}
    first = got[current.record_id]
    assert first["model"] == "gpt-4o-mini-2024-07-18"  # the response's model first
    assert (first["input_tokens"], first["output_tokens"]) == (1200, 300)
    assert first["cached_input_tokens"] == 400
    assert (first["provider"], first["feature"], first["user"]) == ("openai", "summarize", "u-1")
    assert first["status"] == "ok"
    assert first["operation"] == "chat"
    assert first["latency_ms"] == 850
    assert datetime.fromisoformat(first["ts"]) == current.start.replace(microsecond=0) + timedelta(
        microseconds=current.start.microsecond
    )
    second = got[deprecated.record_id]
    assert second["model"] == "gpt-4o"  # the request's model when no response model
    assert (second["input_tokens"], second["output_tokens"]) == (900, 100)
    assert second["cached_input_tokens"] == 50
    assert second["provider"] == "azure"  # az.ai.openai -> azure.ai.openai -> azure
    assert second["feature"] == "checkout"  # the resource's service.name
    assert second["user"] == "u-2"
    assert second["latency_ms"] == 1500
    third = got[both.record_id]
    assert (third["provider"], third["input_tokens"], third["user"]) == ("anthropic", 10, "u-3")
    assert topics["apex-usage"].empty()


def test_failed_calls_count_as_errors_and_agent_spans_are_skipped(
    otlp: FlaskClient, ingest_key: str, topics: dict[str, Captured]
) -> None:
    # What opentelemetry-instrumentation-openai-v2 records for a call that raised: a model,
    # error.type, status ERROR, no usage.
    raised = SpanSpec(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.system": "openai",
            "gen_ai.request.model": "gpt-4o",
            "error.type": "RateLimitError",
        },
        error=True,
    )
    # Status ERROR alone, with usage: an error of type _OTHER.
    cut_short = chat("gpt-4o-mini", 100, 7)
    cut_short.error = True
    # An agent span summing its calls' tokens (the calls have spans of their own).
    agent = chat("gpt-4o", 5000, 500, {"gen_ai.operation.name": "invoke_agent"})
    # An error without a model is not a model call Apex can attribute.
    no_model = SpanSpec({"error.type": "TimeoutError"}, error=True)
    body = export([raised, cut_short, agent, no_model]).SerializeToString()

    response = post(otlp, ingest_key, body)

    assert response.status_code == 200
    assert not response_of(response.get_data(), PROTOBUF).HasField("partial_success")
    got = records_of(topics["apex-usage"])
    assert set(got) == {raised.record_id, cut_short.record_id}
    assert got[raised.record_id]["status"] == "error"
    assert got[raised.record_id]["error_type"] == "RateLimitError"
    assert (got[raised.record_id]["input_tokens"], got[raised.record_id]["output_tokens"]) == (0, 0)
    assert got[cut_short.record_id]["status"] == "error"
    assert got[cut_short.record_id]["error_type"] == "_OTHER"
    assert got[cut_short.record_id]["input_tokens"] == 100


@pytest.mark.parametrize("gzipped", [False, True])
def test_json_export_with_hex_ids_and_string_integers(
    otlp: FlaskClient, ingest_key: str, topics: dict[str, Captured], gzipped: bool
) -> None:
    span = chat("gpt-4o", 2000, 150)
    tree = otlp_json(export([span]))
    wire = tree["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert wire["traceId"] == span.trace_id.hex()  # hex, as OTLP/JSON has it
    assert isinstance(wire["startTimeUnixNano"], str)  # 64-bit integers as strings
    wire["traceId"] = wire["traceId"].upper()  # hex is case-insensitive
    wire["kind"] = 3  # enums as integers
    wire["futureField"] = {"x": 1}  # unknown fields are ignored (the OTLP specification)
    body = dumps(tree)

    response = post(otlp, ingest_key, gzip.compress(body) if gzipped else body, JSON, gzipped)

    assert response.status_code == 200, response.get_data()
    assert response.headers["Content-Type"] == JSON
    assert response.get_json() == {}  # partial_success unset
    got = records_of(topics["apex-usage"])
    assert list(got) == [span.record_id]
    assert got[span.record_id]["input_tokens"] == 2000


def test_links_snake_case_ids_and_unnamed_services(
    otlp: FlaskClient, ingest_key: str, topics: dict[str, Captured]
) -> None:
    linked, unnamed, nameless = chat(), chat(), chat()
    first = otlp_json(export([linked]))
    wire = first["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    wire["links"] = [{"traceId": "ab" * 16, "spanId": "cd" * 8}]
    wire["trace_id"] = wire.pop("traceId")  # protobuf's JSON parser takes field names too
    # The SDKs' placeholder service name is no feature, and neither is a missing one.
    first["resourceSpans"] += (
        otlp_json(export([unnamed], service="unknown_service:python"))["resourceSpans"]
        + otlp_json(export([nameless], service=None))["resourceSpans"]
    )
    response = post(otlp, ingest_key, dumps(first), JSON)
    assert response.status_code == 200, response.get_data()
    got = records_of(topics["apex-usage"])
    assert set(got) == {linked.record_id, unnamed.record_id, nameless.record_id}
    assert got[linked.record_id]["feature"] == "checkout"
    assert got[unnamed.record_id]["feature"] is None
    assert got[nameless.record_id]["feature"] is None
    # A link's ids are hex as well.
    wire["links"] = [{"traceId": "q83vEjRWeJA=", "spanId": "cd" * 8}]
    message = error_of(post(otlp, ingest_key, dumps(first), JSON), 400, "bad_request")
    assert "spans[0].links[0].traceId" in message


def test_gzip_protobuf_and_an_empty_export(
    otlp: FlaskClient, ingest_key: str, topics: dict[str, Captured]
) -> None:
    span = chat()
    body = gzip.compress(export([span]).SerializeToString())
    assert post(otlp, ingest_key, body, gzipped=True).status_code == 200
    assert list(records_of(topics["apex-usage"])) == [span.record_id]
    # An export with no spans is a success with nothing to publish (the specification).
    assert post(otlp, ingest_key, b"").status_code == 200
    assert post(otlp, ingest_key, b"{}", JSON).get_json() == {}
    assert topics["apex-usage"].empty()


def test_the_same_export_twice_lands_twice_with_the_same_ids(
    otlp: FlaskClient, ingest_key: str, topics: dict[str, Captured]
) -> None:
    # The ids are the span's: the aggregator applies each once (the e2e test shows the count).
    spans = [chat(), chat("gpt-4o")]
    body = export(spans).SerializeToString()
    assert post(otlp, ingest_key, body).status_code == 200
    assert post(otlp, ingest_key, body).status_code == 200
    messages = topics["apex-usage"].pull(2)
    ids = [[r["record_id"] for r in json.loads(m.data)["records"]] for m in messages]
    assert ids == [[s.record_id for s in spans]] * 2


# --- partial success --------------------------------------------------------------------------


def _bad_spans() -> dict[str, tuple[SpanSpec, str]]:
    return {
        "negative": (chat(inputs=-5), "attributes.gen_ai.usage.input_tokens"),
        "string count": (
            chat(extra={"gen_ai.usage.output_tokens": "300"}),
            "attributes.gen_ai.usage.output_tokens: expected intValue, got stringValue",
        ),
        "double count": (
            chat(extra={"gen_ai.usage.input_tokens": 12.0}),
            "expected intValue, got doubleValue",
        ),
        "no model": (
            SpanSpec({"gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 2}),
            "gen_ai.response.model or gen_ai.request.model is required",
        ),
        "no output tokens": (
            SpanSpec({"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 10}),
            "attributes.gen_ai.usage.output_tokens",
        ),
        "cached over input": (
            chat(inputs=10, extra={"gen_ai.usage.cache_read.input_tokens": 11}),
            "gen_ai.usage.cache_read.input_tokens: must not exceed input_tokens",
        ),
        "before 2020": (
            SpanSpec(chat().attrs, start=datetime(2019, 6, 1, tzinfo=UTC)),
            "start_time_unix_nano",
        ),
        "future": (
            SpanSpec(chat().attrs, start=datetime.now(UTC) + timedelta(hours=3)),
            "start_time_unix_nano",
        ),
        "short trace id": (SpanSpec(chat().attrs, trace_id=b"\x01" * 8), "traceId"),
        "zero span id": (SpanSpec(chat().attrs, span_id=b"\x00" * 8), "spanId"),
        "user not a string": (chat(extra={"enduser.id": 42}), "enduser.id: expected stringValue"),
    }


@pytest.mark.parametrize("case", sorted(_bad_spans()))
def test_an_invalid_genai_span_is_rejected_and_the_rest_accepted(
    otlp: FlaskClient, ingest_key: str, topics: dict[str, Captured], case: str
) -> None:
    bad, error = _bad_spans()[case]
    good = chat()
    tree = otlp_json(export([good, bad]))

    response = post(otlp, ingest_key, dumps(tree), JSON)

    assert response.status_code == 200, response.get_data()
    partial = response.get_json()["partialSuccess"]
    assert partial["rejectedSpans"] == "1"  # int64 in JSON: a string
    assert error in partial["errorMessage"]
    assert bad.span_id.hex() in partial["errorMessage"]
    assert list(records_of(topics["apex-usage"])) == [good.record_id]


def test_ten_thousand_spans_half_invalid(
    otlp: FlaskClient, ingest_key: str, topics: dict[str, Captured]
) -> None:
    good = [chat() for _ in range(5000)]
    bad = [chat(inputs=-i - 1) for i in range(5000)]
    spans = [s for pair in zip(good, bad, strict=True) for s in pair]
    body = gzip.compress(export(spans).SerializeToString())

    started = time.monotonic()
    response = post(otlp, ingest_key, body, gzipped=True)
    took = time.monotonic() - started

    assert response.status_code == 200, response.get_data()[:500]
    partial = response_of(response.get_data(), PROTOBUF).partial_success
    assert partial.rejected_spans == 5000
    assert partial.error_message.count("attributes.gen_ai.usage.input_tokens") == 5
    assert partial.error_message.endswith("; and 4995 more")
    got = records_of(topics["apex-usage"])  # 5,000 records: one batch
    assert set(got) == {s.record_id for s in good}
    assert took < 60, took


# --- bad bodies --------------------------------------------------------------------------------


def test_garbage_protobuf_is_400_with_a_protobuf_status(
    otlp: FlaskClient, ingest_key: str, topics: dict[str, Captured]
) -> None:
    # A length-delimited field claiming 255 bytes where 1 follows.
    response = post(otlp, ingest_key, b"\x0a\xff\x01\x00")
    assert response.headers["Content-Type"] == PROTOBUF
    assert "not an OTLP ExportTraceServiceRequest" in error_of(response, 400, "bad_request")
    _, details = status_of(response.get_data(), PROTOBUF)
    assert details["BadRequest"].field_violations[0].field == "body"
    # Bytes that parse as nothing OTLP knows (an unknown field 15) are no export either.
    response = post(otlp, ingest_key, b"\x78\x01")
    assert "no OTLP resourceSpans" in error_of(response, 400, "bad_request")
    assert topics["apex-usage"].empty()


def test_truncated_gzip_is_400(
    otlp: FlaskClient, ingest_key: str, topics: dict[str, Captured]
) -> None:
    whole = gzip.compress(export([chat()]).SerializeToString())
    response = post(otlp, ingest_key, whole[:-12], gzipped=True)
    assert "truncated" in error_of(response, 400, "bad_request")
    response = post(otlp, ingest_key, b"\x1f\x8b not gzip", gzipped=True)
    assert "corrupt" in error_of(response, 400, "bad_request")
    assert topics["apex-usage"].empty()


def _gzip_of_zeros(size: int) -> bytes:
    """``size`` zero bytes gzipped, made a MiB at a time (the zeros are never held whole)."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    mib = b"\0" * MIB
    return b"".join([*(deflate.compress(mib) for _ in range(size // MIB)), deflate.flush()])


def test_a_gzip_bomb_is_413_without_inflating_it(
    otlp: FlaskClient, ingest_key: str, topics: dict[str, Captured]
) -> None:
    # 1 GiB of zeros in about 1 MiB: far over 32 MiB once inflated.
    bomb = _gzip_of_zeros(1024 * MIB)
    assert len(bomb) < 2 * MIB
    tracemalloc.start()
    try:
        response = post(otlp, ingest_key, bomb, gzipped=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "inflates to more than 32 MiB" in error_of(response, 413, "payload_too_large")
    # Inflating it whole would hold a GiB; the function stops at 32 MiB (a MiB at a time).
    assert peak < 40 * MIB, peak / MIB
    assert topics["apex-usage"].empty()


def test_a_body_over_5_mib_as_sent_is_413(otlp: FlaskClient, ingest_key: str) -> None:
    response = post(otlp, ingest_key, b"\0" * (5 * 1024 * 1024 + 1))
    error_of(response, 413, "payload_too_large")


def test_json_with_base64_ids_is_400_naming_the_field(
    otlp: FlaskClient, ingest_key: str, topics: dict[str, Captured]
) -> None:
    request = export([chat()])
    standard = json_format.MessageToDict(request)  # protobuf's own mapping: base64 bytes
    response = post(otlp, ingest_key, dumps(standard), JSON)
    message = error_of(response, 400, "bad_request")
    assert response.headers["Content-Type"] == JSON
    assert "resourceSpans[0].scopeSpans[0].spans[0].traceId" in message
    assert "hex, not base64" in message
    assert topics["apex-usage"].empty()


@pytest.mark.parametrize(
    "body",
    [b"{", b"[1, 2]", b'{"resourceSpans": 5}', b'{"resourceSpans": [{"scopeSpans": [{"spans": '
     b'[{"startTimeUnixNano": "soon"}]}]}]}', b"\xff\xfe", b"[" * 100_000],
)  # fmt: skip
def test_undecodable_json_is_400(otlp: FlaskClient, ingest_key: str, body: bytes) -> None:
    response = post(otlp, ingest_key, body, JSON)
    error_of(response, 400, "bad_request")
    rpc, _ = status_of(response.get_data(), JSON)
    assert rpc.code == 3  # INVALID_ARGUMENT


# --- the HTTP contract -------------------------------------------------------------------------


def test_other_paths_are_404(otlp: FlaskClient, ingest_key: str) -> None:
    body = export([chat()]).SerializeToString()
    for path in ("/", "/v1/metrics", "/v1/traces/x"):
        error_of(post(otlp, ingest_key, body, path=path), 404, "not_found")


def test_credentials(
    otlp: FlaskClient, function: Fn, user: User, topics: dict[str, Captured]
) -> None:
    body = export([chat()]).SerializeToString()
    headers = {"Content-Type": PROTOBUF}
    response = otlp.post(TRACES, data=body, headers=headers)
    assert "Bearer" in error_of(response, 401, "unauthenticated")
    assert response.headers["WWW-Authenticate"] == "Bearer"
    error_of(post(otlp, "apx_nope_nope", body), 401, "unauthenticated")
    made = function("workspaces").post(
        f"/{user.workspace}/keys", json={"name": "dash", "scope": "read"}, headers=user.headers
    )
    error_of(post(otlp, made.get_json()["secret"], body), 401, "unauthenticated")
    # A Firebase ID token is a credential too (DESIGN §10).
    assert post(otlp, user.signed_in.id_token, body).status_code == 200
    assert len(records_of(topics["apex-usage"])) == 1


def test_wrong_content_type_and_encoding_are_415(otlp: FlaskClient, ingest_key: str) -> None:
    body = export([chat()]).SerializeToString()
    response = post(otlp, ingest_key, body, "application/grpc")
    assert response.headers["Content-Type"] == JSON  # neither encoding: JSON
    error_of(response, 415, "unsupported_media_type")
    response = otlp.post(
        TRACES,
        data=body,
        headers={
            "Authorization": f"Bearer {ingest_key}",
            "Content-Type": PROTOBUF,
            "Content-Encoding": "br",
        },
    )
    assert "'br' is not supported" in error_of(response, 415, "unsupported_media_type")


def test_get_is_405(otlp: FlaskClient, ingest_key: str) -> None:
    response = otlp.get(TRACES, headers={"Authorization": f"Bearer {ingest_key}"})
    error_of(response, 405, "method_not_allowed")
    assert response.headers["Allow"] == "POST"


def test_rate_limited_is_429_with_retry_after_at_most_5_s(
    otlp: FlaskClient,
    ingest_key: str,
    topics: dict[str, Captured],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    body = export([chat()]).SerializeToString()
    monkeypatch.setenv("APEX_WORKSPACE_CALLS_PER_MINUTE", "2")
    start_within_one_window(need_s=15)
    # Making the key was a call of the workspace too, in this window or the one before: the
    # limit is reached after one or two exports.
    statuses: list[int] = []
    while len(statuses) < 3 and (response := post(otlp, ingest_key, body)).status_code == 200:
        statuses.append(response.status_code)
    assert statuses in ([200], [200, 200]), statuses
    assert seconds_left_in_window() > 10
    message = error_of(response, 429, "rate_limited")
    assert "workspace calls a minute" in message
    # The limiter's wait (the window ends in more than 10 s), capped at 5 s for exporters.
    waited = re.search(r"retry in (\d+) s", message)
    assert waited, message
    assert int(waited.group(1)) > 5
    assert response.headers["Retry-After"] == "5"
    _, details = status_of(response.get_data(), PROTOBUF)
    assert details["RetryInfo"].retry_delay.seconds == 5
