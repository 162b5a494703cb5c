"""Follow-ups, references to an earlier answer, typos and loosely named things (issue 15):
the rules of docs/triage.md, one by one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.agents.triage.context import next_context
from shared.agents.triage.intent import analyze, decide_route
from shared.agents.triage.spelling import VOCABULARY, correct, correction
from shared.agents.triage.spelling_keep import KEEP
from shared.models.context import ThreadContext
from shared.models.period import resolve_token
from shared.models.triage import Intent, TriageResponse, TriageResult
from tests.data.score import FEATURES, MODELS, NOW, PROVIDERS, _workspace


def run(message: str, context: ThreadContext | None = None) -> TriageResult:
    return analyze(
        message,
        now=NOW,
        known_models=MODELS,
        known_features=FEATURES,
        known_providers=PROVIDERS,
        context=context,
    )


def after(*messages: str) -> ThreadContext:
    """The thread's context after ``messages``, answered from the synthetic findings."""
    _, data, optimization = _workspace()
    context: ThreadContext | None = None
    for index, message in enumerate(messages):
        result = run(message, context)
        triaged = TriageResponse.build(result, decide_route(result, has_usage_data=True))
        agents = triaged.route.agents
        context = next_context(
            context,
            run_id=f"r{index}",
            question=message,
            triaged=triaged,
            data=data if "data" in agents else None,
            optimization=optimization if "optimization" in agents else None,
        )
    assert context is not None
    return context


def utc(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, tzinfo=UTC)


# --- follow-ups -----------------------------------------------------------------------------


def test_without_a_context_nothing_is_inherited() -> None:
    result = run("and what about gpt-4o?")
    assert result.entities.inherited == []
    assert result.clarify  # nothing says what is asked about gpt-4o


def test_a_period_alone_replaces_the_period_and_keeps_the_rest() -> None:
    context = after("What did we spend on gpt-4o for summarize_thread last month?")
    result = run("and last week?", context)
    entities = result.entities
    assert entities.period is not None
    assert entities.period.token == "last_week"
    assert [m.name for m in entities.models] == ["gpt-4o"]
    assert [f.name for f in entities.features] == ["summarize_thread"]
    assert entities.inherited == ["intent", "models", "features", "metrics"]
    assert result.intent is context.intent


def test_a_stated_intent_keeps_its_own_intent_and_inherits_the_scope() -> None:
    context = after("What did we spend on gpt-4o last month?")
    result = run("How many tokens?", context)
    assert result.intent is Intent.USAGE_QUESTION
    assert result.entities.inherited == ["period", "models"]


def test_a_new_question_with_its_own_scope_stands_alone() -> None:
    context = after("What did we spend on gpt-4o last month?")
    result = run("How many tokens did summarize_thread use yesterday?", context)
    assert result.entities.inherited == []
    assert result.entities.models == []


def test_too_adds_and_only_replaces() -> None:
    context = after("What did gpt-4o cost last week?")
    added = run("and gpt-4.1 too", context)
    assert [m.name for m in added.entities.models] == ["gpt-4o", "gpt-4.1"]
    replaced = run("only gpt-4.1", context)
    assert [m.name for m in replaced.entities.models] == ["gpt-4.1"]


@pytest.mark.parametrize(
    "message", ["and across all models?", "overall?", "what about every model"]
)
def test_all_models_drops_the_model_filter(message: str) -> None:
    context = after("What did gpt-4o cost last week?")
    result = run(message, context)
    assert result.entities.models == []
    assert result.entities.period is not None
    assert result.entities.period.token == "last_week"


def test_asking_for_a_breakdown_does_not_keep_that_filter() -> None:
    context = after("What did gpt-4o cost last week?")
    result = run("and by model?", context)
    assert result.entities.models == []
    assert result.entities.group_by == ["model"]


@pytest.mark.parametrize(
    ("first", "follow", "start", "end"),
    [
        (
            "What did we spend last week?",
            "and the week before?",
            utc(2026, 11, 2),
            utc(2026, 11, 9),
        ),
        ("What did we spend last month?", "the month before?", utc(2026, 9, 1), utc(2026, 10, 1)),
        (
            "What did we spend yesterday?",
            "and the day before?",
            utc(2026, 11, 18),
            utc(2026, 11, 19),
        ),
        (
            "What did we spend in the last 30 days?",
            "and the previous period?",
            NOW - timedelta(days=60),
            NOW - timedelta(days=30),
        ),
    ],
)
def test_a_relative_period_is_relative_to_the_inherited_one(
    first: str, follow: str, start: datetime, end: datetime
) -> None:
    result = run(follow, after(first))
    period = result.entities.period
    assert period is not None
    assert (period.start, period.end) == (start, end)


def test_small_talk_and_onboarding_do_not_break_the_thread() -> None:
    context = after(
        "What did we spend on nightly_digest this week?", "thanks!", "how do I send data?"
    )
    result = run("and last week?", context)
    assert [f.name for f in result.entities.features] == ["nightly_digest"]
    assert result.intent is Intent.COST_ANALYSIS


def test_a_greeting_or_thanks_is_not_a_follow_up() -> None:
    context = after("What did gpt-4o cost last week?")
    for message in ("thanks!", "hello", "what can you do?"):
        result = run(message, context)
        assert result.intent is Intent.OTHER
        assert result.entities.inherited == []


# --- references -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "ranks", "asks"),
    [
        ("#3", [3], "more"),
        ("tell me more about #2", [2], "more"),
        ("the second one", [2], "more"),
        ("recommendation 4", [4], "more"),
        ("what about the last one?", [7], "more"),
        ("why #5?", [5], "why"),
        ("how do I do the first one?", [1], "how"),
        ("the cheaper model one", [5], "more"),
        ("the batch recommendation", [4], "more"),
        ("that recommendation", [1], "more"),
        ("tell me more about the classify_ticket one", [5], "more"),
        ("how?", [1], "how"),
        ("#12", [], "more"),
        # Both caches: the response cache (#2) and prompt caching (#3).
        ("the caching one", [2, 3], "more"),
    ],
)
def test_references_to_recommendations(message: str, ranks: list[int], asks: str) -> None:
    context = after("Where can we save in the last 30 days?")
    result = run(message, context)
    reference = result.entities.reference
    assert reference is not None, message
    assert (reference.kind, reference.ranks, reference.asks) == ("recommendation", ranks, asks)
    assert reference.listed == 7
    route = decide_route(result, has_usage_data=True)
    assert route.agents == []
    assert route.answer == ("clarify" if len(ranks) > 1 else "reference")


@pytest.mark.parametrize("message", ["why?", "what caused it?", "what drove that?", "Why?!"])
def test_why_after_an_anomaly_refers_to_it(message: str) -> None:
    context = after("Why did costs spike in the last 30 days?")
    reference = run(message, context).entities.reference
    assert reference is not None
    assert (reference.kind, reference.ranks, reference.asks) == ("anomaly", [1], "why")


def test_the_finding_in_focus_is_what_how_and_why_refer_to() -> None:
    context = after("Where can we save in the last 30 days?", "tell me more about #3")
    assert context.focus is not None
    assert context.focus.ranks == [3]
    for message in ("how?", "why?", "tell me more"):
        reference = run(message, context).entities.reference
        assert reference is not None, message
        assert reference.ranks == [3], message


@pytest.mark.parametrize(
    "message",
    [
        "what's our #1 cost driver?",
        "What's the first thing we should optimize?",
        "which one is the most expensive model?",
        "tell me more about gpt-4o",  # a model several recommendations share: a scope
        "why did costs spike on Tuesday?",
    ],
)
def test_questions_that_are_not_references(message: str) -> None:
    context = after("Where can we save in the last 30 days?")
    assert run(message, context).entities.reference is None


def test_without_findings_an_implicit_reference_is_an_ordinary_question() -> None:
    context = after("hello")
    result = run("why?", context)
    assert result.entities.reference is None
    assert result.intent is Intent.ANOMALY


# --- typos and loose names ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typo", "word"),
    [
        ("spnd", "spend"),
        ("latncy", "latency"),
        ("recomendations", "recommendations"),
        ("tokns", "tokens"),
        ("yesterdy", "yesterday"),
        ("anomolies", "anomalies"),
        ("reqeusts", "requests"),
        ("optimze", "optimize"),
        ("spedn", "spend"),
        ("bugdet", "budget"),
    ],
)
def test_a_typo_one_edit_away_is_read_as_the_word(typo: str, word: str) -> None:
    assert correction(typo) == word
    result = run(f"{typo} last week")
    assert [(c.word, c.read_as) for c in result.corrections] == [(typo, word)]


@pytest.mark.parametrize(
    "word", ["hosts", "posting", "speed", "the", "casts", "changes", "mostly", "formal", "week"]
)
def test_real_words_are_never_corrected(word: str) -> None:
    assert correction(word) is None


def test_names_are_never_corrected() -> None:
    text, made = correct("cost of gpt-4o on summarize_thread via `spnd` and claude-sonnet")
    assert made == []
    assert "spnd" in text


def test_every_word_kept_is_one_edit_from_the_vocabulary_and_not_in_it() -> None:
    assert not KEEP & VOCABULARY
    assert len(KEEP) > 400


@pytest.mark.parametrize(
    ("message", "models"),
    [
        ("what does 4o cost", ["gpt-4o"]),
        ("4o mini spend", ["gpt-4o-mini"]),
        ("how much did sonnet cost", ["claude-sonnet-4-6"]),
        ("haiku latency", ["claude-haiku-4-5"]),
        ("claude sonnet errors", ["claude-sonnet-4-6"]),
        ("GPT4O-MINI tokens", ["gpt-4o-mini"]),
    ],
)
def test_models_named_loosely(message: str, models: list[str]) -> None:
    assert [m.name for m in run(message).entities.models] == models


@pytest.mark.parametrize(
    ("message", "features"),
    [
        ("cost of the summarizer", ["summarize"]),
        ("the ticket classifier cost", ["classify_ticket"]),
        ("research agent spend", ["research_agent"]),
        ("Summarize-Thread cost", ["summarize_thread"]),
        ("the FAQ bot", ["faq_answer"]),
        ("give me a summary of costs", []),
        ("failure rate of the contract review feature", ["contract_review"]),
    ],
)
def test_features_named_loosely(message: str, features: list[str]) -> None:
    assert [f.name for f in run(message).entities.features] == features


@pytest.mark.parametrize(
    ("message", "phrase", "expected"),
    [
        ("spend in Q3", "in Q3", (utc(2026, 7, 1), utc(2026, 10, 1))),
        ("spend since Monday", "since Monday", (utc(2026, 11, 16), None)),
        ("spend in October", "in October", (utc(2026, 10, 1), utc(2026, 11, 1))),
        ("spend over the past fortnight", "past fortnight", "last_14d"),
        ("YTD spend", "YTD", (utc(2026, 1, 1), None)),
        ("spend for the last 90 days", "last 90 days", "last_90d"),
        ("spend in the last week", "the last week", "last_7d"),
        ("the research agent, October", "October", (utc(2026, 10, 1), utc(2026, 11, 1))),
    ],
)
def test_period_phrases_of_the_issue(
    message: str, phrase: str, expected: str | tuple[datetime, datetime | None]
) -> None:
    period = run(message).entities.period
    assert period is not None
    assert period.phrase == phrase
    if isinstance(expected, str):
        resolved = resolve_token(expected, NOW)
        assert (period.start, period.end) == (resolved.start, resolved.end)
    else:
        start, end = expected
        assert period.start == start
        assert end is None or period.end == end


# --- several intents, unclear questions ----------------------------------------------------


@pytest.mark.parametrize(
    ("message", "intents"),
    [
        ("show me spend and savings", ["cost_analysis", "optimization"]),
        ("What did we spend last month, and where can we save?", ["cost_analysis", "optimization"]),
        ("how can we cut our LLM bill by 30%?", ["optimization"]),
        ("why did costs spike? any recommendations?", ["anomaly", "optimization"]),
        ("latency and error rate of gpt-4o", ["usage_question"]),
        ("how many tokens, and what did they cost?", ["usage_question", "cost_analysis"]),
    ],
)
def test_every_intent_asked_in_order(message: str, intents: list[str]) -> None:
    assert run(message).entities.intents == intents


def test_an_unclear_question_is_asked_back_with_two_readings() -> None:
    result = run("gpt-4o last week?")
    assert result.clarify
    assert result.entities.intents == [Intent.COST_ANALYSIS, Intent.USAGE_QUESTION]
    route = decide_route(result, has_usage_data=True)
    assert (route.agents, route.answer) == ([], "clarify")
    # With no usage data there is nothing to ask about: how to send it.
    assert decide_route(result, has_usage_data=False).answer == "onboarding"


# --- properties -----------------------------------------------------------------------------

FOLLOW_UPS = [
    "and",
    "what about",
    "same for",
    "only",
    "instead",
    "#2",
    "why?",
    "how?",
    "the second one",
    "too",
]


@settings(max_examples=150, deadline=None)
@given(
    first=st.sampled_from(
        [
            "What did we spend last month, and where can we save?",
            "Why did costs spike last week?",
            "p95 latency of gpt-4o",
            "hello",
            "how do I send data?",
        ]
    ),
    parts=st.lists(
        st.sampled_from([*FOLLOW_UPS, "gpt-4o", "last week", "anthropic", "summarize_thread"])
        | st.text(max_size=10),
        max_size=8,
    ),
)
def test_any_follow_up_gives_a_valid_result(first: str, parts: list[str]) -> None:
    context = after(first)
    result = run(" ".join(parts), context)
    assert 0.0 <= result.confidence <= 1.0
    route = decide_route(result, has_usage_data=True)
    assert (route.answer == "findings") == bool(route.agents)
    reference = result.entities.reference
    if reference is not None:
        assert all(1 <= r <= reference.listed for r in reference.ranks)
    assert set(result.entities.inherited) <= {
        "intent",
        "period",
        "models",
        "providers",
        "features",
        "savings_target",
        "group_by",
        "metrics",
    }


# --- what-if in conversation (issue 14 item 7) ------------------------------------------------

WHAT_IF = "what would summarize have cost on claude-3-5-haiku last month?"


@pytest.mark.parametrize(
    ("message", "target"),
    [
        ("and on gpt-4o-mini?", "gpt-4o-mini"),
        ("what about haiku?", "claude-haiku-4-5"),
        ("gpt-4.1?", "gpt-4.1"),
    ],
)
def test_a_model_alone_after_a_what_if_replaces_its_target(message: str, target: str) -> None:
    context = after(WHAT_IF)
    result = run(message, context)
    entities = result.entities
    assert entities.what_if is not None
    assert (entities.what_if.model, entities.what_if.feature) == (target, "summarize")
    assert entities.period == context.entities.period
    assert [f.name for f in entities.features] == ["summarize"]
    # As the what-if asked in full names them: the target, no earlier target.
    assert [m.name for m in entities.models] == [target]
    assert {"intent", "period", "features", "what_if"} <= set(entities.inherited)
    route = decide_route(result, has_usage_data=True)
    assert route.agents == ["data", "optimization"]
    assert target in route.reason
    # The same scope asked in full reads the same what-if.
    full = run(f"what would summarize have cost on {target} last month?").entities
    assert full.what_if is not None
    assert (full.what_if.model, full.what_if.feature) == (target, "summarize")
    assert (full.period, full.features) == (entities.period, entities.features)


def test_a_feature_or_period_after_a_what_if_keeps_the_target() -> None:
    context = after(WHAT_IF, "and on gpt-4o-mini?")
    result = run("and for code_review?", context)
    what_if = result.entities.what_if
    assert what_if is not None
    assert (what_if.model, what_if.feature) == ("gpt-4o-mini", "code_review")
    later = run("the month before?", after(WHAT_IF, "and on gpt-4o-mini?", "and for code_review?"))
    assert later.entities.what_if == what_if
    assert later.entities.period is not None
    assert (later.entities.period.start, later.entities.period.end) == (
        utc(2026, 9, 1),
        utc(2026, 10, 1),
    )
    every = run("and for every feature?", context).entities
    assert every.what_if is not None
    assert every.what_if.feature is None
    assert every.features == []


def test_a_what_if_asked_again_keeps_the_scope_of_the_thread() -> None:
    context = after("what did we spend on gpt-4o last month?")
    result = run("if we switched it to gpt-4o-mini how much would we save?", context)
    entities = result.entities
    assert entities.what_if is not None
    assert entities.what_if.model == "gpt-4o-mini"
    assert entities.period == context.entities.period
    # gpt-4o is the usage asked about, gpt-4o-mini the target (no filter).
    assert [m.name for m in entities.models] == ["gpt-4o", "gpt-4o-mini"]
    assert "what_if" not in entities.inherited
    again = run("what if we had used haiku instead?", after(WHAT_IF))
    assert again.entities.what_if is not None
    assert (again.entities.what_if.model, again.entities.what_if.feature) == (
        "claude-haiku-4-5",
        "summarize",
    )
    assert "what_if" in again.entities.inherited


def test_a_question_of_its_own_after_a_what_if_is_no_what_if() -> None:
    context = after(WHAT_IF)
    for message in ("how many tokens did summarize use yesterday?", "How many tokens?"):
        assert run(message, context).entities.what_if is None, message
