"""The triage engine: intents, entities, confidence and the route, over realistic questions."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.agents.triage.entities import normalize_model
from shared.agents.triage.intent import MAX_MESSAGE_CHARS, analyze, decide_route
from shared.models.period import MAX_PERIOD_DAYS, resolve_token
from shared.models.triage import Intent, TriageResponse, TriageResult

# Thursday 12 November 2026, mid-afternoon UTC.
NOW = datetime(2026, 11, 12, 15, 30, tzinfo=UTC)
KNOWN_MODELS = ("gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet-20241022", "gemini-2.0-flash")
KNOWN_FEATURES = ("summarize", "support_bot", "classify-ticket")
KNOWN_PROVIDERS = ("openai", "anthropic", "aws.bedrock")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def run(message: str) -> TriageResult:
    return analyze(
        message,
        now=NOW,
        known_models=KNOWN_MODELS,
        known_features=KNOWN_FEATURES,
        known_providers=KNOWN_PROVIDERS,
    )


TO_DATE = utc(2026, 11, 12, 15, 30) + timedelta(seconds=1)
Period = tuple[str, str | tuple[datetime, datetime]]  # (phrase, token or (start, end))
Target = tuple[str, float, str | None]  # (kind, percent or amount_usd, per)


@dataclass(frozen=True)
class Case:
    message: str
    intent: Intent
    period: Period | None = None
    models: tuple[str, ...] = ()
    providers: tuple[str, ...] = ()
    features: tuple[str, ...] = ()
    target: Target | None = None


A = Intent.ANOMALY
C = Intent.COST_ANALYSIS
D = Intent.DATA_ONBOARDING
O = Intent.OPTIMIZATION  # noqa: E741 - a one-letter column in the table below
Q = Intent.USAGE_QUESTION
X = Intent.OTHER

CASES = [
    # cost_analysis
    Case("What did we spend on gpt-4o last week?", C, ("last week", "last_week"), ("gpt-4o",)),
    Case(
        "How much did we spend on Claude this month?",
        C,
        ("this month", "this_month"),
        ("claude-3-5-sonnet-20241022",),
    ),
    Case(
        "Show me spend by feature for October",
        C,
        ("for October", (utc(2026, 10, 1), utc(2026, 11, 1))),
    ),
    Case("What's our total LLM cost in the past 30 days?", C, ("past 30 days", "last_30d")),
    Case("Which model costs us the most?", C),
    Case("Break down last month's bill by provider", C, ("last month", "last_month")),
    Case("How much are we paying OpenAI vs Anthropic?", C, providers=("openai", "anthropic")),
    Case(
        "What did the support_bot feature cost since Nov 3?",
        C,
        ("since Nov 3", (utc(2026, 11, 3), TO_DATE)),
        features=("support_bot",),
    ),
    Case(
        "Cost per request for gpt-4o-mini between 2026-10-01 and 2026-10-15",
        C,
        ("between 2026-10-01 and 2026-10-15", (utc(2026, 10, 1), utc(2026, 10, 16))),
        ("gpt-4o-mini",),
    ),
    Case(
        "llama 3.1 70b instruct vs mistral-large spend on aws bedrock this year",
        C,
        ("this year", (utc(2026, 1, 1), TO_DATE)),
        ("llama-3.1-70b-instruct", "mistral-large"),
        ("aws.bedrock",),
    ),
    Case(
        "How much did o3-mini and o1 cost last 24 hours?",
        C,
        ("last 24 hours", "last_1d"),
        ("o3-mini", "o1"),
    ),
    Case(
        "Our Anthropic bill for the past month", C, ("past month", "last_30d"), (), ("anthropic",)
    ),
    Case("gpt-4o last week?", C, ("last week", "last_week"), ("gpt-4o",)),
    # usage_question
    Case(
        "p95 latency of summarize yesterday", Q, ("yesterday", "yesterday"), (), (), ("summarize",)
    ),
    Case(
        "How many tokens did summarize use last week?",
        Q,
        ("last week", "last_week"),
        features=("summarize",),
    ),
    Case(
        "What's the error rate on claude 3.5 sonnet today?",
        Q,
        ("today", "today"),
        ("claude-3-5-sonnet-20241022",),
    ),
    Case(
        "How many requests did we make to gemini 2.0 flash this week?",
        Q,
        ("this week", "this_week"),
        ("gemini-2.0-flash",),
    ),
    Case("What's our cache hit rate over the last 7 days?", Q, ("last 7 days", "last_7d")),
    Case("Which models do we use the most?", Q),
    Case("Show average latency per model for the past 2 weeks", Q, ("past 2 weeks", "last_14d")),
    Case(
        "What was gpt-4o-mini's p99 latency in September 2026?",
        Q,
        ("in September 2026", (utc(2026, 9, 1), utc(2026, 10, 1))),
        ("gpt-4o-mini",),
    ),
    # optimization
    Case("how can we cut our LLM bill by 30%?", O, target=("percent", 30.0, None)),
    Case("How can we reduce our OpenAI spend?", O, providers=("openai",)),
    Case(
        "Save $500/month on `summarize`",
        O,
        features=("summarize",),
        target=("amount", 500.0, "month"),
    ),
    Case("Any recommendations to lower costs?", O),
    Case(
        "Should we move summarize from gpt-4o to gpt-4o-mini?",
        O,
        models=("gpt-4o", "gpt-4o-mini"),
        features=("summarize",),
    ),
    Case("Where are we wasting money on LLM calls?", O),
    Case("Reduce spend by a third without hurting quality", O, target=("percent", 33.33, None)),
    Case("Can prompt caching help our support_bot feature?", O, features=("support_bot",)),
    Case("Get our bill under $2k a month", O, target=("budget", 2000.0, "month")),
    Case("Would the batch API make classify-ticket cheaper?", O, features=("classify-ticket",)),
    Case(
        "How much did we spend last month and where can we save?", O, ("last month", "last_month")
    ),
    Case(
        "optimize the cost of classify-ticket over the past quarter",
        O,
        ("past quarter", "last_90d"),
        features=("classify-ticket",),
    ),
    Case("cut costs in half by end of year", O, target=("percent", 50.0, None)),
    Case(
        "save 20 percent on the summarize feature",
        O,
        features=("summarize",),
        target=("percent", 20.0, None),
    ),
    # anomaly
    Case(
        "why did costs spike on Tuesday?",
        A,
        ("on Tuesday", (utc(2026, 11, 10), utc(2026, 11, 11))),
    ),
    Case("Why did our spend double yesterday?", A, ("yesterday", "yesterday")),
    Case(
        "Something weird happened with costs on Nov 8",
        A,
        ("on Nov 8", (utc(2026, 11, 8), utc(2026, 11, 9))),
    ),
    Case(
        "Was there an unusual jump in gpt-4o usage last weekend?",
        A,
        ("last weekend", (utc(2026, 11, 7), utc(2026, 11, 9))),
        ("gpt-4o",),
    ),
    Case(
        "What caused the spike in tokens 3 days ago?",
        A,
        ("3 days ago", (utc(2026, 11, 9), utc(2026, 11, 10))),
    ),
    Case("Costs went up a lot this week, why?", A, ("this week", "this_week")),
    Case(
        "Our latency got worse since Monday, why?",
        A,
        ("since Monday", (utc(2026, 11, 9), TO_DATE)),
    ),
    # data_onboarding
    Case("how do I send you my usage data?", D),
    Case("How do I upload Bedrock invocation logs from S3?", D, providers=("aws.bedrock",)),
    Case("What format should usage records be in?", D),
    Case("How do I set up OpenTelemetry to send traces to Apex?", D),
    Case("I don't see any data in my workspace", D),
    Case("Can I import our OpenAI usage export?", D, providers=("openai",)),
    # other
    Case("hello", X),
    Case("thanks!", X),
    Case("What can you do?", X),
    Case("Tell me a joke", X),
]


@pytest.mark.parametrize("case", CASES, ids=[c.message for c in CASES])
def test_question_table(case: Case) -> None:
    result = run(case.message)
    entities = result.entities
    assert result.intent is case.intent
    assert [m.name for m in entities.models] == list(case.models)
    assert [p.name for p in entities.providers] == list(case.providers)
    assert [f.name for f in entities.features] == list(case.features)
    if case.period is None:
        assert entities.period is None
    else:
        phrase, expected = case.period
        assert entities.period is not None
        assert entities.period.phrase == phrase
        if isinstance(expected, str):
            assert entities.period.token == expected
            expected = (resolve_token(expected, NOW).start, resolve_token(expected, NOW).end)
        assert (entities.period.start, entities.period.end) == expected
    if case.target is None:
        assert entities.savings_target is None
    else:
        kind, value, per = case.target
        target = entities.savings_target
        assert target is not None
        assert target.kind == kind
        assert (target.percent if kind == "percent" else target.amount_usd) == value
        assert target.per == per


def test_the_table_is_big_and_covers_every_intent() -> None:
    assert len(CASES) >= 40
    assert {case.intent for case in CASES} == set(Intent)


# --- periods ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "phrase", "start", "end", "token"),
    [
        (
            "spend over the last 3 months",
            "last 3 months",
            NOW - timedelta(days=90),
            NOW,
            "last_90d",
        ),
        ("spend in the past year", "past year", NOW - timedelta(days=365), NOW, "last_365d"),
        ("spend last two weeks", "last two weeks", NOW - timedelta(days=14), NOW, "last_14d"),
        ("errors in the last 36 hours", "last 36 hours", NOW - timedelta(hours=36), NOW, None),
        ("spend in May", "in May", utc(2026, 5, 1), utc(2026, 6, 1), None),
        ("spend in December", "in December", utc(2025, 12, 1), utc(2026, 1, 1), None),
        ("spend in November", "in November", utc(2026, 11, 1), TO_DATE, None),
        ("spend this quarter", "this quarter", utc(2026, 10, 1), TO_DATE, None),
        ("spend last quarter", "last quarter", utc(2026, 7, 1), utc(2026, 10, 1), None),
        ("spend last year", "last year", utc(2025, 1, 1), utc(2026, 1, 1), None),
        ("spend since Monday", "since Monday", utc(2026, 11, 9), TO_DATE, None),
        ("spend since last month", "since last month", utc(2026, 10, 1), TO_DATE, None),
        ("spend since Dec 25", "since Dec 25", utc(2025, 12, 25), TO_DATE, None),
        ("spend on 2026-11-03", "on 2026-11-03", utc(2026, 11, 3), utc(2026, 11, 4), None),
        ("spend on Oct 3rd", "on Oct 3rd", utc(2026, 10, 3), utc(2026, 10, 4), None),
        ("spend on 3 October 2025", "on 3 October 2025", utc(2025, 10, 3), utc(2025, 10, 4), None),
        ("spend on Feb 29", "on Feb 29", utc(2024, 2, 29), utc(2024, 3, 1), None),
        (
            "spend between Oct 1 and Oct 15",
            "between Oct 1 and Oct 15",
            utc(2026, 10, 1),
            utc(2026, 10, 16),
            None,
        ),
        (
            "spend from 2026-10-15 to 2026-10-01",
            "from 2026-10-15 to 2026-10-01",
            utc(2026, 10, 1),
            utc(2026, 10, 16),
            None,
        ),
        (
            "spend 2026-10-01 to 2026-10-15",
            "2026-10-01 to 2026-10-15",
            utc(2026, 10, 1),
            utc(2026, 10, 16),
            None,
        ),
        (
            "spend the day before yesterday",
            "day before yesterday",
            utc(2026, 11, 10),
            utc(2026, 11, 11),
            None,
        ),
        ("spend 2 weeks ago", "2 weeks ago", utc(2026, 10, 26), utc(2026, 11, 2), None),
        ("top models in Q3", "in Q3", utc(2026, 7, 1), utc(2026, 10, 1), None),
        ("spend for Q4", "for Q4", utc(2026, 10, 1), TO_DATE, None),
        ("spend in q4 2025", "in q4 2025", utc(2025, 10, 1), utc(2026, 1, 1), None),
        ("spend month to date", "month to date", utc(2026, 11, 1), TO_DATE, "this_month"),
        # Longer than the API allows: the most recent 366 days are kept.
        ("spend last 500 days", "last 500 days", NOW - timedelta(days=366), NOW, "last_366d"),
        (
            "spend between 2024-01-01 and 2026-01-01",
            "between 2024-01-01 and 2026-01-01",
            utc(2025, 1, 1),
            utc(2026, 1, 2),
            None,
        ),
        # Several periods: the longest phrase wins, then the first.
        ("compare this month to last month", "this month", utc(2026, 11, 1), TO_DATE, "this_month"),
    ],
)
def test_period_phrases(
    message: str, phrase: str, start: datetime, end: datetime, token: str | None
) -> None:
    period = run(message).entities.period
    assert period is not None
    assert (period.phrase, period.start, period.end, period.token) == (phrase, start, end, token)


@pytest.mark.parametrize(
    "message",
    ["spend since 2027-01-01", "spend on Feb 30", "spend on 2026-13-01", "spend in May 9999"],
)
def test_impossible_periods_are_ignored(message: str) -> None:
    assert run(message).entities.period is None


def test_now_in_another_zone_gives_the_same_periods() -> None:
    tokyo = NOW.astimezone(timezone(timedelta(hours=9)))
    message = "spend yesterday"
    assert analyze(message, now=tokyo).entities == analyze(message, now=NOW).entities


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        analyze("spend yesterday", now=datetime(2026, 11, 12))


# --- models, providers, features --------------------------------------------------------


@pytest.mark.parametrize(
    ("phrase", "name"),
    [
        ("GPT 4o Mini", "gpt-4o-mini"),
        ("gpt4o", "gpt-4o"),
        ("GPT-4.1", "gpt-4.1"),
        ("Claude 3.5 Sonnet", "claude-3-5-sonnet"),
        ("claude sonnet 4.5", "claude-sonnet-4-5"),
        ("gemini 2.0 flash", "gemini-2.0-flash"),
        ("o3-mini", "o3-mini"),
        ("llama_3.1_70b", "llama-3.1-70b"),
    ],
)
def test_normalize_model(phrase: str, name: str) -> None:
    assert normalize_model(phrase) == name


@pytest.mark.parametrize(
    ("message", "models"),
    [
        ("we send gpt-4o small requests", ["gpt-4o"]),
        ("cut gpt-4o 30%", ["gpt-4o"]),
        ("gpt-4o 2 days ago", ["gpt-4o"]),
        ("embeddings with text-embedding-3-small", ["text-embedding-3-small"]),
        ("pin claude-3-5-sonnet-20241022 and gemini-1.5-pro-002", None),
        ("try command-r-plus", ["command-r-plus"]),
        ("the command line tool", []),
        ("o1 vs o3-mini vs o4-mini", ["o1", "o3-mini", "o4-mini"]),
        ("our bot is great, thanks", []),
        ("what do we spend on claude?", ["claude"]),
        ("GPT-4o.", ["gpt-4o"]),
    ],
)
def test_model_mentions_without_known_names(message: str, models: list[str] | None) -> None:
    found = analyze(message, now=NOW).entities.models
    expected = (
        models if models is not None else ["claude-3-5-sonnet-20241022", "gemini-1.5-pro-002"]
    )
    assert [m.name for m in found] == expected
    assert not any(m.known for m in found)


def test_known_models_come_back_in_the_workspace_spelling() -> None:
    models = run("compare GPT4o-mini, Claude 3.5 Sonnet and gpt-5 costs").entities.models
    assert [(m.name, m.phrase, m.known) for m in models] == [
        ("gpt-4o-mini", "GPT4o-mini", True),
        ("claude-3-5-sonnet-20241022", "Claude 3.5 Sonnet", True),
        ("gpt-5", "gpt-5", False),
    ]


def test_a_bare_family_expands_to_the_known_models_of_that_family() -> None:
    models = analyze("gpt spend", now=NOW, known_models=KNOWN_MODELS).entities.models
    assert [m.name for m in models] == ["gpt-4o", "gpt-4o-mini"]


@pytest.mark.parametrize(
    ("message", "known", "providers"),
    [
        ("spend via Vertex AI", (), ["google"]),
        ("azure openai costs", (), ["azure"]),
        ("openai and anthropic", (), ["openai", "anthropic"]),
        ("our bedrock bill", ("aws.bedrock",), ["aws.bedrock"]),
        ("our bedrock bill", (), ["aws"]),
        ("mistral-large vs mistral", (), ["mistral"]),
        ("spend on fireworks", ("fireworks-prod",), ["fireworks"]),
        ("spend on fireworks-prod", ("fireworks-prod",), ["fireworks-prod"]),
    ],
)
def test_providers(message: str, known: tuple[str, ...], providers: list[str]) -> None:
    found = analyze(message, now=NOW, known_providers=known).entities.providers
    assert [p.name for p in found] == providers
    assert [p.known for p in found] == [p in known for p in providers]


@pytest.mark.parametrize(
    ("message", "features"),
    [
        ("cost of `checkout-assist`", [("checkout-assist", False)]),
        ("cost of feature search_v2", [("search_v2", False)]),
        ("cost of the triage-email feature", [("triage-email", False)]),
        ("cost of the Support Bot", [("support_bot", True)]),
        ("which feature costs most, per feature", []),
        ("is `gpt-4o` worth it", []),
    ],
)
def test_features(message: str, features: list[tuple[str, bool]]) -> None:
    found = analyze(message, now=NOW, known_features=KNOWN_FEATURES).entities.features
    assert [(f.name, f.known) for f in found] == features


# --- savings targets --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "kind", "percent", "amount", "per", "monthly"),
    [
        ("cut 30%", "percent", 30.0, None, None, None),
        ("reduce costs by half", "percent", 50.0, None, None, None),
        ("halve our spend", "percent", 50.0, None, None, None),
        ("make it 25% cheaper", "percent", 25.0, None, None, None),
        ("lower the bill by 12.5 percent", "percent", 12.5, None, None, None),
        ("save $6k per year", "amount", None, 6000.0, "year", 500.0),
        ("save $1,500 a week", "amount", None, 1500.0, "week", 6428.57),
        ("save 1.5k dollars monthly", "amount", None, 1500.0, "month", 1500.0),
        ("save $200", "amount", None, 200.0, None, None),
        ("keep spend below $10,000/month", "budget", None, 10000.0, "month", 10000.0),
        ("our budget of $3k", "budget", None, 3000.0, None, None),
    ],
)
def test_savings_targets(
    message: str,
    kind: str,
    percent: float | None,
    amount: float | None,
    per: str | None,
    monthly: float | None,
) -> None:
    target = run(message).entities.savings_target
    assert target is not None
    assert (target.kind, target.percent, target.amount_usd, target.per, target.monthly_usd) == (
        kind,
        percent,
        amount,
        per,
        monthly,
    )


@pytest.mark.parametrize("message", ["our error rate is 5%", "cut 250%", "save the report"])
def test_no_savings_target(message: str) -> None:
    assert run(message).entities.savings_target is None


@pytest.mark.parametrize(
    ("message", "group_by"),
    [
        ("Which users spend the most?", ["user"]),
        ("who is driving our OpenAI bill", ["user"]),
        ("spend per end-user last week", ["user"]),
        ("break last month down by model and by feature", ["model", "feature"]),
        ("cost across providers", ["provider"]),
        ("daily spend in October", ["day"]),
        ("What did we spend last month, and where can we save?", []),
    ],
)
def test_breakdowns_the_message_names(message: str, group_by: list[str]) -> None:
    assert run(message).entities.group_by == group_by


# --- cues and confidence ----------------------------------------------------------------


def test_matched_cues_say_what_fired() -> None:
    result = run("how can we cut our LLM bill by 30%?")
    fired = {(c.intent, c.cue, c.phrase) for c in result.matched_cues}
    assert (Intent.OPTIMIZATION, "reduce", "cut") in fired
    assert (Intent.COST_ANALYSIS, "bill", "bill") in fired
    assert (Intent.OPTIMIZATION, "savings_target", "cut our LLM bill by 30%") in fired
    total = sum(c.weight for c in result.matched_cues if c.intent is Intent.OPTIMIZATION)
    assert result.scores[Intent.OPTIMIZATION] == total


def test_entities_alone_suggest_a_cost_question() -> None:
    result = run("gpt-4o last week?")
    assert {c.cue for c in result.matched_cues} == {"period", "named"}
    # With words that say what is asked, entities add nothing.
    assert {c.cue for c in run("p95 latency of gpt-4o last week").matched_cues} == {"latency"}


def test_confidence_grows_with_evidence() -> None:
    weak = run("optimize")
    strong = run("optimize: recommend cheaper models to cut 30%")
    assert weak.intent is strong.intent is Intent.OPTIMIZATION
    assert 0 < weak.confidence < strong.confidence <= 1


def test_confidence_drops_when_the_runner_up_is_close() -> None:
    clear = run("what did we spend")
    tied = run("what did we spend in tokens")  # spend (2.0) vs tokens (2.0)
    assert tied.scores[Intent.COST_ANALYSIS] == tied.scores[Intent.USAGE_QUESTION]
    assert tied.intent is Intent.COST_ANALYSIS  # ties go to the earlier intent in priority
    assert tied.confidence < clear.confidence


def test_no_evidence_is_other_with_low_confidence() -> None:
    unknown = run("Tell me a joke")
    greeting = run("hello")
    assert unknown.intent is greeting.intent is Intent.OTHER
    assert unknown.matched_cues == []
    assert unknown.confidence < 0.5 < greeting.confidence


def test_text_after_the_size_limit_is_not_read() -> None:
    message = "x" * MAX_MESSAGE_CHARS + " optimize our spend"
    assert run(message).intent is Intent.OTHER


# --- route ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "has_data", "agents", "answer"),
    [
        ("What did we spend on gpt-4o last week?", True, ["data", "optimization"], "findings"),
        ("how can we cut our LLM bill by 30%?", True, ["data", "optimization"], "findings"),
        ("p95 latency of summarize yesterday", True, ["data"], "findings"),
        ("why did costs spike on Tuesday?", True, ["data"], "findings"),
        # An anomaly question that also asks how to save goes through both.
        ("why did costs spike? any recommendations?", True, ["data", "optimization"], "findings"),
        ("tokens per request, and save $500/month", True, ["data", "optimization"], "findings"),
        ("What did we spend on gpt-4o last week?", False, [], "onboarding"),
        ("how can we cut our LLM bill by 30%?", False, [], "onboarding"),
        ("p95 latency of summarize yesterday", False, [], "onboarding"),
        ("why did costs spike on Tuesday?", False, [], "onboarding"),
        ("how do I send you my usage data?", True, [], "onboarding"),
        ("how do I send you my usage data?", False, [], "onboarding"),
        ("hello", True, [], "help"),
        ("hello", False, [], "help"),
    ],
)
def test_route(message: str, has_data: bool, agents: list[str], answer: str) -> None:
    route = decide_route(run(message), has_usage_data=has_data)
    assert route.agents == agents
    assert route.answer == answer
    assert route.data_sufficient is has_data
    assert route.reason


def test_route_rule_reads_the_result_not_the_text() -> None:
    usage = run("how many tokens yesterday")
    assert decide_route(usage, has_usage_data=True).agents == ["data"]
    asks_savings = usage.model_copy(update={"scores": {**usage.scores, Intent.OPTIMIZATION: 2.0}})
    assert decide_route(asks_savings, has_usage_data=True).agents == ["data", "optimization"]


def test_triage_response_json_shape() -> None:
    result = run("What did we spend on gpt-4o last week? cut 30%")
    response = TriageResponse.build(result, decide_route(result, has_usage_data=True))
    body = json.loads(response.model_dump_json())
    assert set(body) == {"intent", "confidence", "entities", "route"}
    assert body["intent"] == "optimization"
    assert set(body["entities"]) == {
        "period",
        "models",
        "providers",
        "features",
        "savings_target",
        "group_by",
        "metrics",
        "intents",
        "reference",
        "inherited",  # DESIGN §3.6: always present; empty for a message without a thread
        "what_if",  # docs/prices.md: null unless the message asks what-if
    }
    assert body["entities"]["inherited"] == []
    assert body["entities"]["reference"] is None
    assert body["entities"]["intents"] == ["cost_analysis", "optimization"]
    assert body["entities"]["metrics"] == ["cost"]
    assert body["entities"]["period"] == {
        "start": "2026-11-02T00:00:00Z",
        "end": "2026-11-09T00:00:00Z",
        "phrase": "last week",
        "token": "last_week",
    }
    assert body["entities"]["models"] == [{"name": "gpt-4o", "phrase": "gpt-4o", "known": True}]
    assert body["route"] == {
        "agents": ["data", "optimization"],
        "answer": "findings",
        "data_sufficient": True,
        "reason": "asks about spend or savings: measure, then recommend",
    }
    assert TriageResponse.model_validate_json(response.model_dump_json()) == response
    assert TriageResult.model_validate_json(result.model_dump_json()) == result


# --- properties -------------------------------------------------------------------------

FRAGMENTS = [
    "what did we spend",
    "cut 30%",
    "save $500/month",
    "by a third",
    "why did costs spike",
    "last week",
    "past 9999 days",
    "since Feb 29",
    "in December 9999",
    "on 9999-12-31",
    "between 0001-01-01 and 9999-12-31",
    "0000-00-00",
    "3 weeks ago",
    "9999 weeks ago",
    "on Tuesday",
    "gpt-4o-mini",
    "claude 3.5 sonnet",
    "o3",
    "`feature`",
    "feature x",
    "``",
    "$",
    "%",
    "aws bedrock",
    "how do I send data",
    "hello",
]
nows = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=-11)), timezone(timedelta(hours=14))]),
)
names = st.lists(st.text(max_size=16), max_size=5)


def check_invariants(result: TriageResult) -> None:
    assert result.intent in Intent
    assert 0.0 <= result.confidence <= 1.0
    period = result.entities.period
    if period is not None:
        assert period.end > period.start
        assert period.end - period.start <= timedelta(days=MAX_PERIOD_DAYS)
    for has_data in (True, False):
        route = decide_route(result, has_usage_data=has_data)
        assert route.agents in ([], ["data"], ["data", "optimization"])
        assert (route.answer == "findings") == bool(route.agents)
        if not has_data:
            assert route.agents == []


@settings(max_examples=60, deadline=None)
@given(message=st.text(max_size=MAX_MESSAGE_CHARS), now=nows)
def test_arbitrary_text_never_raises(message: str, now: datetime) -> None:
    check_invariants(analyze(message, now=now))


@settings(max_examples=300, deadline=None)
@given(
    parts=st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=12), max_size=30),
    now=nows,
    models=names,
    features=names,
    providers=names,
)
def test_lexicon_shaped_text_never_raises(
    parts: list[str], now: datetime, models: list[str], features: list[str], providers: list[str]
) -> None:
    result = analyze(
        " ".join(parts),
        now=now,
        known_models=models,
        known_features=features,
        known_providers=providers,
    )
    check_invariants(result)


def test_a_message_of_the_maximum_size_is_analyzed() -> None:
    message = (" ".join(FRAGMENTS) + " ") * (MAX_MESSAGE_CHARS // len(" ".join(FRAGMENTS)) + 1)
    result = run(message[:MAX_MESSAGE_CHARS])
    check_invariants(result)
    assert result.entities.savings_target is not None


def test_a_quarter_without_a_year_is_the_latest_that_has_begun() -> None:
    period = analyze("spend in Q4", now=utc(2026, 3, 1)).entities.period
    assert period is not None
    assert (period.start, period.end) == (utc(2025, 10, 1), utc(2026, 1, 1))


@pytest.mark.parametrize(
    ("message", "model", "feature"),
    [
        ("what would summarize have cost on claude-3-5-haiku last month?", "claude-3-5-haiku",
         "summarize"),
        ("What if we had used gpt-4o-mini for summarize?", "gpt-4o-mini", "summarize"),
        ("how much would it all cost with gemini-2.0-flash last week", "gemini-2.0-flash", None),
        ("What if summarize ran on claude-3-5-haiku?", "claude-3-5-haiku", "summarize"),
        ("reprice last month at claude-3-5-haiku prices", "claude-3-5-haiku", None),
    ],
)  # fmt: skip
def test_a_what_if_question_names_its_target_and_goes_through_both_agents(
    message: str, model: str, feature: str | None
) -> None:
    result = analyze(
        message,
        now=NOW,
        known_models=["gpt-4o", "claude-3-opus"],
        known_features=["summarize", "chat"],
        known_providers=["openai", "anthropic"],
    )
    what_if = result.entities.what_if
    assert what_if is not None
    assert (what_if.model, what_if.feature) == (model, feature)
    route = decide_route(result, has_usage_data=True)
    assert route.agents == ["data", "optimization"]
    assert route.answer == "findings"
    assert model in route.reason
    # Without usage data there is nothing to reprice: onboarding, as for any question.
    assert decide_route(result, has_usage_data=False).answer == "onboarding"


@pytest.mark.parametrize(
    "message",
    [
        "what did we spend on claude-3-opus last month?",
        "what would we save by moving summarize to gpt-4o-mini?",
        "what would our spend be next month?",
    ],
)
def test_questions_about_the_usage_as_it_ran_are_no_what_if(message: str) -> None:
    assert run(message).entities.what_if is None


@pytest.mark.parametrize(
    ("message", "model", "feature"),
    [
        ("what would happen if we moved summarize to gpt-4o-mini?", "gpt-4o-mini", "summarize"),
        ("if we switched to claude-3-5-haiku how much would we save?", "claude-3-5-haiku", None),
        ("What would happen if we used gemini-2.0-flash for the support bot?", "gemini-2.0-flash",
         "support_bot"),
        ("how much would we save if we switched summarize from gpt-4o to gpt-4o-mini",
         "gpt-4o-mini", "summarize"),
        ("if we had moved summarize to claude-3-5-haiku, what would it have cost?",
         "claude-3-5-haiku", "summarize"),
        ("reprice last month at gpt-4.1-mini prices", "gpt-4.1-mini", None),
    ],
)  # fmt: skip
def test_a_what_if_without_cost_on_is_a_what_if_and_states_its_intent(
    message: str, model: str, feature: str | None
) -> None:
    result = run(message)
    what_if = result.entities.what_if
    assert what_if is not None
    assert (what_if.model, what_if.feature) == (model, feature)
    # It states what it asks: a cost question, not an unclear one asked back.
    assert result.intent is Intent.COST_ANALYSIS
    assert not result.clarify
    assert decide_route(result, has_usage_data=True).agents == ["data", "optimization"]


@pytest.mark.parametrize(
    "message",
    [
        "if we move to claude-3-5-haiku, will quality drop?",
        "what would happen if latency doubled?",
        "if we switch to gpt-4o-mini is the latency better?",
    ],
)
def test_a_switch_without_money_or_consequence_is_no_what_if(message: str) -> None:
    assert run(message).entities.what_if is None
