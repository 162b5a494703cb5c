"""Numbers in an answer: reading them, and checking them against the findings.

Both directions: every way a writer may round or restate a number of the findings passes,
and numbers the findings do not hold are caught, however they are written.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.agents.triage.intent import analyze, decide_route
from shared.answer.default import usd
from shared.answer.numbers import FindingsNumbers, NumberToken, check_text, extract_numbers
from shared.models.findings import (
    Anomaly,
    AnomalyDriver,
    BreakdownRow,
    DataReport,
    Findings,
    OptimizationReport,
    Recommendation,
    Trend,
    UsageTotals,
)
from shared.models.period import PeriodRange
from shared.models.triage import TriageResponse
from tests.support.findings import SAVINGS_QUESTION, synthetic_findings

NOW = datetime(2026, 11, 21, tzinfo=UTC)
PERIOD = PeriodRange(start=datetime(2026, 10, 22, tzinfo=UTC), end=NOW)
QUESTION = "How can we cut our LLM bill by 30% over the last 30 days?"


def _triage(question: str) -> TriageResponse:
    result = analyze(question, now=NOW)
    return TriageResponse.build(result, decide_route(result, has_usage_data=True))


def _totals(cost: float, requests: int, **extra: float) -> dict[str, float | int | None]:
    return {
        "requests": requests,
        "errors": 0,
        "error_rate": 0.0,
        "input_tokens": 0,
        "cached_input_tokens": 0,
        "output_tokens": 0,
        "cost_usd": cost,
        "unpriced_requests": 0,
        **extra,
    }


def _recommendation(title: str, detail: str, savings: float) -> Recommendation:
    return Recommendation(
        kind="cheaper_model",
        title=title,
        detail=detail,
        monthly_savings_usd=savings,
        confidence=0.6,
        basis="measured",
        evidence={"mean_output_tokens": 7.4, "requests": 1208},
        steps=["Switch it"],
        provider="openai",
        model="gpt-4o",
        feature="classify_ticket",
        target_model="gpt-4o-mini",
    )


def hand_findings(cost: float = 1840.2468, question: str = QUESTION) -> Findings:
    """Findings with known numbers (and short lists, so that list lengths stay small)."""
    totals = UsageTotals.model_validate(
        {**_totals(cost, 9512), "errors": 117, "error_rate": 0.0123, "latency_p95_ms": 2412.5}
    )
    row = BreakdownRow.model_validate(
        {**_totals(840.5, 1208), "key": "gpt-4o", "share_of_cost": 0.4567}
    )
    data = DataReport(
        period=PERIOD,
        totals=totals,
        breakdown={"model": [row]},
        trend=Trend(
            previous_period=PERIOD.previous(),
            previous_cost_usd=2098.41,
            cost_change_usd=-258.16,
            cost_change_pct=-12.3,
            previous_requests=9921,
            requests_change_pct=-4.1,
        ),
        anomalies=[
            Anomaly(
                day="2026-11-13",
                cost_usd=412.5,
                rolling_median_usd=119.33,
                ratio=3.4567,
                driver=AnomalyDriver(
                    provider="anthropic",
                    model="claude-sonnet-4-6",
                    feature="research_agent",
                    cost_usd=350.0,
                    rolling_median_usd=42.0,
                    increase_usd=308.0,
                ),
            )
        ],
    )
    recommendations = [
        _recommendation(
            "Move classify_ticket from gpt-4o to gpt-4o-mini",
            "1,208 calls averaged 7.4 output tokens; gpt-4o costs $2.50/$10.00 per million.",
            612.4,
        ),
        _recommendation("Batch nightly_digest", "Its calls have no end user.", 410.0),
        _recommendation("Cache faq_answer", "Repeated questions.", 95.55),
    ]
    optimization = OptimizationReport(
        period=PERIOD, recommendations=recommendations, total_monthly_savings_usd=1117.95
    )
    return Findings(
        question=question, triage=_triage(question), data=data, optimization=optimization
    )


FINDINGS = hand_findings()


def texts(tokens: list[NumberToken]) -> list[str]:
    return [token.text for token in tokens]


# --- reading numbers ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "value", "tolerance"),
    [
        ("$1,840.25", "money", 1840.25, 0.005),
        ("$1.8k", "money", 1800.0, 50.0),
        ("$2k", "money", 2000.0, 500.0),
        ("US$5", "money", 5.0, 0.5),
        ("USD 12", "money", 12.0, 0.5),
        ("40 dollars", "money", 40.0, 0.5),
        ("1.2M", "plain", 1_200_000.0, 50_000.0),
        ("3 million", "plain", 3_000_000.0, 500_000.0),
        ("1.5bn", "plain", 1.5e9, 0.05e9),
        ("30%", "percent", 30.0, 0.5),
        ("-12.3 %", "percent", -12.3, 0.05),
        ("+4.5%", "percent", 4.5, 0.05),
        ("\u22124.5%", "percent", -4.5, 0.05),
        ("5 percent", "percent", 5.0, 0.5),
        ("1,234", "plain", 1234.0, 0.5),
        ("0.45", "plain", 0.45, 0.005),
        (".5", "plain", 0.5, 0.05),
        ("1,800", "plain", 1800.0, 50.0),
        ("100", "plain", 100.0, 5.0),
        ("10", "plain", 10.0, 0.5),
        ("20000", "plain", 20000.0, 500.0),
    ],
)
def test_a_number_is_read_with_its_value_and_precision(
    text: str, kind: str, value: float, tolerance: float
) -> None:
    (token,) = extract_numbers(f"It was {text} then.")
    assert (token.text, token.kind) == (text, kind)
    assert token.value == pytest.approx(value)
    assert token.tolerance == pytest.approx(tolerance)


def test_a_sentence_reads_left_to_right() -> None:
    text = (
        "Spend was $1,840.25 (+12.3%) over 9,512 requests; 3.4x the median, p95 850ms. "
        "Savings: $1.1k/month."
    )
    assert texts(extract_numbers(text)) == [
        "$1,840.25",
        "+12.3%",
        "9,512",
        "3.4",
        "850",
        "$1.1k",
    ]


@pytest.mark.parametrize(
    "text",
    [
        "Move it from gpt-4o to gpt-4o-mini or gpt-4.1",
        "claude-3-5-sonnet-20241022 and us.anthropic.claude-3-haiku-20240307-v1",
        "p50 and p95 latency, le_500 bucket, gen_ai.usage.cache_read.input_tokens",
        "the v1beta API of gemini-2.5-flash",
        "feature extract_invoice_v2",
    ],
)
def test_digits_in_names_are_not_numbers(text: str) -> None:
    assert extract_numbers(text) == []


def test_a_dash_between_numbers_is_not_a_sign() -> None:
    tokens = extract_numbers("outputs of 3-12 tokens")
    assert [(t.text, t.value) for t in tokens] == [("3", 3.0), ("12", 12.0)]


def test_a_sentence_end_is_not_a_decimal_point() -> None:
    (token,) = extract_numbers("The total was $5.")
    assert (token.text, token.value, token.tolerance) == ("$5", 5.0, 0.5)


@pytest.mark.parametrize(
    ("text", "kind", "parts"),
    [
        ("2026-11-13", "date", (2026, 11, 13)),
        ("Nov 13", "date", (0, 11, 13)),
        ("November 13th, 2026", "date", (2026, 11, 13)),
        ("13 November 2026", "date", (2026, 11, 13)),
        ("the 13th of Nov", "date", (0, 11, 13)),
        ("14:05 UTC", "time", (14, 5)),
        ("02:00:30", "time", (2, 0, 30)),
    ],
)
def test_dates_and_times_are_read_whole(text: str, kind: str, parts: tuple[int, ...]) -> None:
    tokens = [t for t in extract_numbers(f"On {text}.") if t.kind == kind]
    assert [t.parts for t in tokens] == [parts]
    assert [t for t in extract_numbers(f"On {text}.") if t.kind not in ("date", "time")] == []


def test_an_iso_timestamp_is_a_date_and_a_time() -> None:
    tokens = extract_numbers("at 2026-11-13T14:05:00Z")
    assert [(t.kind, t.parts) for t in tokens] == [
        ("date", (2026, 11, 13)),
        ("time", (14, 5, 0)),
    ]


def test_ordinals_and_list_markers() -> None:
    tokens = extract_numbers("1. First\n2) Second\n  10. Tenth, the 3rd and the 22nd")
    assert [(t.kind, t.value) for t in tokens] == [("ordinal", n) for n in (1, 2, 10, 3, 22)]


# --- allowed: what the findings hold, however it is rounded ---------------------------


@pytest.mark.parametrize(
    "text",
    [
        # totals.cost_usd = 1840.2468, at every precision a writer might show
        "$1,840.25",
        "$1,840.2468",
        "1,840.25 USD",
        "$1,840",
        "1840",
        "about $1,800",
        "$1.8k",
        "$1.84k",
        "$2k",
        "-$1,840.25",
        # counts
        "9,512 requests",
        "9.5k requests",
        "117 errors",
        # fractions as percentages, percentages as given, signs dropped
        "an error rate of 1.2%",
        "1.23% errors",
        "0.0123",
        "45.7% of spend",
        "46% of spend",
        "-12.3%",
        "fell 12.3%",
        "down 12%",
        "requests -4.1%",
        "confidence 60%",
        # ratios and latency
        "3.5x the median",
        "3.46 times",
        "p95 latency 2,412.5 ms",
        "2,412 ms",
        # numbers inside the findings' strings (titles, details)
        "7.4 output tokens",
        "1,208 calls",
        "$2.50/$10.00 per million tokens",
        # list lengths, small counts, ordinals, the question, the period's length
        "3 recommendations",
        "the 1st and the 3rd",
        "cut 30%",
        "over 30 days",
        "0 unpriced calls",
        # dates of the findings: the anomaly day, the period, its inclusive last day
        "on 2026-11-13",
        "on Nov 13",
        "on November 13th, 2026",
        "from 2026-10-22 to 2026-11-20",
        "from Oct 22 to Nov 20, 2026",
        "from 2026-10-22 00:00 UTC to 2026-11-21 00:00 UTC",
        "in 2026",
        "$1,117.95/month in total",
        "$612.40/month",
        "+$308.00",
    ],
)
def test_numbers_the_findings_hold_are_allowed(text: str) -> None:
    assert extract_numbers(text), "the text must hold a number for this test to mean anything"
    assert check_text(text, FINDINGS) == []


# --- caught: numbers the findings lack ------------------------------------------------


@pytest.mark.parametrize(
    ("text", "offending"),
    [
        ("We spent $1,900.00.", ["$1,900.00"]),
        ("We spent $1,845.", ["$1,845"]),
        ("about $1.9k", ["$1.9k"]),
        ("That is $12,345.67 a year.", ["$12,345.67"]),
        ("37.5% of your bill", ["37.5%"]),
        ("9,513 requests", ["9,513"]),
        ("17 models", ["17"]),
        ("only $13 left", ["$13"]),  # money is never a "small count"
        ("$8 a day", ["$8"]),
        ("up 15%", ["15%"]),
        ("45.7 of spend", ["45.7"]),  # a fraction matches only as a percentage
        ("20 times the median", ["20"]),
        ("in 2025", ["2025"]),
        ("on 2026-12-01", ["2026-12-01"]),
        ("on Dec 25", ["Dec 25"]),
        ("at 18:30 UTC", ["18:30"]),
        ("the 12th recommendation", ["12th"]),
        ("over 31 days", ["31"]),
        ("1.5M tokens", ["1.5M"]),
        ("saves $1,117.95 a month and $13,415.40 a year", ["$13,415.40"]),
    ],
)
def test_numbers_the_findings_lack_are_caught(text: str, offending: list[str]) -> None:
    assert texts(check_text(text, FINDINGS)) == offending


def test_only_the_invented_numbers_of_a_long_text_are_named() -> None:
    text = (
        "From Oct 22 to Nov 20 you spent $1,840.25 on 9,512 requests (-12.3%). "
        "gpt-4o took 45.7%. On 2026-11-13 spend hit 3.5x the median. "
        "1. Move classify_ticket to gpt-4o-mini: $612.40/month\n"
        "2. Batch nightly_digest: $410.00/month\n"
        "3. Cache faq_answer: $95.55/month, and a bonus $250.00/month from magic\n"
        "Total $1,117.95/month, or $13,415.40 a year."
    )
    assert texts(check_text(text, FINDINGS)) == ["$250.00", "$13,415.40"]


def test_the_question_allows_its_numbers() -> None:
    question = "Can we get under $1,500 a month by March 3rd?"
    findings = hand_findings(question=question)
    assert check_text("Getting under $1,500 a month", findings) == []
    assert texts(check_text("Getting under $1,500 a month", FINDINGS)) == ["$1,500"]


def test_the_set_holds_list_lengths_and_period_lengths() -> None:
    allowed = FindingsNumbers.from_findings(FINDINGS)
    for value in (3.0, 30.0, 1.0):  # recommendations, the period's days, anomalies
        assert value in allowed.values
    assert (2026, 11, 20) in allowed.dates  # the day before a midnight end
    assert (2026, 11, 12) not in allowed.dates


def test_a_synthetic_findings_check_catches_a_changed_saving() -> None:
    findings = synthetic_findings(SAVINGS_QUESTION)
    assert findings.optimization is not None
    first = findings.optimization.recommendations[0]
    assert check_text(f"saves {usd(first.monthly_savings_usd)}/month", findings) == []
    # A change that lands on no other number of the findings (+1.37 now gives $8.10, the
    # anomaly driver's cost that day).
    changed = usd(first.monthly_savings_usd + 2.41)
    assert texts(check_text(f"saves {changed}/month", findings)) == [changed]


@given(st.floats(min_value=100, max_value=1e7, allow_nan=False, allow_infinity=False))
def test_any_cost_is_allowed_as_written_and_caught_when_changed(cost: float) -> None:
    findings = hand_findings(cost=cost, question="what did we spend?")
    allowed = FindingsNumbers.from_findings(findings)
    for written in (usd(cost), f"{cost:,.0f}", f"${cost / 1000:,.1f}k"):
        assert allowed.offending(f"We spent {written}.") == [], written
    bigger = cost * 1.5 + 10_000  # above every other number of the findings
    assert texts(allowed.offending(f"We spent {usd(bigger)}.")) == [usd(bigger)]
