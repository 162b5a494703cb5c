"""The default answer writer: deterministic text from the findings, no network, no model.

It writes three kinds of answer, by the route triage chose (``Route.answer``):

- ``findings``: the spend of the period and its trend, what the question named, the top
  cost drivers, anomalies with their driver, the ranked recommendations with their monthly
  savings and total, and the calls it could not price. Every number in the text comes from
  the findings (``shared.answer.numbers`` checks that in the tests); the sections follow the
  intent (savings first for ``optimization``, anomalies first for ``anomaly``).
- ``onboarding``: the workspace has no usage data; how to send it (the ``usage_ingest``
  function, both record forms with an example each, the importers).
- ``help``: what Apex can answer, with example questions.

Money is written ``$1,840.25``, shares of cost and error rates as percentages with one
decimal, confidences as whole percentages, ``cost_change_pct`` / ``requests_change_pct`` as
given (they are percentages already), latencies in whole milliseconds.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Final

from shared.answer.writer import WrittenAnswer
from shared.limits import MAX_INGEST_BODY_BYTES, MAX_INGEST_RECORDS, size_text
from shared.models.dimensions import Dimension
from shared.models.findings import (
    Anomaly,
    Answer,
    BreakdownRow,
    DataReport,
    Findings,
    OptimizationReport,
    Recommendation,
    UnknownModel,
)
from shared.models.period import DAYS_PER_MONTH, PeriodRange
from shared.models.triage import Intent, SavingsTarget

# usage_ingest's limits (DESIGN §2).
INGEST_MAX_RECORDS: Final = MAX_INGEST_RECORDS
INGEST_MAX_SIZE: Final = size_text(MAX_INGEST_BODY_BYTES)
TOP_ROWS: Final = 3
# Dimensions shown as cost drivers, in order; at most two of them.
_DRIVER_DIMENSIONS: Final[tuple[Dimension, ...]] = ("model", "feature", "provider", "user")

# The two record forms, describing the same call (a test checks they parse to one record).
EXAMPLE_TS: Final = datetime(2026, 6, 1, 9, 30, tzinfo=UTC)
_EXAMPLE_START_NS: Final = int(EXAMPLE_TS.timestamp()) * 1_000_000_000
EXAMPLE_OTEL_ATTRIBUTES: Final[dict[str, str | int]] = {
    "gen_ai.provider.name": "openai",
    "gen_ai.operation.name": "chat",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.response.model": "gpt-4o-mini",
    "gen_ai.usage.input_tokens": 1200,
    "gen_ai.usage.cache_read.input_tokens": 800,
    "gen_ai.usage.output_tokens": 150,
    "enduser.id": "user-42",
    "apex.feature": "support_chat",
}
EXAMPLE_OTEL: Final[dict[str, object]] = {
    "start_time_unix_nano": _EXAMPLE_START_NS,
    "end_time_unix_nano": _EXAMPLE_START_NS + 640_000_000,
    "attributes": EXAMPLE_OTEL_ATTRIBUTES,
}
EXAMPLE_PLAIN: Final[dict[str, object]] = {
    "id": "call-0001",
    "ts": EXAMPLE_TS.strftime("%Y-%m-%dT%H:%M:%SZ"),
    "provider": "openai",
    "model": "gpt-4o-mini",
    "input_tokens": 1200,
    "cached_input_tokens": 800,
    "output_tokens": 150,
    "latency_ms": 640,
    "feature": "support_chat",
    "user": "user-42",
    "status": "ok",
}

# --- formatting -----------------------------------------------------------------------


def usd(amount: float) -> str:
    """``$1,840.25``; a negative amount ``-$12.50``."""
    sign = "-" if amount < 0 else ""
    return f"{sign}${abs(amount):,.2f}"


def _count(value: int) -> str:
    return f"{value:,}"


def _share(fraction: float) -> str:
    return f"{fraction * 100:.1f}%"


def _change(pct: float) -> str:
    return f"{pct:+.1f}%"


def _ms(value: float) -> str:
    return f"{value:,.0f} ms"


def _moment(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC")


def period_text(period: PeriodRange) -> str:
    """``2026-10-22 to 2026-11-20`` (whole days, end inclusive), else to the minute."""
    if period.start.time() == time.min and period.end.time() == time.min:
        last = (period.end - timedelta(days=1)).date()
        if last == period.start.date():
            return last.isoformat()
        return f"{period.start.date().isoformat()} to {last.isoformat()}"
    return f"{_moment(period.start)} to {_moment(period.end)}"


def _code(name: str) -> str:
    return f"`{name}`"


# --- the findings answer --------------------------------------------------------------


def _headline(data: DataReport) -> str:
    totals, trend = data.totals, data.trend
    when = period_text(data.period)
    if totals.requests == 0:
        return f"No LLM calls were recorded for {when}."
    lines = [
        f"**Spend for {when}: {usd(totals.cost_usd)}** over {_count(totals.requests)} requests."
    ]
    before = f"the previous period ({period_text(trend.previous_period)})"
    if trend.cost_change_pct is None:
        lines.append(f"There was no priced spend in {before}.")
    elif trend.cost_change_usd == 0:
        lines.append(f"That is the same as {before}, {usd(trend.previous_cost_usd)}.")
    else:
        direction = "up" if trend.cost_change_usd > 0 else "down"
        lines.append(
            f"That is {direction} {usd(abs(trend.cost_change_usd))} "
            f"({_change(trend.cost_change_pct)}) on {before}, "
            f"{usd(trend.previous_cost_usd)}."
        )
    if trend.requests_change_pct is not None:
        lines[-1] += f" Requests: {_change(trend.requests_change_pct)}."
    return " ".join(lines)


def _usage(data: DataReport) -> str:
    totals = data.totals
    parts = [
        f"Tokens: {_count(totals.input_tokens)} input "
        f"({_count(totals.cached_input_tokens)} read from cache), "
        f"{_count(totals.output_tokens)} output."
    ]
    if totals.latency_p50_ms is not None and totals.latency_p95_ms is not None:
        parts.append(
            f"Latency: p50 {_ms(totals.latency_p50_ms)}, p95 {_ms(totals.latency_p95_ms)}."
        )
    parts.append(f"Errors: {_count(totals.errors)} ({_share(totals.error_rate)} of requests).")
    return " ".join(parts)


def _row_summary(row: BreakdownRow) -> str:
    text = f"{usd(row.cost_usd)} ({_share(row.share_of_cost)} of spend), "
    text += f"{_count(row.requests)} requests"
    if row.unpriced_requests:
        text += f" ({_count(row.unpriced_requests)} not priced)"
    text += f", {_count(row.errors)} errors ({_share(row.error_rate)})"
    if row.latency_p50_ms is not None and row.latency_p95_ms is not None:
        text += f", latency p50 {_ms(row.latency_p50_ms)}, p95 {_ms(row.latency_p95_ms)}"
    return text


def _asked_about(findings: Findings, data: DataReport) -> str | None:
    entities = findings.triage.entities
    wanted: list[tuple[Dimension, str]] = [
        *(("model", m.name) for m in entities.models),
        *(("feature", f.name) for f in entities.features),
        *(("provider", p.name) for p in entities.providers),
    ]
    lines = []
    for dimension, name in wanted:
        rows = data.breakdown.get(dimension)
        if rows is None:
            continue
        row = next((r for r in rows if r.key == name), None)
        if row is None:
            lines.append(f"- {dimension} {_code(name)}: no calls in this period.")
        else:
            lines.append(f"- {dimension} {_code(name)}: {_row_summary(row)}.")
    return "\n".join(lines) if lines else None


def _drivers(data: DataReport, asked: Sequence[Dimension]) -> str | None:
    """The top rows of two breakdowns, or of every one the question named ("by user")."""
    named = [d for d in asked if d in _DRIVER_DIMENSIONS]
    shown = max(2, len(named))
    lines = []
    for dimension in [*named, *(d for d in _DRIVER_DIMENSIONS if d not in named)]:
        rows = [row for row in data.breakdown.get(dimension, []) if row.cost_usd > 0]
        if not rows:
            continue
        top = sorted(rows, key=lambda r: (-r.cost_usd, r.key))[:TOP_ROWS]
        items = ", ".join(
            f"{_code(r.key)} {usd(r.cost_usd)} ({_share(r.share_of_cost)})" for r in top
        )
        scope = f" (top {len(top)} of {len(rows)})" if len(rows) > len(top) else ""
        lines.append(f"- By {dimension}{scope}: {items}.")
        if len(lines) == shown:
            break
    if not lines:
        return None
    return "**Top cost drivers**\n" + "\n".join(lines)


def _anomaly_line(anomaly: Anomaly) -> str:
    driver = anomaly.driver
    feature = f", feature {_code(driver.feature)}" if driver.feature else ""
    return (
        f"- **{anomaly.day}**: {usd(anomaly.cost_usd)}, {anomaly.ratio:.1f} times the rolling "
        f"median of {usd(anomaly.rolling_median_usd)}. Driver: {_code(driver.model)} "
        f"({driver.provider}){feature}, {usd(driver.cost_usd)} that day against a median of "
        f"{usd(driver.rolling_median_usd)} (+{usd(driver.increase_usd)})."
    )


def _anomalies(data: DataReport) -> str | None:
    if data.totals.requests == 0:
        return None
    if not data.anomalies:
        return "No spend anomalies: no day was far above the rolling median of the days before."
    return "**Anomalies**\n" + "\n".join(_anomaly_line(a) for a in data.anomalies)


def _recommendation_line(rank: int, rec: Recommendation) -> str:
    # The detail shows the numbers behind the saving; the evidence travels in the answer's
    # recommendations.
    return (
        f"{rank}. **{rec.title}**: {usd(rec.monthly_savings_usd)}/month "
        f"(confidence {rec.confidence * 100:.0f}%). {rec.detail}"
    )


def _recommendations(report: OptimizationReport) -> str:
    if not report.recommendations:
        return (
            "**Recommendations**: none. No check (cheaper model, prompt caching, batch API, "
            "shorter outputs, response cache, failed calls, deprecated models) found savings "
            "in this period."
        )
    lines = [
        f"**Recommendations**, {usd(report.total_monthly_savings_usd)}/month in total, "
        "largest first:"
    ]
    lines += [_recommendation_line(i, r) for i, r in enumerate(report.recommendations, 1)]
    return "\n".join(lines)


def _monthly_spend(data: DataReport) -> float:
    days = data.period.duration / timedelta(days=1)
    return data.totals.cost_usd / days * DAYS_PER_MONTH


def _target(target: SavingsTarget, report: OptimizationReport, data: DataReport | None) -> str:
    """Whether the savings reach the question's target; says so without new numbers."""
    total = report.total_monthly_savings_usd
    reached: bool | None = None
    if target.kind == "amount" and target.monthly_usd is not None:
        reached = total >= target.monthly_usd
    elif data is not None and data.totals.cost_usd > 0:
        spend = _monthly_spend(data)
        if target.kind == "percent" and target.percent is not None:
            reached = total >= spend * target.percent / 100
        elif target.kind == "budget" and target.monthly_usd is not None:
            reached = spend - total <= target.monthly_usd
    if reached is None:
        return f'These savings cannot be compared with your target ("{target.phrase}").'
    verdict = "reach" if reached else "fall short of"
    return f'Together, these savings {verdict} your target ("{target.phrase}").'


def _unpriced(findings: Findings) -> str | None:
    unknown: dict[tuple[str, str], UnknownModel] = {}
    for report in (findings.data, findings.optimization):
        for model in report.unknown_models if report is not None else ():
            unknown.setdefault((model.provider, model.model), model)
    unpriced = findings.data.totals.unpriced_requests if findings.data is not None else 0
    if not unknown and not unpriced:
        return None
    names = "; ".join(
        f"{_code(m.model)} ({m.provider}, {_count(m.requests)} requests)" for m in unknown.values()
    )
    calls = f"{_count(unpriced)} requests went to models" if unpriced else "Some models"
    which = f": {names}" if names else ""
    return (
        f"**Not priced**: {calls} the price table does not know{which}. They are counted, "
        "not priced: the spend and savings above leave them out."
    )


def findings_text(findings: Findings) -> str:
    """The ``findings`` answer: what the agents measured and recommend, in Markdown."""
    data, optimization = findings.data, findings.optimization
    sections: dict[str, str | None] = {}
    if data is not None:
        sections["headline"] = _headline(data)
        sections["asked"] = _asked_about(findings, data)
        if findings.triage.intent is Intent.USAGE_QUESTION and data.totals.requests:
            sections["usage"] = _usage(data)
        sections["drivers"] = _drivers(data, findings.triage.entities.group_by)
        sections["anomalies"] = _anomalies(data)
    if optimization is not None:
        sections["recommendations"] = _recommendations(optimization)
        target = findings.triage.entities.savings_target
        if target is not None and optimization.recommendations:
            sections["target"] = _target(target, optimization, data)
    sections["unpriced"] = _unpriced(findings)
    if data is None and optimization is None:
        sections["headline"] = "The agents produced no measurements for this question."
    order = {
        Intent.OPTIMIZATION: ("headline", "asked", "recommendations", "target", "drivers"),
        Intent.ANOMALY: ("headline", "asked", "anomalies", "drivers"),
    }.get(findings.triage.intent, ("headline", "asked", "usage", "drivers"))
    order += tuple(name for name in sections if name not in order)
    return "\n\n".join(text for name in order if (text := sections.get(name)))


# --- onboarding and help --------------------------------------------------------------


def _json_block(record: dict[str, object]) -> str:
    return "```json\n" + json.dumps(record, indent=2) + "\n```"


def onboarding_text(ingest_url: str | None = None) -> str:
    """How to send usage data: the ingest function, both record forms, the importers."""
    where = f" at {ingest_url}" if ingest_url else ""
    url = ingest_url or "$USAGE_INGEST_URL"
    otel_attributes = ", ".join(_code(name) for name in EXAMPLE_OTEL_ATTRIBUTES)
    return f"""\
There is no usage data in this workspace yet, so there is nothing to measure: Apex needs \
one usage record per LLM call. Here is how to send them.

**1. POST the records to the `usage_ingest` function{where}**, with your Firebase ID token \
in `Authorization: Bearer <ID token>`. The body is a JSON array of records \
(`Content-Type: application/json`) or NDJSON, one record per line \
(`Content-Type: application/x-ndjson`): at most {INGEST_MAX_RECORDS:,} records and \
{INGEST_MAX_SIZE} per request. The reply is `202 {{"accepted": ..., "rejected": \
[{{"index": ..., "error": ...}}]}}`; each rejected record's error names the field at fault. \
The records go to your workspace, and a record sent twice counts once (its `id`, or else a \
hash of its content).

```bash
curl -X POST "{url}" \\
  -H "Authorization: Bearer $FIREBASE_ID_TOKEN" \\
  -H "Content-Type: application/x-ndjson" \\
  --data-binary @usage.ndjson
```

**2. Each record takes either form.**

OpenTelemetry: a span with the GenAI semantic-convention attributes ({otel_attributes}; \
also `error.type` for a failed call). Latency is end minus start. \
`gen_ai.usage.input_tokens` includes the cached tokens; \
`gen_ai.usage.cache_read.input_tokens` says how many were read from cache. OTLP/JSON's \
attribute list (`[{{"key": ..., "value": {{"intValue": ...}}}}]`) is accepted too.

{_json_block(EXAMPLE_OTEL)}

Plain: `model`, `input_tokens` (including the cached ones), `output_tokens` and `ts` \
(ISO 8601; no offset means UTC) are required; `id`, `provider`, `cached_input_tokens`, \
`latency_ms`, `feature`, `user`, `status` (`ok` or `error`), `request_hash` (to find \
repeated identical requests) and `batch` (the call went through a batch API) are optional.

{_json_block(EXAMPLE_PLAIN)}

Tag each call with its feature (`feature` / `apex.feature`) and end user (`user` / \
`enduser.id`): spend is broken down by both, and savings are found per feature.

**3. Or import a provider's export** with the importers in `shared/ingest/`:
- AWS Bedrock: turn on model invocation logging to S3; \
`shared.ingest.bedrock.import_invocation_logs(s3_client, bucket, prefix)` reads the logs \
(`.json.gz` or `.json`) under the prefix. Put the feature in the request metadata \
(`apex.feature`).
- OpenAI: `shared.ingest.openai_export.import_usage_export(export, now=...)` reads pages of \
the organization usage API (`GET /v1/organization/usage/completions`, grouped by `model`); \
each project becomes a feature.

Once the records are in, ask again, for example "What did we spend last week?"."""


_HELP: Final = """\
Apex measures your team's LLM usage and finds ways to spend less. Ask about:

- **Spend**: what a period cost, by model, provider, feature, user or day, and the trend \
against the period before. "What did we spend on gpt-4o last week?"
- **Usage**: requests, tokens (input, cached, output), latency p50 and p95, error rates. \
"What was the p95 latency of summarize yesterday?"
- **Anomalies**: days whose spend was far above normal, and what drove them. \
"Why did costs spike on Tuesday?"
- **Savings**: ranked recommendations priced from the price table: a cheaper model, \
prompt caching, the batch API, shorter outputs, a response cache, failed and retried \
calls, deprecated models. "How can we cut our LLM bill by 30%?"
- **Sending usage data**: the record formats, the ingest endpoint and the importers. \
"How do I send you my usage data?"

Answers are computed from your workspace's usage records and a maintained price table; \
a model the table does not know is reported as such, never priced at zero."""


def help_text(findings: Findings) -> str:
    """What Apex can answer, with example questions."""
    if findings.triage.route.data_sufficient:
        return _HELP
    return (
        _HELP + '\n\nThis workspace has no usage data yet: ask "How do I send usage data?" '
        "to get started."
    )


# --- the writer -----------------------------------------------------------------------


class DefaultWriter:
    """Writes every answer from the findings alone; ``ingest_url`` goes in onboarding."""

    def __init__(self, *, ingest_url: str | None = None) -> None:
        self.ingest_url = ingest_url

    def text(self, findings: Findings) -> str:
        kind = findings.triage.route.answer
        writers: dict[str, Callable[[Findings], str]] = {
            "findings": findings_text,
            "onboarding": lambda _: onboarding_text(self.ingest_url),
            "help": help_text,
        }
        return writers[kind](findings)

    def write(self, findings: Findings) -> WrittenAnswer:
        return WrittenAnswer(
            answer=Answer(text=self.text(findings), recommendations=recommendations(findings)),
            writer="default",
        )


def recommendations(findings: Findings) -> list[Recommendation]:
    """The answer's recommendations: the optimization report's, ranked as it ranks them."""
    if findings.triage.route.answer != "findings" or findings.optimization is None:
        return []
    return list(findings.optimization.recommendations)
