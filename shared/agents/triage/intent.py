"""Rule-based triage: what a message asks (intent) and where it goes (route).

Pure and deterministic: no I/O, no LLM, no clock (``now`` is passed in). Every regex is
compiled once at import. What a message names is found by `entities` (and its
period by `periods`). See docs/triage.md for the lexicon approach and the route rule.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from shared.agents.triage.entities import extract_entities
from shared.models.triage import (
    Agent,
    Entities,
    Intent,
    MatchedCue,
    Route,
    TriageResult,
)

# Messages are at most 8,000 characters (DESIGN §3); reading no further bounds the cost.
MAX_MESSAGE_CHARS: Final = 8_000
# `other` starts with this score, so an intent needs at least this much evidence to win.
OTHER_PRIOR: Final = 1.0
# Evidence (summed cue weight) at which confidence reaches 1 - 1/e of its ceiling.
EVIDENCE_SCALE: Final = 2.5
# Optimization evidence that makes a data question also ask for savings (route rule).
SECONDARY_OPTIMIZATION: Final = 2.0
# Ties go to the earlier intent: the more specific question wins.
_PRIORITY: Final = (
    Intent.ANOMALY,
    Intent.OPTIMIZATION,
    Intent.COST_ANALYSIS,
    Intent.USAGE_QUESTION,
    Intent.DATA_ONBOARDING,
    Intent.OTHER,
)

_I: Final = re.IGNORECASE


# --- intent cues ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Cue:
    intent: Intent
    name: str
    weight: float
    pattern: re.Pattern[str]


# Each cue: name -> (weight, pattern). Weights: 3 for a cue that alone settles the intent,
# 2 for a clear one, 1-1.5 for supporting words, 0.5 for words common in other questions.
_LEXICON: Final[dict[Intent, dict[str, tuple[float, str]]]] = {
    Intent.COST_ANALYSIS: {
        "spend": (2.0, r"\bspen(?:d|ds|t|ding)\b"),
        "cost": (2.0, r"\bcost(?:s|ing)?\b"),
        "bill": (2.0, r"\b(?:bill|billing|invoices?|charges?|charged)\b"),
        "how_much": (1.5, r"\bhow much\b"),
        "pay": (1.5, r"\b(?:pay|paid|paying)\b"),
        "money": (1.0, r"\$\s?[0-9]|\b(?:dollars?|usd|money)\b"),
        "expensive": (1.5, r"\b(?:expensive|priciest|costliest)\b"),
        "breakdown": (
            1.0,
            r"\b(?:breakdown|break down|broken down|split by|"
            r"(?:by|per) (?:model|feature|provider|user|team|day))\b",
        ),
        "budget": (1.0, r"\bbudget\b"),
        "trend": (
            0.5,
            r"\b(?:trend|over time|month over month|week over week|compared? (?:to|with)|versus)\b",
        ),
    },
    Intent.OPTIMIZATION: {
        "optimize": (3.0, r"\boptimi[sz](?:e|ed|ing|ation|ations)\b"),
        "save": (2.5, r"\bsav(?:e|es|ing|ings)\b"),
        "reduce": (
            2.0,
            r"\b(?:reduc(?:e|ing|tion)|lower(?:ing)?|cut(?:ting)?|slash|trim|decrease|shrink|"
            r"minimi[sz]e|halve|spend less|bring (?:it |them |costs |spend )?down)\b",
        ),
        "cheaper": (
            2.5,
            r"\b(?:cheaper|cheapest|less expensive|more affordable|cost[- ]effective|"
            r"cost[- ]efficien(?:t|cy))\b",
        ),
        "recommend": (
            2.0,
            r"\b(?:recommend(?:ation)?s?|suggest(?:ion)?s?|advice|advise|tips?|best practices?)\b",
        ),
        "how_can_we": (
            1.5,
            r"\b(?:ways? to|what can (?:we|i) do|where can (?:we|i)|should (?:we|i)|"
            r"how (?:can|could|do|should) (?:we|i) "
            r"(?:reduce|cut|lower|save|optimi[sz]e|pay less))\b",
        ),
        "switch_model": (
            2.0,
            r"\b(?:switch(?:ing)?|mov(?:e|ing)|migrat(?:e|ing)|downgrad(?:e|ing)|replac(?:e|ing))"
            r"\s+(?:[\w.-]+\s+){0,4}?(?:to|with|for)\b",
        ),
        "technique": (
            2.0,
            r"\b(?:prompt caching|(?:response|semantic|prompt) cache|batch api|batching|"
            r"distill(?:ation)?|fine[- ]tun(?:e|ed|ing)|smaller models?|right[- ]siz(?:e|ing))\b",
        ),
        "waste": (
            2.0,
            r"\b(?:wast(?:e|ed|es|ing|eful)|overspend(?:ing)?|overpay(?:ing)?|"
            r"inefficien(?:t|cy|cies))\b",
        ),
    },
    Intent.USAGE_QUESTION: {
        "tokens": (2.0, r"\btokens?\b"),
        "requests": (1.5, r"\b(?:requests?|calls?|invocations?|completions?|queries)\b"),
        "latency": (
            3.0,
            r"\b(?:latenc(?:y|ies)|response times?|slow(?:er|est)?|p50|p90|p95|p99|percentiles?|"
            r"median|ttft|time to first token)\b",
        ),
        "errors": (
            2.0,
            r"\b(?:error rates?|errors?|failures?|failed|failing|timeouts?|retr(?:y|ies)|"
            r"rate[- ]limit(?:s|ed)?|429s?|5xx)\b",
        ),
        "how_many": (2.0, r"\bhow many\b"),
        "usage": (1.5, r"\b(?:usage|volume|traffic|throughput)\b"),
        "use": (0.5, r"\b(?:use|used|uses|using)\b"),
        "which_models": (
            1.5,
            r"\b(?:which|what) (?:models?|features?|providers?|users?)\b|\bmost used\b|"
            r"\btop (?:models?|features?|users?)\b",
        ),
        "cache_hits": (2.0, r"\bcache hits?(?: rate)?\b|\bcached (?:input )?tokens\b"),
        "average": (0.5, r"\b(?:average|avg|mean|daily|per request)\b"),
    },
    Intent.ANOMALY: {
        "spike": (
            3.0,
            r"\b(?:spike[sd]?|spiking|surge[sd]?|surging|jump(?:ed|s)?|skyrocket(?:ed|ing)?|"
            r"shot up|blew up|balloon(?:ed|ing)|exploded|doubled?|tripled?|quadrupled?)\b",
        ),
        "anomaly": (
            3.0,
            r"\b(?:anomal(?:y|ies|ous)|outliers?|unusual(?:ly)?|abnormal(?:ly)?|"
            r"unexpected(?:ly)?|weird|strange|suspicious|sudden(?:ly)?)\b",
        ),
        "why": (1.5, r"\bwhy\b"),
        "went_up": (
            1.5,
            r"\b(?:went up|gone up|go up|going up|increase[sd]?|increasing|rose|risen|"
            r"(?:higher|more) than (?:usual|normal|expected)|dropped|plummet(?:ed)?|worse|"
            r"degraded|regress(?:ed|ion))\b",
        ),
        "what_happened": (
            2.0,
            r"\b(?:what happened|what caused|root cause|what drove|alerts?|runaway)\b",
        ),
    },
    Intent.DATA_ONBOARDING: {
        "send_data": (
            3.0,
            r"\b(?:send|upload|submit|push|ingest|import|load|feed|forward|pipe|stream|hook up|"
            r"connect)\b(?:\W+\w+){0,4}?\W+"
            r"(?:data|logs?|records?|traces?|spans?|telemetry|events|exports?|files?)\b",
        ),
        "setup": (
            2.0,
            r"\b(?:set ?up|onboard(?:ing)?|get(?:ting)? started|integrat(?:e|ion|ing)|"
            r"instrument(?:ing|ation)?)\b",
        ),
        "ingest": (
            2.0,
            r"\b(?:ingest(?:ion)?|usage_ingest|importers?|ndjson|json lines|csv|schema|formats?)\b",
        ),
        "records": (1.0, r"\brecords?\b"),
        "sources": (
            1.5,
            r"\b(?:opentelemetry|otel|otlp|s3|invocation logs?|cloudwatch|usage exports?|"
            r"endpoint|webhook)\b",
        ),
        "no_data": (
            2.0,
            r"\b(?:no data|(?:do not|don'?t|can'?t|cannot) see (?:any |my |our )?data|"
            r"where(?:'s| is) (?:my|our) data|missing data)\b",
        ),
    },
    Intent.OTHER: {
        "greeting": (
            3.0,
            r"^\W*(?:hi|hello|hey|yo|howdy|good (?:morning|afternoon|evening)|greetings)\b",
        ),
        "thanks": (2.5, r"\b(?:thanks|thank you|thx|cheers|appreciate it)\b"),
        "about_apex": (
            2.5,
            r"\b(?:who are you|what (?:can|do) you do|what are you|what is apex|"
            r"how does (?:this|apex) work)\b",
        ),
    },
}
_CUES: Final = tuple(
    _Cue(intent, name, weight, re.compile(pattern, _I))
    for intent, cues in _LEXICON.items()
    for name, (weight, pattern) in cues.items()
)

# Entities are evidence too: a savings target means optimization. A period or a name says
# nothing about the intent when words do; alone ("gpt-4o last week?") it asks what it cost.
_TARGET_WEIGHT: Final = 3.0
_PERIOD_WEIGHT: Final = 0.5
_NAME_WEIGHT: Final = 0.5


# --- analysis ---------------------------------------------------------------------------


def _require_aware(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    return now.astimezone(UTC)


def _entity_cues(entities: Entities, *, topical: bool) -> list[MatchedCue]:
    cues: list[MatchedCue] = []
    if entities.savings_target is not None:
        cues.append(
            MatchedCue(
                intent=Intent.OPTIMIZATION,
                cue="savings_target",
                weight=_TARGET_WEIGHT,
                phrase=entities.savings_target.phrase,
            )
        )
    if topical:
        return cues
    if entities.period is not None:
        cues.append(
            MatchedCue(
                intent=Intent.COST_ANALYSIS,
                cue="period",
                weight=_PERIOD_WEIGHT,
                phrase=entities.period.phrase,
            )
        )
    names = [
        *(m.phrase for m in entities.models),
        *(f.phrase for f in entities.features),
        *(p.phrase for p in entities.providers),
    ]
    if names:
        cues.append(
            MatchedCue(
                intent=Intent.COST_ANALYSIS,
                cue="named",
                weight=_NAME_WEIGHT,
                phrase=names[0],
            )
        )
    return cues


def _confidence(best: float, runner_up: float) -> float:
    """More evidence and a wider lead over the runner-up both raise confidence."""
    strength = 1.0 - math.exp(-best / EVIDENCE_SCALE)
    margin = (best - runner_up) / best if best > 0 else 0.0
    return round(strength * (0.5 + 0.5 * margin), 3)


def analyze(
    message: str,
    *,
    now: datetime,
    known_models: Collection[str] = (),
    known_features: Collection[str] = (),
    known_providers: Collection[str] = (),
) -> TriageResult:
    """Classify ``message`` and extract its entities.

    ``now`` (timezone-aware) anchors relative periods. ``known_*`` are the workspace's own
    names; mentions of them come back with ``known=True`` and the workspace's spelling.
    """
    now = _require_aware(now)
    text = message[:MAX_MESSAGE_CHARS]
    entities = extract_entities(text, now, known_models, known_features, known_providers)
    cues = [
        MatchedCue(intent=cue.intent, cue=cue.name, weight=cue.weight, phrase=match.group())
        for cue in _CUES
        if (match := cue.pattern.search(text)) is not None
    ]
    topical = any(cue.intent is not Intent.OTHER for cue in cues)
    cues.extend(_entity_cues(entities, topical=topical))
    scores = dict.fromkeys(Intent, 0.0)
    scores[Intent.OTHER] = OTHER_PRIOR
    for cue in cues:
        scores[cue.intent] += cue.weight
    ranked = sorted(_PRIORITY, key=lambda intent: -scores[intent])
    best, runner_up = ranked[0], ranked[1]
    return TriageResult(
        intent=best,
        confidence=_confidence(scores[best], scores[runner_up]),
        entities=entities,
        matched_cues=cues,
        scores={intent: round(score, 3) for intent, score in scores.items()},
    )


# --- route ------------------------------------------------------------------------------

_NEEDS_DATA: Final = frozenset(
    {Intent.COST_ANALYSIS, Intent.OPTIMIZATION, Intent.USAGE_QUESTION, Intent.ANOMALY}
)
# DESIGN §3.4: a question about spend or savings goes through all three agents.
_SPEND_OR_SAVINGS: Final = frozenset({Intent.COST_ANALYSIS, Intent.OPTIMIZATION})


def decide_route(result: TriageResult, *, has_usage_data: bool) -> Route:
    """Where the run goes after triage (the rule is in docs/triage.md):

    1. ``other`` -> no agents, a ``help`` answer.
    2. ``data_onboarding`` -> no agents, the ``onboarding`` answer.
    3. Any other intent without usage data -> the ``onboarding`` answer (never invented
       numbers).
    4. ``cost_analysis`` or ``optimization``, or any data question that also asks for
       savings (a savings target, or optimization evidence >= ``SECONDARY_OPTIMIZATION``)
       -> ``data`` then ``optimization``.
    5. ``usage_question`` and ``anomaly`` otherwise -> ``data``.
    """
    if result.intent is Intent.OTHER:
        return Route(
            agents=[], answer="help", data_sufficient=has_usage_data, reason="not about LLM usage"
        )
    if result.intent is Intent.DATA_ONBOARDING:
        return Route(
            agents=[],
            answer="onboarding",
            data_sufficient=has_usage_data,
            reason="asks how to send usage data",
        )
    if not has_usage_data:
        return Route(
            agents=[],
            answer="onboarding",
            data_sufficient=False,
            reason=f"{result.intent.value} needs usage data and the workspace has none",
        )
    wants_savings = (
        result.intent in _SPEND_OR_SAVINGS
        or result.entities.savings_target is not None
        or result.scores.get(Intent.OPTIMIZATION, 0.0) >= SECONDARY_OPTIMIZATION
    )
    agents: list[Agent] = ["data", "optimization"] if wants_savings else ["data"]
    reason = (
        "asks about spend or savings: measure, then recommend"
        if wants_savings
        else f"{result.intent.value}: measure usage"
    )
    return Route(agents=agents, answer="findings", data_sufficient=True, reason=reason)
