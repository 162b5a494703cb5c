"""The default answer writer, over findings computed from the synthetic workspace.

The findings are built here from real records: ``devstack.synthetic.generate`` gives the
usage (with its planted inefficiencies and anomaly), ``accumulate`` the daily rollups, and
``tests.support.findings`` sums them the way the data agent reports them. Triage is the real
triage.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from functools import cache
from typing import Any

import pytest

from devstack.synthetic import generate
from shared.answer import DefaultWriter, WrittenAnswer
from shared.answer.default import (
    EXAMPLE_OTEL,
    EXAMPLE_PLAIN,
    INGEST_MAX_RECORDS,
    findings_text,
    period_text,
    usd,
)
from shared.answer.numbers import check_text, extract_numbers
from shared.models.findings import (
    Findings,
    UsageTotals,
)
from shared.models.period import PeriodRange, day_start
from shared.models.triage import Intent
from shared.models.usage import parse_usage_record
from shared.usage.recommend import recommend
from shared.usage.report import build_data_report
from shared.usage.rollups import DailyRollup, UserDailyRollup, accumulate
from tests.support.findings import (
    ANOMALY_QUESTION,
    COST_QUESTION,
    DAYS,
    END,
    NOW,
    PERIOD,
    SAVINGS_QUESTION,
    USAGE_QUESTION,
    manifest,
    synthetic_findings,
    triage,
    unknown_calls,
)

# --- findings answers -----------------------------------------------------------------


def test_the_synthetic_findings_have_what_the_tests_need() -> None:
    findings = synthetic_findings(SAVINGS_QUESTION, unknown=12)
    assert findings.triage.route.answer == "findings"
    assert findings.triage.route.agents == ["data", "optimization"]
    assert findings.data is not None
    assert findings.optimization is not None
    assert len(findings.optimization.recommendations) == 7
    assert len(findings.data.anomalies) == 1
    assert findings.data.totals.unpriced_requests == 12


@pytest.mark.parametrize(
    "question", [COST_QUESTION, SAVINGS_QUESTION, ANOMALY_QUESTION, USAGE_QUESTION]
)
@pytest.mark.parametrize("unknown", [0, 12])
def test_every_number_of_a_findings_answer_comes_from_the_findings(
    question: str, unknown: int
) -> None:
    findings = synthetic_findings(question, unknown=unknown)
    text = DefaultWriter().write(findings).answer.text
    assert len(extract_numbers(text)) > 10
    assert check_text(text, findings) == []


def test_the_spend_answer_gives_the_period_total_and_trend() -> None:
    findings = synthetic_findings(COST_QUESTION)
    assert findings.data is not None
    data = findings.data
    written = DefaultWriter().write(findings)
    text = written.answer.text
    assert written.writer == "default"
    assert written.fallback_reason is None
    headline = text.splitlines()[0]
    assert f"**Spend for 2026-10-22 to 2026-11-20: {usd(data.totals.cost_usd)}**" in headline
    assert f"{data.totals.requests:,} requests" in headline
    direction = "up" if data.trend.cost_change_usd > 0 else "down"
    assert f"{direction} {usd(abs(data.trend.cost_change_usd))}" in headline
    assert f"({data.trend.cost_change_pct:+.1f}%)" in headline
    assert usd(data.trend.previous_cost_usd) in headline
    assert "2026-09-22 to 2026-10-21" in headline


def test_the_top_cost_drivers_are_the_most_expensive_rows() -> None:
    findings = synthetic_findings(COST_QUESTION)
    assert findings.data is not None
    text = DefaultWriter().write(findings).answer.text
    drivers = text.split("**Top cost drivers**\n", 1)[1].split("\n\n", 1)[0].splitlines()
    by_model = findings.data.breakdown["model"]
    by_feature = findings.data.breakdown["feature"]
    assert [line.split(":")[0] for line in drivers] == [
        f"- By model (top 3 of {len(by_model)})",
        f"- By feature (top 3 of {len(by_feature)})",
    ]
    top = sorted(by_model, key=lambda r: -r.cost_usd)[:3]
    positions = [drivers[0].index(f"`{row.key}` {usd(row.cost_usd)}") for row in top]
    assert positions == sorted(positions)
    assert f"({top[0].share_of_cost * 100:.1f}%)" in drivers[0]


def test_a_breakdown_the_question_names_comes_first() -> None:
    findings = synthetic_findings("Which users cost us the most in the last 30 days?")
    assert findings.triage.entities.group_by == ["user"]
    assert findings.data is not None
    text = DefaultWriter().write(findings).answer.text
    drivers = text.split("**Top cost drivers**\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert [line.split(" (top")[0] for line in drivers] == ["- By user", "- By model"]
    top_user = max(findings.data.breakdown["user"], key=lambda r: r.cost_usd)
    assert f"`{top_user.key}` {usd(top_user.cost_usd)}" in drivers[0]


def test_the_anomaly_is_named_with_its_driver() -> None:
    findings = synthetic_findings(ANOMALY_QUESTION)
    assert findings.triage.intent is Intent.ANOMALY
    assert findings.data is not None
    (anomaly,) = findings.data.anomalies
    planted = manifest().anomaly
    assert (anomaly.day, anomaly.driver.model) == (planted.day, planted.model)
    text = DefaultWriter().write(findings).answer.text
    sections = text.split("\n\n")
    assert sections[1].startswith("**Anomalies**")  # anomalies come first for this intent
    line = sections[1].splitlines()[1]
    assert line.startswith(
        f"- **{anomaly.day}**: {usd(anomaly.cost_usd)}, {anomaly.ratio:.1f} times"
    )
    assert f"Driver: `{anomaly.driver.model}` ({anomaly.driver.provider})" in line
    assert f"feature `{anomaly.driver.feature}`" in line
    assert f"(+{usd(anomaly.driver.increase_usd)})" in line


def test_recommendations_are_ranked_with_savings_and_total() -> None:
    findings = synthetic_findings(SAVINGS_QUESTION)
    assert findings.optimization is not None
    report = findings.optimization
    written = DefaultWriter().write(findings)
    assert written.answer.recommendations == report.recommendations
    text = written.answer.text
    sections = text.split("\n\n")
    assert sections[1].startswith(
        f"**Recommendations**, {usd(report.total_monthly_savings_usd)}/month in total"
    )
    ranked = re.findall(
        r"^(\d+)\. \*\*(.+?)\*\*: (up to )?(\$[\d,]+\.\d\d)/month "
        r"\((measured|upper bound), confidence (\d+)%\)",
        sections[1],
        re.M,
    )
    # Each with its basis (an upper bound is "up to") and its confidence.
    assert ranked == [
        (
            str(rank),
            rec.title,
            "" if rec.basis == "measured" else "up to ",
            usd(rec.monthly_savings_usd),
            rec.basis.replace("_", " "),
            f"{rec.confidence * 100:.0f}",
        )
        for rank, rec in enumerate(report.recommendations, 1)
    ]
    assert {basis for *_, basis, _ in ranked} == {"measured", "upper bound"}
    assert "Together, these savings" in text
    assert '("cut our LLM bill by 30%")' in text


def test_the_savings_target_verdict_follows_the_numbers() -> None:
    reached = synthetic_findings("How can we save $10 a month?")
    short = synthetic_findings("How can we save $100,000 a month?")
    for findings in (reached, short):
        assert findings.triage.entities.savings_target is not None
    assert "these savings reach your target" in DefaultWriter().write(reached).answer.text
    assert "these savings fall short of your target" in DefaultWriter().write(short).answer.text


@pytest.mark.parametrize("question", [COST_QUESTION, SAVINGS_QUESTION, USAGE_QUESTION])
def test_the_agents_own_reports_are_written_with_their_numbers_only(question: str) -> None:
    # The data and optimization agents' computations (shared/usage) over 60 synthetic days:
    # the period, and the one before it for the trend and the anomalies' rolling median.
    rows, users = _rollups_60d()
    data = build_data_report(rows, users, PERIOD)
    optimization = recommend(rows, PERIOD)
    assert optimization.recommendations
    findings = Findings(
        question=question, triage=triage(question), data=data, optimization=optimization
    )
    text = findings_text(findings)
    assert usd(data.totals.cost_usd) in text
    assert usd(optimization.total_monthly_savings_usd) in text
    assert "acme-llm-7" in text
    assert check_text(text, findings) == []


@cache
def _rollups_60d() -> tuple[list[DailyRollup], list[UserDailyRollup]]:
    records = generate(end=END, days=2 * DAYS).records + unknown_calls(12)
    batch = accumulate(records)
    return list(batch.daily.values()), list(batch.users.values())


def test_money_is_formatted_with_cents_and_thousands() -> None:
    assert usd(1840.2468) == "$1,840.25"
    assert usd(0) == "$0.00"
    assert usd(-12.5) == "-$12.50"
    assert usd(1234567.891) == "$1,234,567.89"


def test_unpriced_models_are_reported_not_hidden() -> None:
    findings = synthetic_findings(COST_QUESTION, unknown=12)
    text = DefaultWriter().write(findings).answer.text
    assert (
        "**Not priced**: 12 requests went to models the price table does not know: "
        "`acme-llm-7` (acme, 12 requests)." in text
    )
    assert "leave them out" in text
    clean = DefaultWriter().write(synthetic_findings(COST_QUESTION)).answer.text
    assert "Not priced" not in clean


def test_a_question_naming_a_feature_gets_its_row() -> None:
    findings = synthetic_findings(USAGE_QUESTION)
    assert findings.data is not None
    (row,) = [r for r in findings.data.breakdown["feature"] if r.key == "summarize_thread"]
    text = DefaultWriter().write(findings).answer.text
    assert f"- feature `summarize_thread`: {usd(row.cost_usd)}" in text
    assert f"{row.requests:,} requests, {row.errors:,} errors ({row.error_rate * 100:.1f}%)" in text
    assert "Latency: p50" in text
    assert "Errors:" in text


def test_no_optimization_means_no_recommendations() -> None:
    findings = synthetic_findings(ANOMALY_QUESTION)
    assert findings.optimization is None
    written = DefaultWriter().write(findings)
    assert written.answer.recommendations == []
    assert "Recommendations" not in written.answer.text


def test_an_optimization_without_recommendations_says_so() -> None:
    findings = synthetic_findings(SAVINGS_QUESTION)
    assert findings.optimization is not None
    empty = findings.model_copy(
        update={
            "optimization": findings.optimization.model_copy(
                update={"recommendations": [], "total_monthly_savings_usd": 0.0}
            )
        }
    )
    written = DefaultWriter().write(empty)
    assert written.answer.recommendations == []
    assert "**Recommendations**: none." in written.answer.text
    assert check_text(written.answer.text, empty) == []


def test_a_period_without_calls_says_so() -> None:
    findings = synthetic_findings(COST_QUESTION)
    assert findings.data is not None
    zero = UsageTotals(
        requests=0,
        errors=0,
        error_rate=0.0,
        input_tokens=0,
        cached_input_tokens=0,
        output_tokens=0,
        cost_usd=0.0,
        unpriced_requests=0,
    )
    quiet = findings.model_copy(
        update={
            "data": findings.data.model_copy(
                update={"totals": zero, "breakdown": {}, "anomalies": []}
            )
        }
    )
    text = findings_text(quiet)
    assert text.startswith("No LLM calls were recorded for 2026-10-22 to 2026-11-20.")
    assert check_text(text, quiet) == []


def test_period_text() -> None:
    assert period_text(PERIOD) == "2026-10-22 to 2026-11-20"
    one_day = PeriodRange(start=day_start(END), end=NOW)
    assert period_text(one_day) == "2026-11-20"
    rolling = PeriodRange(
        start=datetime(2026, 10, 21, 15, 42, 7, tzinfo=UTC),
        end=datetime(2026, 11, 20, 15, 42, 7, tzinfo=UTC),
    )
    assert period_text(rolling) == "2026-10-21 15:42 UTC to 2026-11-20 15:42 UTC"


def test_the_default_writer_is_deterministic() -> None:
    findings = synthetic_findings(SAVINGS_QUESTION, unknown=3)
    assert DefaultWriter().write(findings) == DefaultWriter().write(findings)


# --- onboarding -----------------------------------------------------------------------


def _json_blocks(text: str) -> list[dict[str, Any]]:
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)\n```", text, re.S)]


def test_onboarding_says_there_is_no_data_and_how_to_send_it() -> None:
    findings = synthetic_findings("What did we spend last week?", has_usage_data=False)
    assert findings.triage.route.answer == "onboarding"
    written = DefaultWriter(
        ingest_url="https://ingest.example/usage_ingest",
        otlp_url="https://ingest.example/otlp_ingest",
    ).write(findings)
    text = written.answer.text
    assert written.answer.recommendations == []
    assert text.startswith("There is no usage data in this workspace yet")
    # OpenTelemetry first: what instrumented apps already emit.
    otlp = text.index("**1. Already tracing with OpenTelemetry?")
    assert otlp < text.index("**2. Or POST the records to the `usage_ingest` function")
    for needle in (
        "`otlp_ingest` function at https://ingest.example/otlp_ingest",
        'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="https://ingest.example/otlp_ingest/v1/traces"',
        'OTEL_EXPORTER_OTLP_HEADERS="Authorization=Bearer%20$APEX_INGEST_KEY"',
        "OTEL_SERVICE_NAME",
        "opentelemetry-instrumentation-openai-v2",
        "`otlphttp` exporter",
        '"scope": "ingest"',
        "partial_success",
        "gen_ai.usage.input_tokens",
        "prompt_tokens",
        "service.name",
    ):
        assert needle in text[otlp:], needle
    for needle in (
        "`usage_ingest` function at https://ingest.example/usage_ingest",
        "Authorization: Bearer",
        "Firebase ID token",
        "application/json",
        "application/x-ndjson",
        f"{INGEST_MAX_RECORDS:,} records",
        "5 MiB",
        "gen_ai.usage.cache_read.input_tokens",
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.output_tokens",
        "gen_ai.response.model",
        "enduser.id",
        "error.type",
        "apex.feature",
        "import_invocation_logs(s3_client, bucket, prefix)",
        "import_usage_export(export, now=...)",
        "S3",
        "/v1/organization/usage/completions",
    ):
        assert needle in text, needle


def test_onboarding_examples_are_valid_records_of_the_same_call() -> None:
    text = DefaultWriter().write(synthetic_findings("How do I send you my usage data?")).answer.text
    otel, plain = _json_blocks(text)
    assert (otel, plain) == (EXAMPLE_OTEL, EXAMPLE_PLAIN)
    now = datetime(2026, 6, 2, tzinfo=UTC)
    from_otel = parse_usage_record(otel, now=now)
    from_plain = parse_usage_record(plain, now=now)
    content = set(type(from_plain).model_fields) - {"record_id", "operation"}
    assert from_otel.model_dump(include=content) == from_plain.model_dump(include=content)
    assert from_otel.cached_input_tokens == 800
    assert from_otel.latency_ms == 640


def test_onboarding_without_an_ingest_url_uses_a_placeholder() -> None:
    findings = synthetic_findings("How do I send you my usage data?")
    text = DefaultWriter().write(findings).answer.text
    assert 'curl -X POST "$USAGE_INGEST_URL"' in text
    assert 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="$OTLP_INGEST_URL/v1/traces"' in text


# --- help -----------------------------------------------------------------------------


def test_help_lists_what_apex_answers_with_examples() -> None:
    findings = synthetic_findings("hello there")
    assert findings.triage.route.answer == "help"
    written = DefaultWriter().write(findings)
    text = written.answer.text
    assert written.answer.recommendations == []
    for topic in (
        "**Spend**",
        "**Usage**",
        "**Anomalies**",
        "**Savings**",
        "**Sending usage data**",
    ):
        assert topic in text
    assert text.count('?"') >= 5  # an example question per topic
    assert "no usage data yet" not in text


def test_help_on_an_empty_workspace_points_to_onboarding() -> None:
    findings = synthetic_findings("hello there", has_usage_data=False)
    text = DefaultWriter().write(findings).answer.text
    assert text.endswith('ask "How do I send usage data?" to get started.')


def test_written_answer_round_trips_as_json() -> None:
    written = DefaultWriter().write(synthetic_findings(SAVINGS_QUESTION))
    assert WrittenAnswer.model_validate_json(written.model_dump_json()) == written
