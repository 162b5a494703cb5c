"""A message read with its thread's context (DESIGN §13): follow-ups and references.

Pure: the context (``ThreadContext``, what the thread's previous run was asked and found)
is passed in. Two readings, tried in this order:

1. A reference to a finding of the earlier answer ("#2", "the second one", "that
   recommendation", "the cheaper model one", "why?" after an anomaly, "how?" after a
   recommendation): ``entities.reference`` names it; the answer is built from it.
2. A follow-up ("and last week?", "what about gpt-4o?", "same for summarize", "only
   Anthropic", "instead", a bare name or period, or a question that names no scope): what
   it names replaces that entity and the rest is carried over, the intent too when it
   states none. ``entities.inherited`` lists what was carried.

Anything else stands alone. The rules are in docs/triage.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Final, Literal

from shared.models.context import ThreadContext
from shared.models.findings import Anomaly, Recommendation
from shared.models.period import MAX_PERIOD_DAYS, PeriodRange, month_start
from shared.models.triage import (
    Entities,
    FindingRef,
    Inheritable,
    Intent,
    ModelMention,
    PeriodEntity,
    WhatIfMention,
)

_I: Final = re.IGNORECASE
Asks = Literal["why", "how", "more"]
Kind = Literal["recommendation", "anomaly"]

# Intents a follow-up may carry over (a greeting or a question about sending data is not).
DATA_INTENTS: Final = frozenset(
    {Intent.COST_ANALYSIS, Intent.OPTIMIZATION, Intent.USAGE_QUESTION, Intent.ANOMALY}
)

# --- references ---------------------------------------------------------------------------

_ORDINALS: Final = {
    "first": 1,
    "1st": 1,
    "top": 1,
    "biggest": 1,
    "largest": 1,
    "second": 2,
    "2nd": 2,
    "third": 3,
    "3rd": 3,
    "fourth": 4,
    "4th": 4,
    "fifth": 5,
    "5th": 5,
    "sixth": 6,
    "6th": 6,
    "seventh": 7,
    "7th": 7,
    "eighth": 8,
    "8th": 8,
    "ninth": 9,
    "9th": 9,
    "tenth": 10,
    "10th": 10,
    "last": -1,
}
_ORD: Final = "|".join(sorted(_ORDINALS, key=len, reverse=True))
_REC_NOUN: Final = (
    r"recommendations?|recs?|suggestions?|options?|ideas?|tips?|fix(?:es)?|items?|"
    r"savings?|changes?|points?"
)
_ANOMALY_NOUN: Final = r"anomal(?:y|ies)|spikes?|jumps?|outliers?|surges?"
_HASH: Final = re.compile(
    r"(?<![\w#])#\s?(?P<n>[0-9]{1,2})\b"
    r"(?!\s*(?:cost|model|feature|provider|spender|driver|user|customer|expense))",
    _I,
)
_NOUN_NUMBER: Final = re.compile(
    rf"\b(?P<noun>{_REC_NOUN}|{_ANOMALY_NOUN}|number|no\.?|num)\s*(?:#|no\.?\s*)?"
    r"(?P<n>[0-9]{1,2})\b(?!\s*(?:%|percent|days?|weeks?|months?|hours?|k\b|x\b))",
    _I,
)
_ORDINAL_NOUN: Final = re.compile(
    rf"\b(?P<ord>{_ORD})\s+(?:(?:saving|recommended|suggested|listed|one|of the)\s+)?"
    rf"(?P<noun>{_REC_NOUN}|{_ANOMALY_NOUN}|ones?)\b",
    _I,
)
# "and the second?", "the third one", "what about the last one?": the whole message.
_ORDINAL_ALONE: Final = re.compile(
    r"^\W*(?:(?:and|ok(?:ay)?|so|then|now|what about|how about|and what about|tell me about|"
    r"more on|explain)\W+)*(?:the\s+)?(?P<ord>" + _ORD + r")(?:\s+(?:one|item))?\W*$",
    _I,
)
_DEMONSTRATIVE: Final = re.compile(
    rf"\b(?:that|this|the above|the same|your|this last)\s+(?P<noun>{_REC_NOUN}|{_ANOMALY_NOUN}"
    r"|one)\b",
    _I,
)
# "the cheaper model one", "the caching suggestion", "the gpt-4o recommendation".
_DESCRIBED: Final = re.compile(
    r"\bthe\s+(?P<desc>[\w .`'/-]{1,48}?)\s+(?P<noun>one|recommendation|suggestion|option|"
    r"idea|tip|fix|saving|change|anomaly|spike)\b",
    _I,
)
# "tell me more about X", "explain X", "more on X": X may describe a finding.
_ABOUT: Final = re.compile(
    r"^\W*(?:(?:and|ok(?:ay)?|so|now)\W+)?(?:(?:can you |could you |please )?"
    r"(?:tell me (?:more )?about|more (?:details |detail |info )?(?:on|about)|details (?:on|about)|"
    r"explain|elaborate on|expand on|go deeper (?:on|into)|dig into|why|how (?:do|would|can|should)"
    r" (?:i|we) (?:do|implement|apply|act on|start)))\s+(?:the\s+)?(?P<desc>[^?!.]{1,60}?)\W*$",
    _I,
)
_LEAD: Final = r"^\W*(?:(?:but|and|so|ok(?:ay)?|hm+|hmm+|right|sure|cool|great|thanks)\W+)*"
_END: Final = r"(?:\s+(?:exactly|then|again|here|there|please|that day|on that day))*\W*$"
_WHY_ALONE: Final = re.compile(
    _LEAD + r"(?:why|how come|what caused (?:it|that|this|the (?:spike|jump|anomaly|increase))|"
    r"what drove (?:it|that|this|the (?:spike|jump|anomaly|increase))|"
    r"what(?:'s| is| was) behind (?:it|that|this|the (?:spike|jump))|"
    r"what(?:'s| is| was) the (?:reason|cause)|reason|cause|"
    r"why (?:is|was|did|does) (?:that|it|this)(?: (?:so )?(?:high|happen|expensive|spike|"
    r"happen(?:ed)?))?|why so (?:high|much|expensive))" + _END,
    _I,
)
_HOW_ALONE: Final = re.compile(
    _LEAD + r"(?:how|how so|how exactly|what are the steps|steps|next steps|and how|"
    r"how (?:do|would|can|should|could) (?:i|we) (?:do|implement|apply|act on|start with|"
    r"get|achieve|make) (?:that|it|this)(?: happen)?|how (?:would|does) (?:that|it|this) work|"
    r"what should (?:i|we) do(?: about (?:it|that|this))?|what do (?:i|we) (?:do|change)|"
    r"how do (?:i|we) (?:start|begin|set (?:it|that) up))" + _END,
    _I,
)
_MORE_ALONE: Final = re.compile(
    _LEAD + r"(?:(?:can you |could you |please )?(?:tell me more|more (?:details|detail|info)|"
    r"details|go on|elaborate|explain(?: (?:that|it|this|more))?|expand(?: on (?:that|it|this))?|"
    r"more on (?:that|it|this)|tell me more about (?:that|it|this)|what do you mean|"
    r"say more|and\??|more)(?: please)?)" + _END,
    _I,
)
_ASKS_WHY: Final = re.compile(
    r"\b(?:why|how come|caused?|drove|drive|behind|reason|root cause)\b", _I
)
_ASKS_HOW: Final = re.compile(
    r"\b(?:how|steps?|implement|apply|act on|set (?:it|that|this) up|what should (?:i|we) do)\b",
    _I,
)

# The words that name each kind of recommendation ("the caching one" is either cache).
_KIND_WORDS: Final[dict[str, re.Pattern[str]]] = {
    kind: re.compile(pattern, _I)
    for kind, pattern in {
        "cheaper_model": (
            r"\b(?:cheaper|smaller|smallest|mini|downgrad\w*|model switch|switch\w*|"
            r"moving|move|migrat\w*)\b"
        ),
        "prompt_caching": r"\b(?:prompt|prefix|cach\w*)\b",
        "response_cache": r"\b(?:response|repeat\w*|duplicate\w*|cach\w*)\b",
        "batch_api": r"\b(?:batch\w*|nightly|offline|non-?interactive)\b",
        "trim_outputs": r"\b(?:trim\w*|cap|capping|max[_ ]?tokens|outputs?|shorter|length)\b",
        "failed_calls": r"\b(?:fail\w*|errors?|retr(?:y|ies)|broken)\b",
        "deprecated_model": r"\b(?:deprecat\w*|retir\w*|old model|outdated|legacy)\b",
    }.items()
}
_CHUNK: Final = re.compile(r"[^\W_]+")


def _key(name: str) -> str:
    return "".join(_CHUNK.findall(name.lower()))


@dataclass(frozen=True, slots=True)
class _Found:
    kind: Kind | None
    ranks: list[int] | None  # None: the finding in focus (or the lead one)
    phrase: str
    asks: Asks | None


def _asks(text: str) -> Asks | None:
    if _ASKS_WHY.search(text):
        return "why"
    if _ASKS_HOW.search(text):
        return "how"
    return None


def _noun_kind(noun: str) -> Kind | None:
    if re.fullmatch(_ANOMALY_NOUN, noun, _I):
        return "anomaly"
    if re.fullmatch(_REC_NOUN, noun, _I):
        return "recommendation"
    return None


def _ordinal(word: str, count: int) -> list[int]:
    rank = _ORDINALS[word.lower()]
    return [count if rank == -1 else rank] if count else []


def _described(
    desc: str, recommendations: list[Recommendation], names: set[str], *, models_alone: bool
) -> list[int] | None:
    """The ranks of the recommendations ``desc`` describes: by the words of their kind
    ("caching", "cheaper model"), narrowed by the feature, model or provider the message
    names; None when it describes none of them."""
    kinds = {kind for kind, pattern in _KIND_WORDS.items() if pattern.search(desc)}
    ranked = list(enumerate(recommendations, 1))
    by_kind = [rank for rank, rec in ranked if rec.kind in kinds]
    by_feature = [rank for rank, rec in ranked if rec.feature in names]
    by_model = [rank for rank, rec in ranked if {rec.model, rec.provider, rec.target_model} & names]
    for narrow in (by_feature, by_model):
        if narrow and by_kind and set(narrow) & set(by_kind):
            return sorted(set(narrow) & set(by_kind))
    if by_feature:
        return by_feature
    if by_kind:
        return by_kind
    if by_model and (models_alone or len(by_model) == 1):
        return by_model
    return None


def find_reference(
    text: str, names: set[str], context: ThreadContext
) -> tuple[FindingRef, bool] | None:
    """The finding of the earlier answer ``text`` refers to, and whether it says which by
    number, ordinal or description (explicit) rather than by "why?", "how?", "tell me
    more" alone; None if it refers to none.

    ``names`` are the models, features and providers the message names (their canonical
    names), which pick a recommendation out ("the classify_ticket one").
    """
    found = _explicit(text, names, context)
    explicit = found is not None
    if found is None and context.has_findings:
        found = _implicit(text, names, context)
    if found is None:
        return None
    asks = found.asks or _asks(text) or "more"
    kind = found.kind or _default_kind(context, asks)
    items = _items(context, kind)
    ranks = found.ranks
    if ranks is None:
        ranks = _lead_rank(context, kind)
    ranks = [r for r in ranks if 1 <= r <= len(items)] if items else []
    reference = FindingRef(
        kind=kind, ranks=sorted(set(ranks)), listed=len(items), phrase=found.phrase, asks=asks
    )
    return reference, explicit


def _items(context: ThreadContext, kind: Kind) -> list[Recommendation] | list[Anomaly]:
    return context.recommendations if kind == "recommendation" else context.anomalies


def _default_kind(context: ThreadContext, asks: Asks) -> Kind:
    focus = context.focus
    if focus is not None and len(focus.ranks) == 1 and _items(context, focus.kind):
        return focus.kind
    if asks == "why" and context.anomalies:
        return "anomaly"
    return "recommendation" if context.recommendations or not context.anomalies else "anomaly"


def _lead_rank(context: ThreadContext, kind: Kind) -> list[int]:
    """The finding in focus, else the one the earlier answer led with: the first
    recommendation (the largest saving) or the costliest anomaly."""
    focus = context.focus
    if focus is not None and focus.kind == kind and len(focus.ranks) == 1:
        return list(focus.ranks)
    if kind == "anomaly" and context.anomalies:
        costliest = max(range(len(context.anomalies)), key=lambda i: context.anomalies[i].cost_usd)
        return [costliest + 1]
    return [1]


def _explicit(text: str, names: set[str], context: ThreadContext) -> _Found | None:
    """A reference by number, ordinal, demonstrative or description: it refers whether or
    not the earlier answer had such a finding (then it is answered that it had none)."""
    recs, anomalies = context.recommendations, context.anomalies
    default: Kind = "recommendation" if recs or not anomalies else "anomaly"
    if match := _HASH.search(text):
        return _Found(default, [int(match["n"])], match.group(), None)
    if match := _NOUN_NUMBER.search(text):
        kind = _noun_kind(match["noun"]) or default
        return _Found(kind, [int(match["n"])], match.group(), None)
    if match := _ORDINAL_NOUN.search(text):
        kind = _noun_kind(match["noun"]) or default
        return _Found(kind, _ordinal(match["ord"], len(_items(context, kind))), match.group(), None)
    if match := _ORDINAL_ALONE.search(text):
        kind = default
        return _Found(kind, _ordinal(match["ord"], len(_items(context, kind))), match.group(), None)
    if match := _DEMONSTRATIVE.search(text):
        noun = match["noun"].lower()
        if noun == "one" and not context.has_findings:
            return None
        return _Found(_noun_kind(noun), None, match.group(), None)
    if match := _DESCRIBED.search(text):
        described = _noun_kind(match["noun"])
        if described == "anomaly" or (
            described is None and match["noun"].lower() == "one" and not recs
        ):
            if anomalies:
                return _Found("anomaly", None, match.group(), None)
            return None
        ranks = _described(match["desc"], recs, names, models_alone=True)
        if ranks is not None:
            return _Found("recommendation", ranks, match.group(), None)
    return None


def _implicit(text: str, names: set[str], context: ThreadContext) -> _Found | None:
    """ "why?", "how?", "tell me more", "explain the caching one": a reference only because
    the earlier answer had findings."""
    if match := _WHY_ALONE.search(text):
        return _Found(None, None, match.group().strip(), "why")
    if match := _HOW_ALONE.search(text):
        return _Found(None, None, match.group().strip(), "how")
    if match := _MORE_ALONE.search(text):
        return _Found(None, None, match.group().strip(), "more")
    if (match := _ABOUT.search(text)) and context.recommendations:
        ranks = _described(match["desc"], context.recommendations, names, models_alone=False)
        if ranks:
            return _Found("recommendation", ranks, match.group().strip(), None)
    return None


# --- follow-ups -----------------------------------------------------------------------------

_MARKER: Final = re.compile(
    r"^\W*(?:(?:ok(?:ay)?|so|hm+|right|cool|great|thanks|and|but|now|then)\W+)*"
    r"(?:and|also|plus|what about|how about|what of|and for|same (?:for|but|with|thing|again|"
    r"question)|now (?:for|do|show|try)|ok(?:ay)? (?:and|now)|then|but|only|just|instead|"
    r"compare(?:d)? (?:to|with)|vs\.?|versus|repeat (?:for|that|it)|do the same|"
    r"same|again for|for)\b",
    _I,
)
_ANYWHERE: Final = re.compile(
    r"\b(?:instead|as well|too|the same|same for|only for|just for|rather than|again)\b", _I
)
_ADDITIVE: Final = re.compile(r"\b(?:too|as well|also|plus|in addition|add)\b", _I)
_REPLACING: Final = re.compile(r"\b(?:only|just|instead|rather than|exclusively)\b", _I)
_CLEAR_ALL: Final = re.compile(
    r"\b(?:overall|in total|everything|all of it|across the board|(?:the )?whole "
    r"(?:workspace|team|org|organi[sz]ation|account)|in general|all (?:usage|spend|calls))\b",
    _I,
)
_CLEAR: Final[dict[str, re.Pattern[str]]] = {
    kind: re.compile(
        rf"\b(?:all|every|any|each|across(?: all)?(?: the)?)\s+(?:the\s+)?{words}\b", _I
    )
    for kind, words in {
        "models": r"(?:llms?|models?)",
        "features": r"features?",
        "providers": r"(?:providers?|vendors?)",
    }.items()
}
_RELATIVE: Final = re.compile(
    r"\b(?:the\s+|a\s+)?(?P<unit>day|week|month|quarter|year|period|one)\s+"
    r"(?:before|prior|earlier)\b(?!\s+(?:yesterday|last))|"
    r"\b(?:the\s+)?(?:previous|prior|preceding)\s+(?P<unit2>period|one)\b",
    _I,
)
_SCOPE_FOR: Final[dict[str, str]] = {
    "models": "model",
    "features": "feature",
    "providers": "provider",
}


def relative_period(text: str, context: ThreadContext) -> PeriodEntity | None:
    """ "the week before", "the previous period": relative to the period the thread's last
    answer covered."""
    match = _RELATIVE.search(text)
    if match is None:
        return None
    base = _base_period(context)
    if base is None:
        return None
    unit = (match["unit"] or match["unit2"] or "period").lower()
    start, end = base.start, base.end
    length = end - start
    if unit == "day":
        span = timedelta(days=1)
        new = (start - span, start)
    elif unit == "week":
        new = (start - timedelta(days=7), start)
    elif unit in ("month", "quarter", "year"):
        months = {"month": 1, "quarter": 3, "year": 12}[unit]
        aligned = start == month_start(start.year, start.month)
        if aligned:
            first = month_start(start.year, start.month - months)
            new = (first, start)
        else:
            days = {"month": 30, "quarter": 90, "year": 365}[unit]
            new = (start - timedelta(days=days), start)
    else:  # the period of the same length just before
        new = (start - length, start)
    first, last = new
    first = max(first, last - timedelta(days=MAX_PERIOD_DAYS))
    return PeriodEntity(start=first, end=last, phrase=match.group().strip(), token=None)


def _base_period(context: ThreadContext) -> PeriodRange | None:
    named = context.entities.period
    if named is not None:
        return PeriodRange(start=named.start, end=named.end)
    return context.anomalies_period or context.recommendations_period


@dataclass(frozen=True, slots=True)
class Reading:
    """What ``analyze`` knows of a message that the follow-up rule needs."""

    text: str
    entities: Entities
    stated: bool  # it names an intent by its words
    other_words: bool  # a greeting, thanks, a question about Apex
    onboarding: bool  # it asks how to send data


def is_follow_up(reading: Reading, context: ThreadContext) -> bool:
    """Whether the message continues the thread's last question (docs/triage.md)."""
    entities = reading.entities
    # A what-if's target is no scope: "if we switched it to gpt-4o-mini?" after a question
    # about gpt-4o last month asks about that usage.
    target = entities.what_if.model if entities.what_if is not None else None
    models = [m for m in entities.models if m.name != target]
    named = bool(entities.period or models or entities.features or entities.providers)
    relative = _RELATIVE.search(reading.text) is not None
    clears = _CLEAR_ALL.search(reading.text) is not None or any(
        p.search(reading.text) for p in _CLEAR.values()
    )
    if reading.onboarding:
        return False
    if reading.other_words and not reading.stated and not named:
        return False
    if _MARKER.search(reading.text) or _ANYWHERE.search(reading.text):
        return True
    if not reading.stated:
        return named or relative or clears or bool(entities.metrics or entities.group_by)
    return not named


# The order ``entities.inherited`` lists what was carried in (docs/triage.md).
_INHERITED_ORDER: Final[tuple[Inheritable, ...]] = (
    "intent",
    "period",
    "models",
    "features",
    "providers",
    "savings_target",
    "group_by",
    "metrics",
    "what_if",
)


def _carried_what_if(
    own: Entities, before: Entities, text: str, *, carry_intent: bool
) -> WhatIfMention | None:
    """The earlier what-if, carried into a follow-up ("and on gpt-4o-mini?", "what about
    haiku?", "and last quarter?"): a model named replaces the target, a feature named
    replaces the feature, the rest is kept. A what-if asked again without a feature ("what
    if we had used sonnet instead?") keeps the earlier feature. None: nothing carried."""
    earlier = before.what_if
    if earlier is None:
        return None
    clears_features = bool(_CLEAR_ALL.search(text) or _CLEAR["features"].search(text))
    if len(own.features) == 1:
        feature = own.features[0].name
    elif own.features or clears_features:
        feature = None
    else:
        feature = earlier.feature
    mine = own.what_if
    if mine is not None:
        if mine.feature is not None or feature is None:
            return None
        return mine.model_copy(update={"feature": feature})
    if not carry_intent:
        return None
    if not own.models:
        return earlier.model_copy(update={"feature": feature})
    target = own.models[0]
    provider = own.providers[0].name if len(own.providers) == 1 else None
    return WhatIfMention(
        model=target.name, provider=provider, feature=feature, phrase=target.phrase
    )


def own_sources(own: Entities, what_if: WhatIfMention) -> list[ModelMention]:
    """The models a follow-up names other than the what-if's target."""
    return [m for m in own.models if m.name != what_if.model]


def _what_if_models(
    own: Entities, before: Entities, what_if: WhatIfMention, text: str
) -> tuple[list[ModelMention], bool]:
    """The models of a carried what-if, as a what-if asked in full names them: the models
    the usage ran on (the follow-up's, else the earlier ones) and the target (which the
    data step does not filter by), and whether the earlier ones were carried."""
    earlier = before.what_if.model if before.what_if is not None else None
    sources = own_sources(own, what_if)
    carried = False
    if not sources and not (_CLEAR_ALL.search(text) or _CLEAR["models"].search(text)):
        sources = [m for m in before.models if m.name not in (earlier, what_if.model)]
        carried = bool(sources)
    target = next((m for m in [*own.models, *before.models] if m.name == what_if.model), None)
    return [*sources, *([target] if target is not None else [])], carried


def follow_up(reading: Reading, context: ThreadContext) -> tuple[Entities, list[Inheritable], bool]:
    """The message's entities with the thread's carried over, what was carried, and
    whether the intent is carried too (the message states none)."""
    own, before = reading.entities, context.entities
    text = reading.text
    inherited: list[Inheritable] = []
    update: dict[str, object] = {}
    carry_intent = not reading.stated and context.intent in DATA_INTENTS
    if carry_intent:
        inherited.append("intent")
    period = own.period or relative_period(text, context)
    if period is None and before.period is not None:
        period = before.period
        inherited.append("period")
    update["period"] = period
    clear_all = _CLEAR_ALL.search(text) is not None
    additive = _ADDITIVE.search(text) is not None and not _REPLACING.search(text)
    kinds: tuple[Literal["models", "features", "providers"], ...] = (
        "models",
        "features",
        "providers",
    )
    for kind in kinds:
        mine, theirs = getattr(own, kind), getattr(before, kind)
        asks_breakdown = _SCOPE_FOR[kind] in own.group_by
        if clear_all or _CLEAR[kind].search(text) or asks_breakdown:
            update[kind] = mine
        elif mine and additive:
            names = {m.name for m in mine}
            update[kind] = [*(t for t in theirs if t.name not in names), *mine]
            if theirs:
                inherited.append(kind)
        elif mine:
            update[kind] = mine
        else:
            update[kind] = theirs
            if theirs:
                inherited.append(kind)
    if own.savings_target is None and before.savings_target is not None:
        update["savings_target"] = before.savings_target
        inherited.append("savings_target")
    if not own.group_by and before.group_by:
        update["group_by"] = before.group_by
        inherited.append("group_by")
    if carry_intent and not own.metrics and before.metrics:
        update["metrics"] = before.metrics
        inherited.append("metrics")
    if carry_intent:
        update["intents"] = before.intents or [context.intent]
    carried_what_if = _carried_what_if(own, before, text, carry_intent=carry_intent)
    what_if = carried_what_if or own.what_if
    if what_if is not None:
        update["what_if"] = what_if
        models, carried = _what_if_models(own, before, what_if, text)
        update["models"] = models
        if "models" in inherited:
            inherited.remove("models")
        if carried:
            inherited.append("models")
        if carried_what_if is not None:
            inherited.append("what_if")
        inherited.sort(key=_INHERITED_ORDER.index)
    update["inherited"] = inherited
    return own.model_copy(update=update), inherited, carry_intent
