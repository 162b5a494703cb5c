"""The Gemini writer against a local server speaking Gemini's REST protocol.

No mock of the SDK: the real ``google-genai`` client sends real HTTP requests to a stdlib
server on 127.0.0.1 (an ephemeral port), which records each request and answers as
``POST /{version}/models/{model}:generateContent`` does: a ``GenerateContentResponse``, an
error status with Google's error body, a slow answer, a blocked or empty one.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from google.oauth2.credentials import Credentials

from shared.answer import DefaultWriter, make_writer
from shared.answer.default import answer_lead, usd
from shared.answer.gemini import SYSTEM_INSTRUCTION, GeminiWriter, build_prompt
from shared.config import GeminiSettings, Settings
from shared.models.findings import Findings
from tests.support.findings import (
    ANOMALY_QUESTION,
    SAVINGS_QUESTION,
    synthetic_findings,
)

MODEL = "gemini-2.5-flash"
API_KEY = "AIzaTest-0123456789-secret"
PROJECT = "demo-apex"


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # JSON-able, or bytes sent as they are
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class GeminiStub:
    """A local Gemini endpoint: answers each request with the next queued ``Reply``."""

    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.received: list[Received] = []
        self.released = threading.Event()  # ends a slow reply early at teardown
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                stub.received.append(Received(self.path, dict(self.headers), body))
                reply = stub.replies.popleft() if stub.replies else Reply(500, _error(500))
                if reply.delay_s:
                    stub.released.wait(reply.delay_s)
                payload = (
                    reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
                )
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json; charset=UTF-8")
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (the timeout test)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def reply(self, *replies: Reply) -> None:
        self.replies.extend(replies)


def _error(code: int, status: str = "INTERNAL", message: str = "Internal error") -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status}}


def generated(text: str | None, finish: str = "STOP") -> dict[str, Any]:
    candidate: dict[str, Any] = {"finishReason": finish, "index": 0}
    if text is not None:
        candidate["content"] = {"role": "model", "parts": [{"text": text}]}
    return {
        "candidates": [candidate],
        "usageMetadata": {"promptTokenCount": 5321, "candidatesTokenCount": 240},
        "modelVersion": MODEL,
        "responseId": "stub-response",
    }


@pytest.fixture
def stub() -> Iterator[GeminiStub]:
    server = GeminiStub()
    server.thread.start()
    try:
        yield server
    finally:
        server.released.set()
        server.server.shutdown()
        server.server.server_close()


def api_key_settings(stub: GeminiStub) -> GeminiSettings:
    return GeminiSettings(
        model=MODEL, use_vertexai=False, location=None, api_key=API_KEY, base_url=stub.url
    )


@pytest.fixture
def writer(stub: GeminiStub) -> Iterator[GeminiWriter]:
    gemini = GeminiWriter(api_key_settings(stub), PROJECT, timeout_s=5)
    yield gemini
    gemini.close()


@pytest.fixture(scope="module")
def findings() -> Findings:
    return synthetic_findings(SAVINGS_QUESTION, unknown=12)


def faithful_text(findings: Findings) -> str:
    """A paraphrase a model could write: only the findings' numbers, rounded as a writer
    would round them (``$49``, ``Oct 22``, ``46%``, ``6.8x``)."""
    assert findings.data is not None
    assert findings.optimization is not None
    data, report = findings.data, findings.optimization
    top = max(data.breakdown["model"], key=lambda r: r.cost_usd)
    (anomaly,) = data.anomalies
    first = report.recommendations[0]
    return (
        f"You could save {usd(report.total_monthly_savings_usd)} a month with "
        f"{len(report.recommendations)} recommendations; the largest, "
        f'"{first.title}", saves {usd(first.monthly_savings_usd)}/month.\n\n'
        f"Between Oct 22 and November 20th, 2026 you spent about ${data.totals.cost_usd:,.0f} "
        f"({usd(data.totals.cost_usd)}) on {data.totals.requests:,} requests, "
        f"{abs(data.trend.cost_change_pct or 0):.1f}% less than the 30 days before.\n\n"
        f"- `{top.key}` is the largest cost: {top.share_of_cost * 100:.0f}% of spend.\n"
        f"- On {anomaly.day}, spend hit {anomaly.ratio:.1f}x its rolling median, driven by "
        f"`{anomaly.driver.feature}`.\n\n"
        f"{data.totals.unpriced_requests} calls of `acme-llm-7` are counted but not priced."
    )


# --- a faithful answer is used ---------------------------------------------------------


def test_a_faithful_text_is_the_answer(
    stub: GeminiStub, writer: GeminiWriter, findings: Findings
) -> None:
    text = faithful_text(findings)
    stub.reply(Reply(body=generated(text + "\n")))
    written = writer.write(findings)
    assert written.writer == "gemini"
    assert written.fallback_reason is None
    assert written.answer.text == text
    assert findings.optimization is not None
    assert written.answer.recommendations == findings.optimization.recommendations


def test_the_request_carries_the_model_key_and_findings(
    stub: GeminiStub, writer: GeminiWriter, findings: Findings
) -> None:
    stub.reply(Reply(body=generated(faithful_text(findings))))
    writer.write(findings)
    (request,) = stub.received
    assert re.fullmatch(rf"/v1(beta)?/models/{re.escape(MODEL)}:generateContent", request.path)
    assert request.headers["x-goog-api-key"] == API_KEY
    assert "Authorization" not in request.headers
    (content,) = request.body["contents"]
    assert content["role"] == "user"
    prompt = content["parts"][0]["text"]
    assert prompt == build_prompt(findings)
    opening = answer_lead(findings)
    assert opening is not None
    assert f"Opening:\n{opening}\n\n" in prompt  # the question's own answer, to lead with
    assert findings.model_dump_json() in prompt
    assert f"Question:\n{SAVINGS_QUESTION}" in prompt
    sent = json.loads(prompt.split("Findings (JSON):\n", 1)[1])
    assert Findings.model_validate(sent) == findings
    assert request.body["systemInstruction"]["parts"][0]["text"] == SYSTEM_INSTRUCTION
    assert request.body["generationConfig"]["temperature"] == pytest.approx(0.2)
    assert request.headers["X-Server-Timeout"] == "5"


def test_vertex_ai_uses_the_project_location_and_credentials(
    stub: GeminiStub, findings: Findings
) -> None:
    settings = GeminiSettings(
        model=MODEL, use_vertexai=True, location="europe-west4", api_key=None, base_url=stub.url
    )
    token = Credentials(token="sa-access-token")  # type: ignore[no-untyped-call]
    gemini = GeminiWriter(settings, PROJECT, credentials=token)
    stub.reply(Reply(body=generated(faithful_text(findings))))
    written = gemini.write(findings)
    gemini.close()
    assert written.writer == "gemini"
    (request,) = stub.received
    assert request.path == (
        f"/v1beta1/projects/{PROJECT}/locations/europe-west4/publishers/google/models/"
        f"{MODEL}:generateContent"
    )
    assert request.headers["Authorization"] == "Bearer sa-access-token"
    assert "x-goog-api-key" not in request.headers


# --- a text with numbers the findings lack falls back ---------------------------------


def test_an_invented_number_falls_back_to_the_default_answer(
    stub: GeminiStub, writer: GeminiWriter, findings: Findings
) -> None:
    invented = faithful_text(findings) + "\nThat is $12,345.67 a year, 37.5% of your bill."
    stub.reply(Reply(body=generated(invented)))
    written = writer.write(findings)
    default = DefaultWriter().write(findings)
    assert written.writer == "default"
    assert written.answer == default.answer
    assert written.fallback_reason == (
        "Gemini's text has numbers the findings lack: $12,345.67, 37.5%"
    )


def test_a_text_that_does_not_open_with_the_answer_asked_for_falls_back(
    stub: GeminiStub, writer: GeminiWriter, findings: Findings
) -> None:
    """Asked for savings, a text that leads with the spend (the savings only further down)
    is not the answer: the default writer's, which leads with them, is used instead."""
    faithful = faithful_text(findings)
    opening, rest = faithful.split("\n\n", 1)
    stub.reply(Reply(body=generated(f"{rest}\n\n{opening}")))
    written = writer.write(findings)
    assert written.writer == "default"
    assert findings.optimization is not None
    total = usd(findings.optimization.total_monthly_savings_usd)
    assert written.fallback_reason is not None
    assert written.fallback_reason.startswith(
        f"Gemini's text does not open with the answer asked for: {total}"
    )
    assert written.answer.text.startswith(f"**You could save {total}/month**")


def test_many_invented_numbers_are_named_up_to_five(
    stub: GeminiStub, writer: GeminiWriter, findings: Findings
) -> None:
    text = "Costs: " + ", ".join(f"${n},111.11" for n in range(11, 19))
    stub.reply(Reply(body=generated(text)))
    reason = writer.write(findings).fallback_reason
    assert reason == (
        "Gemini's text has numbers the findings lack: "
        "$11,111.11, $12,111.11, $13,111.11, $14,111.11, $15,111.11 and 3 more"
    )


# --- a failed call falls back ---------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (
            Reply(500, _error(500, "INTERNAL", "Internal error encountered.")),
            "Gemini call failed: HTTP 500 INTERNAL: Internal error encountered.",
        ),
        (
            Reply(
                429,
                _error(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted."),
                headers={"Retry-After": "30"},
            ),
            "Gemini call failed: HTTP 429 RESOURCE_EXHAUSTED: Resource has been exhausted.",
        ),
        (
            Reply(503, b"upstream connect error"),
            "Gemini call failed: HTTP 503",
        ),
        (
            Reply(200, b"<html>not json</html>"),
            "Gemini call failed: JSONDecodeError",
        ),
        (
            Reply(200, {"candidates": [], "promptFeedback": {"blockReason": "SAFETY"}}),
            "Gemini blocked the prompt (SAFETY)",
        ),
        (Reply(200, {"candidates": []}), "Gemini returned no candidates"),
        (Reply(200, {}), "Gemini returned no candidates"),
        (Reply(200, generated(None, "SAFETY")), "Gemini stopped with finish reason SAFETY"),
        (
            Reply(200, generated("Your spend was", "MAX_TOKENS")),
            "Gemini stopped with finish reason MAX_TOKENS",
        ),
        (Reply(200, generated("  \n")), "Gemini returned an empty text"),
    ],
    ids=[
        "500",
        "429",
        "503-not-json",
        "200-not-json",
        "prompt-blocked",
        "no-candidates",
        "empty-body",
        "safety",
        "max-tokens",
        "blank",
    ],
)
def test_a_failed_call_falls_back_with_the_reason(
    stub: GeminiStub, writer: GeminiWriter, findings: Findings, reply: Reply, reason: str
) -> None:
    stub.reply(reply)
    written = writer.write(findings)
    assert written.writer == "default"
    assert written.fallback_reason is not None
    assert written.fallback_reason.startswith(reason)
    assert written.answer == DefaultWriter().write(findings).answer
    assert len(stub.received) == 1  # one request: no retries behind the user's back


def test_a_slow_server_falls_back_after_the_timeout(stub: GeminiStub, findings: Findings) -> None:
    gemini = GeminiWriter(api_key_settings(stub), PROJECT, timeout_s=0.5)
    stub.reply(Reply(body=generated(faithful_text(findings)), delay_s=5))
    started = time.monotonic()
    written = gemini.write(findings)
    elapsed = time.monotonic() - started
    gemini.close()
    assert written.writer == "default"
    assert written.fallback_reason is not None
    assert written.fallback_reason.startswith("Gemini did not answer within 0.5 s")
    assert elapsed < 3


def test_an_unreachable_endpoint_falls_back(findings: Findings) -> None:
    unreachable = GeminiStub()  # bound, then closed: nothing listens on its port
    url = unreachable.url
    unreachable.server.server_close()
    settings = GeminiSettings(
        model=MODEL, use_vertexai=False, location=None, api_key=API_KEY, base_url=url
    )
    written = GeminiWriter(settings, PROJECT, timeout_s=2).write(findings)
    assert written.writer == "default"
    assert written.fallback_reason is not None
    assert written.fallback_reason.startswith("Gemini call failed: ConnectError")


# --- the fallback is logged, the key never ---------------------------------------------


def test_the_fallback_is_logged_without_the_api_key(
    stub: GeminiStub, writer: GeminiWriter, findings: Findings, caplog: pytest.LogCaptureFixture
) -> None:
    stub.reply(Reply(400, _error(400, "INVALID_ARGUMENT", f"API key not valid: {API_KEY}")))
    with caplog.at_level(logging.WARNING, logger="shared.answer.gemini"):
        written = writer.write(findings)
    assert written.fallback_reason == (
        "Gemini call failed: HTTP 400 INVALID_ARGUMENT: API key not valid: [redacted]"
    )
    (record,) = [r for r in caplog.records if r.name == "shared.answer.gemini"]
    assert record.levelno == logging.WARNING
    assert record.fields == {  # type: ignore[attr-defined]
        "event": "answer_writer_fallback",
        "writer": "gemini",
        "model": MODEL,
        "fallback_reason": written.fallback_reason,
    }
    assert API_KEY not in caplog.text
    assert all(API_KEY not in str(vars(r)) for r in caplog.records)


def test_a_used_answer_logs_nothing(
    stub: GeminiStub, writer: GeminiWriter, findings: Findings, caplog: pytest.LogCaptureFixture
) -> None:
    stub.reply(Reply(body=generated(faithful_text(findings))))
    with caplog.at_level(logging.WARNING, logger="shared.answer.gemini"):
        assert writer.write(findings).writer == "gemini"
    assert [r for r in caplog.records if r.name == "shared.answer.gemini"] == []


# --- routes Gemini does not phrase ------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "has_data", "kind"),
    [
        ("How do I send you my usage data?", True, "onboarding"),
        ("What did we spend last week?", False, "onboarding"),
        ("hello there", True, "help"),
    ],
)
def test_onboarding_and_help_are_the_default_text_without_a_call(
    stub: GeminiStub, writer: GeminiWriter, question: str, has_data: bool, kind: str
) -> None:
    findings = synthetic_findings(question, has_usage_data=has_data)
    assert findings.triage.route.answer == kind
    written = writer.write(findings)
    assert written == DefaultWriter().write(findings)
    assert written.fallback_reason is None
    assert stub.received == []


def test_an_anomaly_answer_without_recommendations(stub: GeminiStub, writer: GeminiWriter) -> None:
    findings = synthetic_findings(ANOMALY_QUESTION)
    assert findings.data is not None
    (anomaly,) = findings.data.anomalies
    text = (
        f"Spend on {anomaly.day} was {usd(anomaly.cost_usd)}, {anomaly.ratio:.1f}x the "
        f"rolling median of {usd(anomaly.rolling_median_usd)}, driven by "
        f"`{anomaly.driver.model}` in `{anomaly.driver.feature}` "
        f"(+{usd(anomaly.driver.increase_usd)})."
    )
    stub.reply(Reply(body=generated(text)))
    written = writer.write(findings)
    assert (written.writer, written.answer.text, written.answer.recommendations) == (
        "gemini",
        text,
        [],
    )


# --- make_writer -----------------------------------------------------------------------


def test_make_writer_builds_the_configured_writer(stub: GeminiStub, findings: Findings) -> None:
    base = {"GOOGLE_CLOUD_PROJECT": PROJECT}
    assert isinstance(make_writer(Settings.from_env(base), PROJECT), DefaultWriter)
    settings = Settings.from_env(
        {
            **base,
            "APEX_ANSWER_WRITER": "gemini",
            "APEX_GEMINI_MODEL": MODEL,
            "GEMINI_API_KEY": API_KEY,
            "APEX_GEMINI_BASE_URL": stub.url,
        }
    )
    gemini = make_writer(settings, PROJECT, ingest_url="https://ingest.example/usage_ingest")
    assert isinstance(gemini, GeminiWriter)
    stub.reply(Reply(body=generated(faithful_text(findings))))
    assert gemini.write(findings).writer == "gemini"
    onboarding = gemini.write(synthetic_findings("How do I send you my usage data?"))
    assert "https://ingest.example/usage_ingest" in onboarding.answer.text
    gemini.close()
