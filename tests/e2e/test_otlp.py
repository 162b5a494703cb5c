"""OTLP from real clients into otlp_ingest on the local stack (issue 13 item 2): each client
configured the way users do (the OTEL_EXPORTER_OTLP_* variables with an ingest key made
through the workspaces function), each the released package from its registry, locked.

- Python: an app (tests/e2e/otlp_app.py, its own process) with the OpenTelemetry SDK and its
  OTLP/HTTP exporter (protobuf; gzip off, then on), opentelemetry-instrumentation-openai-v2
  around the official `openai` client calling a local server that speaks OpenAI's
  chat-completions protocol (usage with cached tokens, and a 429), apex.feature from baggage,
  and one hand-made span with cached tokens.
- Node: the JS SDK's @opentelemetry/exporter-trace-otlp-http (OTLP/JSON,
  tests/otlp-node/export.mjs): current and deprecated names, a span Apex rejects (the SDK
  reports the partial success), a span that is no model call.

The records land in agents_data, priced, exactly once, also when the exporter sends an
export again because the answer to the first was lost (a proxy forwards the first export,
then answers 503: the exporter retries what the function had already accepted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import httpx
import pytest

from shared.pricing import call_cost
from tests.support.fake_openai import RATE_LIMITED, Usage, fake_openai
from tests.support.flaky_proxy import Proxy, flaky_proxy
from tests.support.stack import Caller

ROOT: Final = Path(__file__).resolve().parents[2]
NODE_APP: Final = ROOT / "tests" / "otlp-node"
# How long a record may take from the export to agents_data (DESIGN §5: 30 s), with margin
# for a loaded machine.
LANDS_WITHIN_S: Final = 90
# After the expected count shows, how long it must stay so (a duplicate would add to it).
STAYS_S: Final = 5

GPT_4O: Final = Usage("gpt-4o-2024-08-06", prompt_tokens=200_000, completion_tokens=20_000,
                      cached_tokens=50_000)  # fmt: skip
GPT_4O_MINI: Final = Usage("gpt-4o-mini-2024-07-18", 100_000, 10_000, cached_tokens=40_000)
CLAUDE: Final = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "anthropic",
    "gen_ai.request.model": "claude-sonnet-4-5",
    "gen_ai.usage.input_tokens": 100_000,
    "gen_ai.usage.cache_read.input_tokens": 60_000,
    "gen_ai.usage.output_tokens": 5_000,
    "apex.feature": "summarize",
}


def make_key(caller: Caller, scope: str) -> str:
    made = httpx.post(
        f"{caller.functions['workspaces']}/{caller.workspace}/keys",
        json={"name": f"otel {scope}", "scope": scope},
        headers=caller.headers(),
        timeout=30,
    )
    assert made.status_code == 201, made.text
    return str(made.json()["secret"])


def usage(caller: Caller, read_key: str | None = None) -> dict[str, Any]:
    """agents_data over the last day (with the owner's token, or a read key)."""
    headers = caller.headers() if read_key is None else {"Authorization": f"Bearer {read_key}"}
    response = httpx.post(
        caller.functions["agents_data"],
        json={"period": "last_1d", "group_by": ["feature", "model"]},
        headers=headers,
        timeout=60,
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def landed(caller: Caller, requests: int, read_key: str | None = None) -> dict[str, Any]:
    """agents_data once ``requests`` calls show, checked to stay at that count."""
    deadline = time.monotonic() + LANDS_WITHIN_S
    report = usage(caller, read_key)
    while report["totals"]["requests"] < requests:
        assert time.monotonic() < deadline, f"only {report['totals']} after {LANDS_WITHIN_S} s"
        time.sleep(0.5)
        report = usage(caller, read_key)
    time.sleep(STAYS_S)
    again = usage(caller, read_key)
    assert report["totals"]["requests"] == again["totals"]["requests"] == requests, again
    return again


def by_key(report: dict[str, Any], dimension: str) -> dict[str, dict[str, Any]]:
    return {row["key"]: row for row in report["breakdown"][dimension]}


def expected_cost(*calls: tuple[str, str, int, int, int]) -> Decimal:
    at = datetime.now(UTC)
    return sum(
        (
            call_cost(p, m, input_tokens=i, cached_input_tokens=c, output_tokens=o, at=at)
            for p, m, i, c, o in calls
        ),
        Decimal(0),
    )


def run(
    command: list[str], env: dict[str, str], cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        command, env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done


def app_env(**extra: str) -> dict[str, str]:
    """The environment of a user's process: no emulator or Apex settings, only OTEL_*."""
    keep = {"PATH", "HOME", "LANG", "SYSTEMROOT", "TMPDIR"}
    return {**{k: v for k, v in os.environ.items() if k in keep}, **extra}


@dataclass(frozen=True)
class Mode:
    gzip: bool
    lose_first: bool
    # OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is the full URL; OTEL_EXPORTER_OTLP_ENDPOINT the base
    # the SDK appends /v1/traces to.
    traces_endpoint: bool
    # The header value percent-encoded (as the specification writes it) or with a plain space.
    encoded_header: bool


PYTHON_MODES: Final = {
    "protobuf": Mode(gzip=False, lose_first=False, traces_endpoint=True, encoded_header=True),
    "protobuf-gzip-retried": Mode(
        gzip=True, lose_first=True, traces_endpoint=False, encoded_header=False
    ),
}


def otel_env(proxy: Proxy, key: str, mode: Mode) -> dict[str, str]:
    header = (
        f"Authorization=Bearer%20{key}" if mode.encoded_header else f"Authorization=Bearer {key}"
    )
    env = {"OTEL_EXPORTER_OTLP_HEADERS": header}
    if mode.traces_endpoint:
        env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = f"{proxy.url}/v1/traces"
    else:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = proxy.url
    if mode.gzip:
        env["OTEL_EXPORTER_OTLP_COMPRESSION"] = "gzip"
    return env


@pytest.mark.parametrize("name", sorted(PYTHON_MODES))
def test_python_sdk_with_the_openai_instrumentation(
    new_caller: Callable[[], Caller], name: str
) -> None:
    mode = PYTHON_MODES[name]
    caller = new_caller()
    key = make_key(caller, "ingest")
    calls = [
        {"model": "gpt-4o", "prompt": "summarize this", "feature": "summarize"},
        {"model": "gpt-4o-mini", "prompt": "answer the ticket"},  # feature: the service
        {"model": "gpt-4o-mini", "prompt": RATE_LIMITED, "feature": "summarize"},
    ]
    served = {"gpt-4o": GPT_4O, "gpt-4o-mini": GPT_4O_MINI}
    with (
        fake_openai(served) as openai_server,
        flaky_proxy(caller.functions["otlp_ingest"], lose_first=mode.lose_first) as proxy,
    ):
        done = run(
            [sys.executable, str(ROOT / "tests" / "e2e" / "otlp_app.py")],
            app_env(
                OPENAI_BASE_URL=openai_server.base_url,
                APEX_CALLS=json.dumps(calls),
                APEX_MANUAL=json.dumps(CLAUDE),
                OTEL_SERVICE_NAME="support-bot",
                **otel_env(proxy, key, mode),
            ),
        )
    assert len(openai_server.requests) == 3
    assert "the call failed as the test wants: 429" in done.stderr
    assert "Failed to export" not in done.stderr, done.stderr
    spans = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(spans) == 4
    # What went over the wire: protobuf, gzip as configured, to /v1/traces; one export, sent
    # twice when its first answer was lost.
    assert {(e.path, e.content_type, e.content_encoding) for e in proxy.exchanges} == {
        ("/v1/traces", "application/x-protobuf", "gzip" if mode.gzip else None)
    }
    assert [(e.upstream_status, e.status) for e in proxy.exchanges] == (
        [(200, 503), (200, 200)] if mode.lose_first else [(200, 200)]
    )

    report = landed(caller, requests=4)

    totals = report["totals"]
    assert totals["errors"] == 1  # the 429
    # The instrumentation reports prompt and completion tokens; it does not read
    # prompt_tokens_details.cached_tokens (2.4b0), so the cached tokens are the hand-made
    # span's alone.
    assert totals["input_tokens"] == 200_000 + 100_000 + 0 + 100_000
    assert totals["output_tokens"] == 20_000 + 10_000 + 0 + 5_000
    assert totals["cached_input_tokens"] == 60_000
    assert totals["unpriced_requests"] == 0
    cost = expected_cost(
        ("openai", "gpt-4o-2024-08-06", 200_000, 0, 20_000),
        ("openai", "gpt-4o-mini-2024-07-18", 100_000, 0, 10_000),
        ("anthropic", "claude-sonnet-4-5", 100_000, 60_000, 5_000),
    )
    assert totals["cost_usd"] == pytest.approx(float(cost), abs=0.011)
    features = by_key(report, "feature")
    assert {k: (r["requests"], r["errors"]) for k, r in features.items()} == {
        "summarize": (3, 1),  # from baggage (two calls) and the span's own attribute
        "support-bot": (1, 0),  # OTEL_SERVICE_NAME
    }
    models = by_key(report, "model")
    # The response's model where there is one; the request's for the call that failed.
    assert set(models) == {"gpt-4o-2024-08-06", "gpt-4o-mini-2024-07-18", "gpt-4o-mini",
                           "claude-sonnet-4-5"}  # fmt: skip
    assert models["gpt-4o-mini"]["errors"] == 1


def test_node_sdk_exports_otlp_json(new_caller: Callable[[], Caller]) -> None:
    caller = new_caller()
    key = make_key(caller, "ingest")
    read_key = make_key(caller, "read")
    spans = [
        {
            "name": "chat gpt-4o",
            "attributes": {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.response.model": "gpt-4o-2024-08-06",
                "gen_ai.usage.input_tokens": 300_000,
                "gen_ai.usage.cache_read.input_tokens": 100_000,
                "gen_ai.usage.output_tokens": 30_000,
                "enduser.id": "ana",
            },
        },
        {
            # OpenLLMetry-style deprecated names.
            "name": "anthropic.chat",
            "attributes": {
                "gen_ai.system": "anthropic",
                "gen_ai.request.model": "claude-sonnet-4-5",
                "gen_ai.usage.prompt_tokens": 50_000,
                "gen_ai.usage.completion_tokens": 2_000,
                "gen_ai.usage.cache_read_input_tokens": 10_000,
                "user.id": "ben",
                "apex.feature": "triage",
            },
            "durationMs": 2300,
        },
        {
            "name": "chat broken",
            "attributes": {
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.input_tokens": -1,
                "gen_ai.usage.output_tokens": 10,
            },
        },
        {"name": "GET /health", "attributes": {"http.request.method": "GET"}},
    ]
    with flaky_proxy(caller.functions["otlp_ingest"], lose_first=True) as proxy:
        done = run(
            ["node", str(NODE_APP / "export.mjs")],
            app_env(
                APEX_SPANS=json.dumps(spans),
                OTEL_SERVICE_NAME="checkout",
                OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"{proxy.url}/v1/traces",
                OTEL_EXPORTER_OTLP_HEADERS=f"Authorization=Bearer%20{key}",
            ),
            cwd=NODE_APP,
        )
    sent = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(sent) == 4
    assert {(e.path, e.content_type) for e in proxy.exchanges} == {
        ("/v1/traces", "application/json")
    }
    assert [(e.upstream_status, e.status) for e in proxy.exchanges] == [(200, 503), (200, 200)]
    # The SDK read Apex's ExportTraceServiceResponse and reported the rejected span.
    assert "partial success" in done.stderr.lower(), done.stderr
    assert "rejectedSpans" in done.stderr or "rejected_spans" in done.stderr, done.stderr
    assert "gen_ai.usage.input_tokens" in done.stderr

    report = landed(caller, requests=2, read_key=read_key)

    totals = report["totals"]
    assert (totals["input_tokens"], totals["output_tokens"]) == (350_000, 32_000)
    assert totals["cached_input_tokens"] == 110_000
    assert (totals["errors"], totals["unpriced_requests"]) == (0, 0)
    cost = expected_cost(
        ("openai", "gpt-4o-2024-08-06", 300_000, 100_000, 30_000),
        ("anthropic", "claude-sonnet-4-5", 50_000, 10_000, 2_000),
    )
    assert totals["cost_usd"] == pytest.approx(float(cost), abs=0.011)
    assert {k: r["requests"] for k, r in by_key(report, "feature").items()} == {
        "checkout": 1,
        "triage": 1,
    }
