"""Rule-based triage: what a message asks (intent) and where it goes (route).

Pure and deterministic: no I/O, no LLM, no clock (``now`` is passed in). Every regex is
compiled once at import. What a message names is found by `entities` (and its
period by `periods`). See docs/triage.md for the lexicon approach and the route rule.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from shared.agents.triage.entities import extract_entities
from shared.agents.triage.followup import Reading, find_reference, follow_up, is_follow_up
from shared.agents.triage.spelling import correct
from shared.models.context import ThreadContext
from shared.models.triage import (
    Agent,
    Correction,
    Entities,
    Inheritable,
    Intent,
    MatchedCue,
    Metric,
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
        "how_much": (
            1.5,
            r"\bhow much\b(?!\s+(?:traffic|usage|volume|tokens?|data|time|latency|load))",
        ),
        "run_rate": (2.0, r"\b(?:run[- ]rate|burn(?: rate)?)\b"),
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
            r"(?:reduce|cut|lower|save|optimi[sz]e|pay less|avoid|prevent|stop))\b",
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
            r"shot up|blew up|balloon(?:s|ed|ing)?|exploded|doubled?|tripled?|quadrupled?)\b",
        ),
        "anomaly": (
            3.0,
            r"\b(?:anomal(?:y|ies|ous)|outliers?|unusual(?:ly)?|abnormal(?:ly)?|"
            r"unexpected(?:ly)?|weird|strange|suspicious|sudden(?:ly)?|odd|"
            r"(?:looks?|seems?|is|are) (?:off|wrong|not right))\b",
        ),
        "why": (1.5, r"\bwhy\b"),
        "went_up": (
            1.5,
            r"\b(?:went up|gone up|go up|going up|increase[sd]?|increasing|rose|risen|"
            r"(?:higher|more) than (?:usual|normal|expected)|dropped|plummet(?:ed)?|worse|"
            r"degraded|regress(?:ed|ion)|so (?:high|big|large|expensive|slow|much))\b",
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
            r"(?:data|logs?|records?|traces?|spans?|telemetry|events|exports?|files?|usage)\b"
            r"|\b(?:connect|hook up|wire up|link|integrate)\b(?:\W+\w+){0,4}?\W+"
            r"(?:to|with)\s+apex\b",
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

# Entities are evidence too: a savings target means optimization, a what-if ("what would
# happen if we moved summarize to gpt-4o-mini?") asks what something would have cost. A
# period or a name says nothing about the intent when words do; alone ("gpt-4o last week?")
# it asks what it cost.
_TARGET_WEIGHT: Final = 3.0
_WHAT_IF_WEIGHT: Final = 3.0
_PERIOD_WEIGHT: Final = 0.5
_NAME_WEIGHT: Final = 0.5


# --- analysis ---------------------------------------------------------------------------

# Word evidence that states an intent: a clause asks an intent with at least this much, and
# a message with less asks nothing clearly (triage then asks back, unless the thread says).
CLEAR_EVIDENCE: Final = 1.5
# What a reference to an earlier finding weighs: a number, an ordinal or a description
# ("#2", "the second one", "the caching one"), or only "why?" / "how?" / "tell me more".
_EXPLICIT_REFERENCE: Final = 3.0
_IMPLICIT_REFERENCE: Final = 1.5
_METRIC_OF_CUE: Final[dict[str, Metric]] = {
    "spend": "cost",
    "cost": "cost",
    "bill": "cost",
    "how_much": "cost",
    "pay": "cost",
    "expensive": "cost",
    "tokens": "tokens",
    "requests": "requests",
    "latency": "latency",
    "errors": "errors",
    "cache_hits": "cache",
}
# Where one question ends and the next begins ("what did we spend, and where can we save?").
_CLAUSE_BREAK: Final = re.compile(r"[?!;]+|\.(?=\s|$)|,|&|\b(?:and|also|plus|then|but)\b", _I)
# The second reading offered when only one intent has any evidence.
_OTHER_READING: Final = {
    Intent.COST_ANALYSIS: Intent.USAGE_QUESTION,
    Intent.USAGE_QUESTION: Intent.COST_ANALYSIS,
    Intent.ANOMALY: Intent.COST_ANALYSIS,
    Intent.OPTIMIZATION: Intent.COST_ANALYSIS,
    Intent.DATA_ONBOARDING: Intent.COST_ANALYSIS,
}


@dataclass(frozen=True, slots=True)
class _Hit:
    cue: _Cue
    start: int
    phrase: str


def _hits(text: str) -> list[_Hit]:
    """Every match of every cue, by cue (a cue's first match first)."""
    return [
        _Hit(cue, match.start(), match.group())
        for cue in _CUES
        for match in cue.pattern.finditer(text)
    ]


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
    if entities.what_if is not None:
        cues.append(
            MatchedCue(
                intent=Intent.COST_ANALYSIS,
                cue="what_if",
                weight=_WHAT_IF_WEIGHT,
                phrase=entities.what_if.phrase,
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


def _metrics(hits: list[_Hit]) -> list[Metric]:
    """The measures named, in the order the message names them."""
    found: dict[Metric, int] = {}
    for hit in hits:
        metric = _METRIC_OF_CUE.get(hit.cue.name)
        if metric is not None and hit.cue.intent is not Intent.OTHER:
            found[metric] = min(found.get(metric, hit.start), hit.start)
    return sorted(found, key=found.__getitem__)


def _asked(text: str, hits: list[_Hit], entities: Entities, best: Intent) -> list[Intent]:
    """The intents the message asks, clause by clause, in order: each clause asks the
    intent its own cues weigh most for, if they weigh at least ``CLEAR_EVIDENCE``."""
    if best is Intent.OTHER:
        return [Intent.OTHER]
    bounds = [0, *(m.end() for m in _CLAUSE_BREAK.finditer(text)), len(text) + 1]
    target = entities.savings_target
    target_at = text.find(target.phrase) if target is not None else -1
    asked: list[Intent] = []
    for first, last in itertools.pairwise(bounds):
        weights = {
            hit.cue.name: (hit.cue.intent, hit.cue.weight)
            for hit in hits
            if first <= hit.start < last and hit.cue.intent is not Intent.OTHER
        }
        clause = dict.fromkeys(_PRIORITY, 0.0)
        for intent, weight in weights.values():
            clause[intent] += weight
        if first <= target_at < last:
            clause[Intent.OPTIMIZATION] += _TARGET_WEIGHT
        winner = max(_PRIORITY, key=lambda i: clause[i])
        if clause[winner] >= CLEAR_EVIDENCE and winner not in asked:
            asked.append(winner)
    if best not in asked:
        asked.insert(0, best)
    return asked


def _readings(scores: dict[Intent, float]) -> list[Intent]:
    """The two likeliest meanings of an unclear message, likeliest first."""
    ranked = [i for i in _PRIORITY if i is not Intent.OTHER and scores[i] > 0]
    ranked.sort(key=lambda i: -scores[i])
    first = ranked[0] if ranked else Intent.COST_ANALYSIS
    second = ranked[1] if len(ranked) > 1 else _OTHER_READING[first]
    return [first, second]


def analyze(
    message: str,
    *,
    now: datetime,
    known_models: Collection[str] = (),
    known_features: Collection[str] = (),
    known_providers: Collection[str] = (),
    context: ThreadContext | None = None,
) -> TriageResult:
    """Classify ``message`` and extract its entities.

    ``now`` (timezone-aware) anchors relative periods. ``known_*`` are the workspace's own
    names; mentions of them come back with ``known=True`` and the workspace's spelling.
    ``context`` is the thread's (its previous run): with it, a follow-up inherits what it
    does not say and a reference to an earlier finding is resolved (DESIGN §13); without it,
    the message stands alone.
    """
    now = _require_aware(now)
    text, corrections = correct(message[:MAX_MESSAGE_CHARS])
    entities = extract_entities(text, now, known_models, known_features, known_providers)
    hits = _hits(text)
    first: dict[str, _Hit] = {}
    for hit in hits:
        first.setdefault(f"{hit.cue.intent}:{hit.cue.name}", hit)
    words = dict.fromkeys(Intent, 0.0)
    for hit in first.values():
        words[hit.cue.intent] += hit.cue.weight
    stated = max(w for intent, w in words.items() if intent is not Intent.OTHER)
    if entities.what_if is not None:
        # A what-if states what it asks (its cost on another model) however it is worded.
        stated = max(stated, _WHAT_IF_WEIGHT)
    other_words = words[Intent.OTHER] > 0
    # A greeting or a thank-you in front of a question does not make it small talk.
    kept = [
        h for h in first.values() if h.cue.intent is not Intent.OTHER or stated < CLEAR_EVIDENCE
    ]
    cues = [
        MatchedCue(intent=h.cue.intent, cue=h.cue.name, weight=h.cue.weight, phrase=h.phrase)
        for h in kept
    ]
    topical = any(cue.intent is not Intent.OTHER for cue in cues)
    cues.extend(_entity_cues(entities, topical=topical))
    scores = dict.fromkeys(Intent, 0.0)
    scores[Intent.OTHER] = OTHER_PRIOR
    for cue in cues:
        scores[cue.intent] += cue.weight
    ranked = sorted(_PRIORITY, key=lambda intent: -scores[intent])
    best, runner_up = ranked[0], ranked[1]
    named = bool(entities.period or entities.models or entities.features or entities.providers)
    unsure = stated < CLEAR_EVIDENCE and (named or stated > 0) and not other_words
    readings = _readings(scores) if unsure else _asked(text, hits, entities, best)
    entities = entities.model_copy(update={"metrics": _metrics(hits), "intents": readings})
    result = TriageResult(
        # Unclear: the likeliest reading (the answer asks which one is meant).
        intent=readings[0] if unsure else best,
        confidence=_confidence(scores[best], scores[runner_up]),
        entities=entities,
        matched_cues=cues,
        scores={intent: round(score, 3) for intent, score in scores.items()},
        clarify=unsure,
        corrections=[Correction(word=w, read_as=c) for w, c in corrections],
    )
    if context is None:
        return result
    reading = Reading(
        text=text,
        entities=entities,
        stated=stated >= CLEAR_EVIDENCE,
        other_words=other_words,
        onboarding=best is Intent.DATA_ONBOARDING,
    )
    return _in_context(result, reading, context)


def _in_context(result: TriageResult, reading: Reading, context: ThreadContext) -> TriageResult:
    """The result read as a reference to the earlier answer, or as a follow-up, if it is one."""
    entities = reading.entities
    names = {
        *(m.name for m in entities.models),
        *(f.name for f in entities.features),
        *(p.name for p in entities.providers),
    }
    found = find_reference(reading.text, names, context)
    if found is not None:
        reference, explicit = found
        intent = Intent.OPTIMIZATION if reference.kind == "recommendation" else Intent.ANOMALY
        before = context.entities
        scope: tuple[Inheritable, ...] = ("period", "models", "providers", "features")
        carried = [kind for kind in scope if getattr(before, kind)]
        weight = _EXPLICIT_REFERENCE if explicit else _IMPLICIT_REFERENCE
        confidence = _confidence(weight, 0.0)
        if len(reference.ranks) != 1:
            confidence = round(confidence / 2, 3)
        return result.model_copy(
            update={
                "intent": intent,
                "confidence": confidence,
                "clarify": len(reference.ranks) > 1,
                "entities": before.model_copy(
                    update={
                        "reference": reference,
                        "intents": [intent],
                        "metrics": [],
                        "savings_target": None,
                        "inherited": carried,
                    }
                ),
            }
        )
    if not is_follow_up(reading, context):
        return result
    entities, _, carry_intent = follow_up(reading, context)
    if not carry_intent:
        return result.model_copy(update={"entities": entities})
    return result.model_copy(
        update={
            "intent": context.intent,
            "confidence": context.confidence,
            "clarify": False,
            "entities": entities,
        }
    )


# --- route ------------------------------------------------------------------------------

# DESIGN §3.4: a question about spend or savings goes through all three agents.
_SPEND_OR_SAVINGS: Final = frozenset({Intent.COST_ANALYSIS, Intent.OPTIMIZATION})


def decide_route(result: TriageResult, *, has_usage_data: bool) -> Route:
    """Where the run goes after triage (the rule is in docs/triage.md):

    1. A reference to an earlier answer's finding -> no agents, a ``reference`` answer from
       that finding (``clarify`` when it matches several).
    2. ``data_onboarding`` -> no agents, the ``onboarding`` answer.
    2b. A what-if ("what would X have cost on model Y?") with usage data -> ``data`` then
       ``optimization`` (which reprices the measured tokens), whatever else was scored.
    3. Unclear (``clarify``) -> no agents, a ``clarify`` answer with the two readings; the
       ``onboarding`` answer instead when the workspace has no usage data.
    4. ``other`` -> no agents, a ``help`` answer.
    5. Any other intent without usage data -> the ``onboarding`` answer (never invented
       numbers).
    6. ``cost_analysis`` or ``optimization`` asked (as the intent or one of the intents),
       or a savings target, or optimization evidence >= ``SECONDARY_OPTIMIZATION``
       -> ``data`` then ``optimization``.
    7. ``usage_question`` and ``anomaly`` otherwise -> ``data``.
    """
    reference = result.entities.reference
    if reference is not None:
        if len(reference.ranks) > 1:
            return Route(
                agents=[],
                answer="clarify",
                data_sufficient=has_usage_data,
                reason=f"could mean {reference.kind}s {reference.ranks} of the earlier answer",
            )
        which = (
            f"{reference.kind} {reference.ranks[0]} of the earlier answer"
            if reference.ranks
            else f"a {reference.kind} the earlier answer did not have"
        )
        return Route(
            agents=[],
            answer="reference",
            data_sufficient=has_usage_data,
            reason=f"asks about {which}: answered from its findings",
        )
    if result.intent is Intent.DATA_ONBOARDING and not result.clarify:
        return Route(
            agents=[],
            answer="onboarding",
            data_sufficient=has_usage_data,
            reason="asks how to send usage data",
        )
    what_if = result.entities.what_if
    if what_if is not None and has_usage_data:
        # A what-if names what it asks: no reading to clarify, whatever the lexicon scored.
        return Route(
            agents=["data", "optimization"],
            answer="findings",
            data_sufficient=True,
            reason=(
                f"asks what the usage would have cost on {what_if.model}: measure, then "
                "reprice the measured tokens at its prices"
            ),
        )
    if result.clarify:
        if not has_usage_data:
            return Route(
                agents=[],
                answer="onboarding",
                data_sufficient=False,
                reason="unclear, and the workspace has no usage data to answer any reading",
            )
        readings = " or ".join(i.value for i in result.entities.intents)
        return Route(
            agents=[],
            answer="clarify",
            data_sufficient=True,
            reason=f"unclear: {readings}",
        )
    if result.intent is Intent.OTHER:
        return Route(
            agents=[], answer="help", data_sufficient=has_usage_data, reason="not about LLM usage"
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
        or any(intent in _SPEND_OR_SAVINGS for intent in result.entities.intents)
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
