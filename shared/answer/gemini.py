"""The Gemini answer writer: Gemini phrases the findings; the findings stay the source.

Gemini is reached through the official ``google-genai`` SDK, on Vertex AI with the service
account's rights (``GOOGLE_GENAI_USE_VERTEXAI=true``, ``GOOGLE_CLOUD_LOCATION``) or with a
Gemini API key; ``APEX_GEMINI_BASE_URL`` points the SDK at another endpoint (a proxy, the
tests' local server). One request per answer, no retries, bounded by ``timeout_s``
(the SDK's per-request HTTP timeout).

Only ``findings`` answers are phrased: onboarding and help are fixed, exact instructions
(field names, limits, commands) that the default writer gives word for word.

The text Gemini returns is used only if every number in it is backed by the findings
(``shared.answer.numbers``). Otherwise, or when the call fails (an HTTP error, a timeout, a
blocked, unfinished or empty response), the answer is the default writer's and
``fallback_reason`` says why; the fallback is logged at WARNING. The recommendations of the
answer always come from the findings, never from the text.
"""

from __future__ import annotations

import json
import logging
from typing import Final

import httpx
import httpx2
import pydantic
from google import genai
from google.auth import credentials as auth_credentials
from google.auth import exceptions as auth_exceptions
from google.genai import errors as genai_errors
from google.genai import types

from shared.answer.default import DefaultWriter, answer_lead, recommendations
from shared.answer.numbers import NumberToken, check_text, extract_numbers
from shared.answer.writer import WrittenAnswer
from shared.config import GeminiSettings
from shared.models.findings import Answer, Findings

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S: Final = 20.0
TEMPERATURE: Final = 0.2
MAX_REASON_CHARS: Final = 300
# How many offending numbers a fallback reason names.
MAX_NAMED_NUMBERS: Final = 5

SYSTEM_INSTRUCTION: Final = """\
You write the answers of Apex, an assistant that analyses a team's LLM spend. You get the \
user's question and the findings (JSON) that Apex computed from the team's usage records \
and a price table. Write the answer to the question from these findings only.

Rules:
- Use only facts in the findings. Do not add causes, advice or numbers of your own.
- Every number you write must appear in the findings or the question. Do not compute new \
numbers: no sums, differences, averages, ratios, yearly or daily figures that the findings \
do not already give.
- Keep money as given, in US dollars with two decimals and thousands separators \
(1840.25 is $1,840.25). Fractions between 0 and 1 (share_of_cost, error_rate, confidence) \
may be written as percentages (0.123 is 12.3%); fields ending in _pct are percentages \
already.
- Answer the question first, in its own terms: open with the opening given after the \
question (Apex's own first sentences: the latency, tokens, requests, error rate, top \
feature, anomaly or savings that were asked about). You may rephrase it, but keep every \
number in it. Then give the spend, its trend, the top cost drivers and any anomalies (with \
the model and feature that drove them) only where they help answer the question.
- For each recommendation, say whether its saving is measured or an upper bound (basis), \
with its confidence: "saves" only for a measured saving, "would save up to" for an upper \
bound.
- List the recommendations in the order given, each with its monthly savings, then the \
total (total_monthly_savings_usd).
- Where the findings say prices "workspace", the figures are at the team's own negotiated \
prices: say "at your prices".
- For a what_if, give its figures as repriced estimates and state its caveat (token counts \
differ between model families).
- If unknown_models or unpriced_requests are present, say that those calls are counted but \
not priced, so the spend leaves them out.
- Be concise. Plain text with light Markdown (bold, lists). No preamble, no closing offer."""


def build_prompt(findings: Findings) -> str:
    """The user turn: the question, Apex's opening (the question's own answer, when the
    findings give one) and the findings as JSON."""
    opening = answer_lead(findings)
    parts = [f"Question:\n{findings.question}"]
    if opening is not None:
        parts.append(f"Opening:\n{opening}")
    parts.append(f"Findings (JSON):\n{findings.model_dump_json()}")
    return "\n\n".join(parts)


def missing_from_opening(text: str, opening: str) -> list[NumberToken]:
    """The numbers of Apex's opening that the text's first paragraph does not give (as
    written, or rounded as the text writes them): the answer must lead with them."""
    first = extract_numbers(text.strip().split("\n\n", 1)[0])
    return [
        wanted
        for wanted in extract_numbers(opening)
        if not any(_same_number(wanted, given) for given in first)
    ]


def _same_number(wanted: NumberToken, given: NumberToken) -> bool:
    if wanted.parts or given.parts:
        return wanted.parts[-2:] == given.parts[-2:] and wanted.kind == given.kind
    return abs(wanted.value - given.value) <= max(wanted.tolerance, given.tolerance)


class GeminiFailure(Exception):
    """Gemini gave no usable text; the message is the fallback reason."""


# What a failed call raises: the API's error statuses, the HTTP transports' errors
# (timeouts, refused connections), credentials that cannot be had, and a response body
# the SDK cannot read (not JSON, or not a response).
_CALL_ERRORS: Final = (
    genai_errors.APIError,
    genai_errors.UnknownApiResponseError,
    json.JSONDecodeError,
    httpx.HTTPError,
    httpx2.HTTPError,
    auth_exceptions.GoogleAuthError,
    pydantic.ValidationError,
)


def _describe(error: Exception, timeout_s: float) -> str:
    if isinstance(error, httpx.TimeoutException | httpx2.TimeoutException):
        return f"Gemini did not answer within {timeout_s:g} s ({type(error).__name__})"
    if isinstance(error, genai_errors.APIError):
        status = f" {error.status}" if error.status else ""
        return f"Gemini call failed: HTTP {error.code}{status}: {error.message or ''}".rstrip(": ")
    return f"Gemini call failed: {type(error).__name__}: {error}".rstrip(": ")


def response_text(response: types.GenerateContentResponse) -> str:
    """The answer text of a response; raises ``GeminiFailure`` when there is none."""
    feedback = response.prompt_feedback
    if feedback is not None and feedback.block_reason is not None:
        raise GeminiFailure(f"Gemini blocked the prompt ({feedback.block_reason.value})")
    if not response.candidates:
        raise GeminiFailure("Gemini returned no candidates")
    candidate = response.candidates[0]
    reason = candidate.finish_reason
    if reason is not None and reason != types.FinishReason.STOP:
        raise GeminiFailure(f"Gemini stopped with finish reason {reason.value}")
    parts = candidate.content.parts if candidate.content is not None else None
    text = "".join(part.text for part in parts or () if part.text and not part.thought)
    if not text.strip():
        raise GeminiFailure("Gemini returned an empty text")
    return text.strip()


class GeminiWriter:
    """Phrases ``findings`` answers with Gemini; falls back to ``fallback`` with the reason."""

    def __init__(
        self,
        settings: GeminiSettings,
        project: str,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        fallback: DefaultWriter | None = None,
        credentials: auth_credentials.Credentials | None = None,
    ) -> None:
        self.model = settings.model
        self.timeout_s = timeout_s
        self._secret = settings.api_key
        self._fallback = fallback or DefaultWriter()
        http_options = types.HttpOptions(
            base_url=settings.base_url, timeout=max(1, round(timeout_s * 1000))
        )
        if settings.use_vertexai:
            self._client = genai.Client(
                vertexai=True,
                project=project,
                location=settings.location,
                credentials=credentials,
                http_options=http_options,
            )
        else:
            self._client = genai.Client(
                vertexai=False, api_key=settings.api_key, http_options=http_options
            )

    def write(self, findings: Findings) -> WrittenAnswer:
        if findings.triage.route.answer != "findings":
            return self._fallback.write(findings)
        try:
            text = self._phrase(findings)
        except GeminiFailure as failure:
            return self._fall_back(findings, str(failure))
        return WrittenAnswer(
            answer=Answer(text=text, recommendations=recommendations(findings)), writer="gemini"
        )

    def _phrase(self, findings: Findings) -> str:
        try:
            response = self._client.models.generate_content(
                model=self.model,
                contents=build_prompt(findings),
                config=types.GenerateContentConfig(
                    system_instruction=SYSTEM_INSTRUCTION, temperature=TEMPERATURE
                ),
            )
        except _CALL_ERRORS as error:
            raise GeminiFailure(_describe(error, self.timeout_s)) from error
        text = response_text(response)
        invented = check_text(text, findings)
        if invented:
            named = ", ".join(token.text for token in invented[:MAX_NAMED_NUMBERS])
            more = (
                f" and {len(invented) - MAX_NAMED_NUMBERS} more"
                if len(invented) > MAX_NAMED_NUMBERS
                else ""
            )
            raise GeminiFailure(f"Gemini's text has numbers the findings lack: {named}{more}")
        opening = answer_lead(findings)
        missing = [] if opening is None else missing_from_opening(text, opening)
        if missing:
            named = ", ".join(token.text for token in missing[:MAX_NAMED_NUMBERS])
            raise GeminiFailure(f"Gemini's text does not open with the answer asked for: {named}")
        return text

    def _fall_back(self, findings: Findings, reason: str) -> WrittenAnswer:
        if self._secret:
            reason = reason.replace(self._secret, "[redacted]")
        if len(reason) > MAX_REASON_CHARS:
            reason = reason[: MAX_REASON_CHARS - 1] + "…"
        logger.warning(
            "answer writer gemini fell back to the default answer: %s",
            reason,
            extra={
                "fields": {
                    "event": "answer_writer_fallback",
                    "writer": "gemini",
                    "model": self.model,
                    "fallback_reason": reason,
                }
            },
        )
        written = self._fallback.write(findings)
        return written.model_copy(update={"fallback_reason": reason})

    def close(self) -> None:
        """Close the SDK's HTTP connections."""
        self._client.close()
