"""Rule-based triage: what a message asks (intent), what it names (entities), where it goes.

Pure and deterministic: no I/O, no LLM, no clock (``now`` is passed in). Every regex is
compiled once at import; the only per-call compilation is the matcher for a workspace's
known names, cached by the tuple of names. See docs/triage.md for the lexicon approach,
the period phrases understood and the route rule.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Final, Literal

from shared.models.period import (
    DAYS_PER_MONTH,
    MAX_PERIOD_DAYS,
    day_start,
    month_start,
    resolve_token,
    to_date_end,
)
from shared.models.triage import (
    Agent,
    Entities,
    FeatureMention,
    Intent,
    MatchedCue,
    ModelMention,
    PeriodEntity,
    ProviderMention,
    Route,
    SavingsTarget,
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


# --- known names ------------------------------------------------------------------------


_CHUNK: Final = re.compile(r"[^\W_]+")


def _key(name: str) -> str:
    """Compare names without case or separators: "Claude 3.5 Sonnet" ~ "claude-3-5-sonnet"."""
    return "".join(_CHUNK.findall(name.lower()))


@dataclass(frozen=True, slots=True)
class _NameMatcher:
    pattern: re.Pattern[str]
    by_key: dict[str, str]


@lru_cache(maxsize=256)
def _name_matcher(names: tuple[str, ...]) -> _NameMatcher | None:
    """A regex finding any of ``names`` with flexible separators, longest name first."""
    by_key: dict[str, str] = {}
    alternatives: list[str] = []
    for name in sorted(names, key=len, reverse=True):
        chunks = [re.escape(chunk) for chunk in _CHUNK.findall(name.lower())]
        key = _key(name)
        if not chunks or key in by_key:
            continue
        by_key[key] = name
        alternatives.append(r"[\s._/:-]*".join(chunks))
    if not alternatives:
        return None
    pattern = rf"(?<![\w.-])(?:{'|'.join(alternatives)})(?![\w]|[.-]\w)"
    return _NameMatcher(re.compile(pattern, _I), by_key)


def _known(names: Collection[str]) -> _NameMatcher | None:
    # Sorting makes the cache key independent of the caller's order.
    return _name_matcher(tuple(sorted({n for n in names if n.strip()})))


def _find_known(
    text: str, matcher: _NameMatcher | None
) -> Iterable[tuple[str, str, tuple[int, int]]]:
    """Yield (known name, phrase, span) for each known name in ``text``."""
    if matcher is None:
        return
    for match in matcher.pattern.finditer(text):
        # Case-insensitive matching and lower() disagree on a few letters (Turkish dotted I).
        name = matcher.by_key.get(_key(match.group()))
        if name is not None:
            yield name, match.group(), match.span()


def _overlaps(span: tuple[int, int], taken: Iterable[tuple[int, int]]) -> bool:
    return any(span[0] < end and start < span[1] for start, end in taken)


# --- models -----------------------------------------------------------------------------

# Families that name a model only with a version or variant after them ("command-r").
_FAMILIES = (
    r"chatgpt|gpt|claude|gemini|gemma|llama|codellama|mistral|mixtral|codestral|ministral|"
    r"pixtral|command|deepseek|grok|qwen|phi|nova|titan|jamba|text-embedding|embed|whisper|"
    r"dall-e|davinci|babbage"
)
# Families common enough alone ("what do we spend on claude?") to count as a mention.
_BARE_FAMILIES: Final = frozenset(
    {"claude", "gemini", "gpt", "llama", "mistral", "gemma", "grok", "deepseek", "qwen"}
)
_VERSION = r"[0-9]+(?:x[0-9]+)?(?:\.[0-9]+)?[a-z]{0,2}"
_VARIANT = (
    r"mini|nano|turbo|pro|flash|lite|ultra|sonnet|opus|haiku|instant|preview|instruct|chat|"
    r"large|medium|small|tiny|exp|experimental|latest|plus|r|reasoner|coder|vision|audio|"
    r"realtime|search|thinking|embedding|english|multilingual|high|low|base|online|codex|"
    r"image|transcribe|tts|it|v[0-9]+"
)
# After a space only unmistakable variants and small versions count, so "gpt-4o small
# requests" or "gpt-4o 30%" do not grow the name.
_SPACED = r"mini|nano|turbo|sonnet|opus|haiku|flash|pro|lite|ultra|instant|instruct|[0-9]{1,3}b"
_SPACED_VERSION = (
    r"[0-9](?:\.[0-9])?(?![0-9])(?!\s*(?:%|percent|x\b|times|hours?|days?|weeks?|months?|"
    r"years?|k\b|m\b))"
)
_TOKEN = rf"(?:{_VERSION}|{_VARIANT})(?![a-z0-9])"
_MODEL_RE: Final = re.compile(
    rf"(?<![\w.-])(?:(?P<fam>{_FAMILIES})(?:(?:[-_]?|\s)(?:{_VERSION}(?![a-z0-9])|{_SPACED}"
    rf"(?![a-z0-9]))|(?=\W|$))|o[1-9](?![\w.]))"
    rf"(?:[-_.]{_TOKEN}|\s(?:{_SPACED}|{_SPACED_VERSION})(?![a-z0-9]))*"
    rf"(?![\w-]|\.\w)",
    _I,
)
# "gpt4o" -> "gpt-4o", but the o-series keeps its one letter ("o3-mini").
_DIGITS_AFTER_LETTERS: Final = re.compile(r"^([a-z]{2,})(?=[0-9])")
_DOTTED_DIGITS: Final = re.compile(r"(?<=[0-9])\.(?=[0-9])")
_DATE_SUFFIX: Final = re.compile(r"[-@](?:[0-9]{8}|[0-9]{4}-[0-9]{2}-[0-9]{2}|latest|[0-9]{3})$")


def normalize_model(phrase: str) -> str:
    """Canonical spelling: "GPT 4o Mini" -> gpt-4o-mini, "Claude 3.5 Sonnet" -> claude-3-5-sonnet.

    Lower case, dashes between parts; Anthropic names use dashes inside versions too.
    """
    name = re.sub(r"[\s_]+", "-", phrase.strip().lower())
    name = _DIGITS_AFTER_LETTERS.sub(r"\1-", name)
    if name.startswith("claude"):
        name = _DOTTED_DIGITS.sub("-", name)
    return re.sub(r"-{2,}", "-", name)


def _models(text: str, known: _NameMatcher | None) -> list[ModelMention]:
    found: dict[str, ModelMention] = {}
    taken: list[tuple[int, int]] = []
    for name, phrase, span in _find_known(text, known):
        found.setdefault(name, ModelMention(name=name, phrase=phrase, known=True))
        taken.append(span)
    for match in _MODEL_RE.finditer(text):
        if _overlaps(match.span(), taken):
            continue
        phrase = match.group()
        family = (match.group("fam") or "").lower()
        if family and phrase.lower() == family and family not in _BARE_FAMILIES:
            continue
        for mention in _resolve_model(phrase, known):
            found.setdefault(mention.name, mention)
    return list(found.values())


def _resolve_model(phrase: str, known: _NameMatcher | None) -> list[ModelMention]:
    """Map a generic mention onto the workspace's models: dated snapshots, or a family."""
    name = normalize_model(phrase)
    if known is None:
        return [ModelMention(name=name, phrase=phrase, known=False)]
    key = _key(name)
    bare = name in _BARE_FAMILIES
    matches = [
        known_name
        for known_key, known_name in known.by_key.items()
        if (known_key.startswith(key) if bare else _key(_DATE_SUFFIX.sub("", known_name)) == key)
    ]
    if not matches:
        return [ModelMention(name=name, phrase=phrase, known=False)]
    return [ModelMention(name=m, phrase=phrase, known=True) for m in sorted(matches)]


# --- providers --------------------------------------------------------------------------

# Canonical ids are genai-prices provider ids (the price table Apex uses); aliases include
# the OpenTelemetry `gen_ai.provider.name` values so a workspace's own names map onto them.
_PROVIDERS: Final = {
    "openai": ("openai", "open ai"),
    "azure": ("azure openai", "azure", "azure.ai.openai", "azure.ai.inference"),
    "anthropic": ("anthropic",),
    "google": ("google", "vertex ai", "vertex", "gcp", "ai studio", "gcp.vertex_ai", "gcp.gemini"),
    "aws": ("aws bedrock", "amazon bedrock", "bedrock", "aws", "aws.bedrock"),
    "mistral": ("mistral ai", "mistral", "mistral_ai"),
    "cohere": ("cohere",),
    "groq": ("groq",),
    "deepseek": ("deepseek",),
    "x-ai": ("xai", "x.ai", "x-ai", "x_ai"),
    "meta": ("meta ai",),
    "together": ("together ai", "together.ai"),
    "perplexity": ("perplexity",),
    "fireworks": ("fireworks ai", "fireworks"),
    "openrouter": ("openrouter",),
}
_PROVIDER_KEYS: Final = {
    _key(alias): canonical
    for canonical, aliases in _PROVIDERS.items()
    for alias in (canonical, *aliases)
}
_PROVIDER_MATCHER: Final = _name_matcher(
    tuple(alias for aliases in _PROVIDERS.values() for alias in aliases)
)


def _providers(
    text: str, known: Collection[str], model_spans: list[tuple[int, int]]
) -> list[ProviderMention]:
    # A workspace names providers its own way ("aws.bedrock"); map canonical ids onto those.
    known_by_canonical = {
        _PROVIDER_KEYS[_key(name)]: name for name in known if _key(name) in _PROVIDER_KEYS
    }
    found: dict[str, ProviderMention] = {}
    taken: list[tuple[int, int]] = []
    for name, phrase, span in _find_known(text, _known(known)):
        found.setdefault(name, ProviderMention(name=name, phrase=phrase, known=True))
        taken.append(span)
    for alias, phrase, span in _find_known(text, _PROVIDER_MATCHER):
        if _overlaps(span, taken) or _overlaps(span, model_spans):
            continue
        canonical = _PROVIDER_KEYS[_key(alias)]
        name = known_by_canonical.get(canonical, canonical)
        found.setdefault(
            name,
            ProviderMention(name=name, phrase=phrase, known=name in known_by_canonical.values()),
        )
    return list(found.values())


# --- features ---------------------------------------------------------------------------

_BACKTICKED: Final = re.compile(r"`([^`\n]{1,64})`")
_FEATURE_AFTER: Final = re.compile(
    r"\bfeatures?\s+(?:called\s+|named\s+)?[\"'\u201c\u2018]?([a-z0-9][\w.-]{0,63})", _I
)
_FEATURE_BEFORE: Final = re.compile(
    r"(?<![\w.-])[\"'\u201c\u2018]?([a-z][\w.-]{0,63})[\"'\u201d\u2019]?\s+feature\b", _I
)
# Words that sit next to "feature" without naming one ("which feature", "feature costs").
_NOT_FEATURES: Final = frozenset(
    word
    for line in (
        "a an the this that these those which what whose each every any all some one our my",
        "your their its same other another single specific particular given whole entire",
        "most more least top biggest largest main new old expensive costly cheap cheapest slow",
        "is are was were be been and or but with without by per for from to of in on at as",
        "level levels wise names name list usage costs cost spend spending breakdown flag flags",
        "request requests set sets last next over during since between it they we you i",
    )
    for word in line.split()
)


def _features(
    text: str, known: _NameMatcher | None, model_spans: list[tuple[int, int]]
) -> list[FeatureMention]:
    found: dict[str, FeatureMention] = {}

    def add(name: str, phrase: str) -> None:
        known_name = known.by_key.get(_key(name)) if known else None
        if known_name is not None:
            found.setdefault(known_name, FeatureMention(name=known_name, phrase=phrase, known=True))
        elif name.lower() not in _NOT_FEATURES and _key(name):
            found.setdefault(name, FeatureMention(name=name, phrase=phrase, known=False))

    for name, phrase, span in _find_known(text, known):
        if not _overlaps(span, model_spans):
            add(name, phrase)
    for match in _BACKTICKED.finditer(text):
        inner = match.group(1).strip()
        if not _MODEL_RE.fullmatch(inner):
            add(inner, match.group())
    for pattern in (_FEATURE_AFTER, _FEATURE_BEFORE):
        for match in pattern.finditer(text):
            if not _overlaps(match.span(1), model_spans):
                add(match.group(1).rstrip(".-"), match.group().strip())
    return list(found.values())


# --- savings target ---------------------------------------------------------------------

_CUT_VERB = (
    r"(?:cut(?:ting)?|reduc(?:e|ing)|lower(?:ing)?|slash|trim|decrease|drop|shrink|"
    r"bring down|save|saving|shave)"
)
_PCT = r"(?P<pct>[0-9]{1,3}(?:\.[0-9]+)?)\s*(?:%|percent\b|per cent\b|pct\b)"
_FRACTION = (
    r"(?P<frac>half|a half|one half|a third|one third|two thirds|a quarter|one quarter|"
    r"three quarters|a fifth|one fifth|a tenth|one tenth)"
)
_MONEY = (
    r"(?P<amt>\$\s?[0-9][0-9,]*(?:\.[0-9]+)?(?:\s?(?:k|m|thousand|million)\b)?|"
    r"[0-9][0-9,]*(?:\.[0-9]+)?\s?(?:k|m|thousand|million)?\s?(?:dollars|usd|bucks)\b)"
)
_PER = (
    r"(?:\s*(?:/|per\b|a\b|an\b|each\b|every\b)\s*(?P<per>mo|month|yr|year|annum|wk|week|day)\b"
    r"|\s+(?P<per_adj>monthly|annually|yearly|weekly|daily)\b)?"
)
_NEAR = r"[^.?!\n]{0,40}?"
_PERCENT_TARGETS: Final = (
    re.compile(rf"\b{_CUT_VERB}\b{_NEAR}\bby\s+{_PCT}", _I),
    re.compile(rf"\b{_CUT_VERB}\s+(?:[a-z]+\s+){{0,3}}?{_PCT}", _I),
    re.compile(rf"(?<![\w.]){_PCT}\s+(?:cheaper|less|lower|savings?|reductions?|off|cut)\b", _I),
    re.compile(rf"\b{_CUT_VERB}\b{_NEAR}\b(?:by\s+)?{_FRACTION}\b", _I),
    re.compile(r"\b(?P<frac>halve)\b|\bcut\b[^.?!\n]{0,40}?\bin (?P<frac2>half)\b", _I),
)
_AMOUNT_TARGET: Final = re.compile(rf"\b{_CUT_VERB}\b{_NEAR}{_MONEY}{_PER}", _I)
_BUDGET_TARGETS: Final = (
    re.compile(
        rf"\b(?:get|keep|bring|stay|hold)\b{_NEAR}\b(?:under|below|within|less than|to)\s+"
        rf"{_MONEY}{_PER}",
        _I,
    ),
    re.compile(rf"\bbudget\s+(?:of|is|at)\s+{_MONEY}{_PER}", _I),
)
_FRACTIONS: Final = {
    "half": 50.0,
    "halve": 50.0,
    "third": 100 / 3,
    "two thirds": 200 / 3,
    "quarter": 25.0,
    "three quarters": 75.0,
    "fifth": 20.0,
    "tenth": 10.0,
}
_PER_MONTH_FACTOR: Final = {
    "day": float(DAYS_PER_MONTH),
    "week": DAYS_PER_MONTH / 7,
    "month": 1.0,
    "year": 1 / 12,
}
_PER_WORDS: Final = {
    "mo": "month",
    "month": "month",
    "monthly": "month",
    "yr": "year",
    "year": "year",
    "annum": "year",
    "annually": "year",
    "yearly": "year",
    "wk": "week",
    "week": "week",
    "weekly": "week",
    "day": "day",
    "daily": "day",
}
_MONEY_SCALE: Final = {"k": 1e3, "thousand": 1e3, "m": 1e6, "million": 1e6}
_MONEY_PARTS: Final = re.compile(r"([0-9][0-9,]*(?:\.[0-9]+)?)\s?(k|m|thousand|million)?\b", _I)


def _savings_target(text: str) -> SavingsTarget | None:
    for pattern in _PERCENT_TARGETS:
        match = pattern.search(text)
        if match is None:
            continue
        groups = match.groupdict()
        if groups.get("pct"):
            percent = float(groups["pct"])
        else:
            word = (groups.get("frac") or groups.get("frac2") or "").lower()
            percent = _FRACTIONS[re.sub(r"^(?:a|an|one)\s+", "", word)]
        if 0 < percent <= 100:
            return SavingsTarget(kind="percent", phrase=match.group(), percent=round(percent, 2))
    match = _AMOUNT_TARGET.search(text)
    if match is not None:
        return _money_target("amount", match)
    for pattern in _BUDGET_TARGETS:
        match = pattern.search(text)
        if match is not None:
            return _money_target("budget", match)
    return None


def _money_target(kind: Literal["amount", "budget"], match: re.Match[str]) -> SavingsTarget | None:
    parts = _MONEY_PARTS.search(match.group("amt"))
    if parts is None:
        return None
    amount = float(parts.group(1).replace(",", "") or 0) * _MONEY_SCALE.get(
        (parts.group(2) or "").lower(), 1.0
    )
    if not amount > 0:
        return None
    per_word = (match.group("per") or match.group("per_adj") or "").lower()
    per = _PER_WORDS.get(per_word)
    monthly = round(amount * _PER_MONTH_FACTOR[per], 2) if per else None
    return SavingsTarget(
        kind=kind,
        phrase=match.group().strip(),
        amount_usd=round(amount, 2),
        per=_as_per(per),
        monthly_usd=monthly,
    )


def _as_per(per: str | None) -> Literal["day", "week", "month", "year"] | None:
    match per:
        case "day" | "week" | "month" | "year":
            return per
        case _:
            return None


# --- periods ----------------------------------------------------------------------------

_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_WEEKDAY = r"(?:mon|tues?|wed(?:nes)?|thu(?:rs?)?|fri|sat(?:ur)?|sun)(?:day)?"
_ORD = r"(?:st|nd|rd|th)?"
_ISO = r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}"
_DATE = (
    rf"(?:{_ISO}|\b{_MONTH}\.?\s+[0-9]{{1,2}}{_ORD}\b"
    rf"(?:,?\s+[0-9]{{4}}\b)?|\b[0-9]{{1,2}}{_ORD}\s+(?:of\s+)?{_MONTH}\b(?:,?\s+[0-9]{{4}}\b)?)"
)
_NUMBER_WORDS: Final = {
    "a": 1,
    "an": 1,
    "one": 1,
    "two": 2,
    "a couple of": 2,
    "couple of": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "fourteen": 14,
    "fifteen": 15,
    "twenty": 20,
    "thirty": 30,
    "sixty": 60,
    "ninety": 90,
}
_NUM = (
    r"(?:[0-9]{1,4}|a couple of|couple of|"
    + "|".join(w for w in _NUMBER_WORDS if " " not in w and w not in {"a", "an"})
    + ")"
)
_UNIT_DAYS: Final = {
    "hour": 1 / 24,
    "day": 1,
    "week": 7,
    "fortnight": 14,
    "month": DAYS_PER_MONTH,
    "quarter": 3 * DAYS_PER_MONTH,
    "year": 365,
}

_MIN_YEAR: Final = 1970
_MAX_YEAR: Final = 2999
_ISO_DATE: Final = re.compile(r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})")
_MONTH_DAY: Final = re.compile(
    rf"(?P<mon>{_MONTH})\.?\s+(?P<d>[0-9]{{1,2}}){_ORD}(?:,?\s+(?P<y>[0-9]{{4}}))?", _I
)
_DAY_MONTH: Final = re.compile(
    rf"(?P<d>[0-9]{{1,2}}){_ORD}\s+(?:of\s+)?(?P<mon>{_MONTH})(?:,?\s+(?P<y>[0-9]{{4}}))?", _I
)

# (token, start, end): a resolved candidate before it becomes a PeriodEntity.
_Span = tuple[str | None, datetime, datetime]
_PeriodRule = Callable[[re.Match[str], datetime], _Span | None]


_MONTHS: Final = (
    "jan",
    "feb",
    "mar",
    "apr",
    "may",
    "jun",
    "jul",
    "aug",
    "sep",
    "oct",
    "nov",
    "dec",
)
_WEEKDAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _month_number(word: str) -> int:
    return _MONTHS.index(word[:3].lower()) + 1


def _weekday_number(word: str) -> int:
    return _WEEKDAYS.index(word[:3].lower())


def _safe_date(year: int, month: int, day: int) -> date | None:
    # Years outside usage-data history are typos; they would also overflow datetime.
    if not _MIN_YEAR <= year <= _MAX_YEAR:
        return None
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _parse_date(text: str, today: date, after: date | None = None) -> date | None:
    """A date phrase; without a year, the latest one not after ``today`` (or the first one
    on or after ``after``, for the end of a range)."""
    iso = _ISO_DATE.fullmatch(text)
    if iso:
        return _safe_date(int(iso.group(1)), int(iso.group(2)), int(iso.group(3)))
    match = _MONTH_DAY.fullmatch(text) or _DAY_MONTH.fullmatch(text)
    if match is None:
        return None
    month, day = _month_number(match.group("mon")), int(match.group("d"))
    if match.group("y"):
        return _safe_date(int(match.group("y")), month, day)
    # Feb 29 recurs only every 4 years (8 around a skipped century year); look that far.
    for offset in range(9):
        if after is None:
            found = _safe_date(today.year - offset, month, day)
            if found is not None and found <= today:
                return found
        else:
            found = _safe_date(after.year + offset, month, day)
            if found is not None and found >= after:
                return found
    return None


def _latest_month(month: int, year: str | None, today: date) -> datetime | None:
    if year:
        return month_start(int(year), month) if _MIN_YEAR <= int(year) <= _MAX_YEAR else None
    start = month_start(today.year, month)
    return start if start.date() <= today else month_start(today.year - 1, month)


def _to_date(start: datetime, end: datetime, now: datetime) -> datetime:
    # A period that is still running stops now, so it compares fairly with the previous one.
    return min(end, to_date_end(now)) if start <= now < end else end


def _last_weekday(word: str, today: date) -> datetime:
    # "on Tuesday" said on a Tuesday means last week's: today is "today".
    back = (today.weekday() - _weekday_number(word)) % 7 or 7
    return day_start(today - timedelta(days=back))


def _n_value(text: str) -> int:
    word = text.lower()
    return int(word) if word.isdigit() else _NUMBER_WORDS[word]


def _last_n(match: re.Match[str], now: datetime) -> _Span | None:
    count = _n_value(match.group("n"))
    unit = match.group("unit").lower().rstrip("s")
    days = count * _UNIT_DAYS[unit]
    if days <= 0:
        return None
    days = min(days, MAX_PERIOD_DAYS)
    token = f"last_{int(days)}d" if float(days).is_integer() else None
    return token, now - timedelta(days=days), now


def _past_unit(match: re.Match[str], now: datetime) -> _Span | None:
    days = _UNIT_DAYS[match.group("unit").lower()]
    token = f"last_{int(days)}d" if float(days).is_integer() else None
    return token, now - timedelta(days=days), now


def _token(token: str) -> _PeriodRule:
    def rule(_: re.Match[str], now: datetime) -> _Span:
        period = resolve_token(token, now)
        return token, period.start, period.end

    return rule


def _year(offset: int) -> _PeriodRule:
    def rule(_: re.Match[str], now: datetime) -> _Span:
        start = datetime(now.year + offset, 1, 1, tzinfo=UTC)
        return None, start, _to_date(start, datetime(now.year + offset + 1, 1, 1, tzinfo=UTC), now)

    return rule


def _quarter(offset: int) -> _PeriodRule:
    def rule(_: re.Match[str], now: datetime) -> _Span:
        first = (now.month - 1) // 3 * 3 + 1 + 3 * offset
        start = month_start(now.year, first)
        return None, start, _to_date(start, month_start(now.year, first + 3), now)

    return rule


def _named_quarter(match: re.Match[str], now: datetime) -> _Span | None:
    first = 3 * int(match.group("q")) - 2
    year = int(match.group("y") or now.year)
    if not _MIN_YEAR <= year <= _MAX_YEAR:
        return None
    if match.group("y") is None and month_start(year, first) > now:
        year -= 1  # "Q4" in March is last year's
    start = month_start(year, first)
    return None, start, _to_date(start, month_start(year, first + 3), now)


def _weekend(_: re.Match[str], now: datetime) -> _Span:
    # The last complete Saturday-Sunday.
    monday = day_start(now.date()) - timedelta(days=now.weekday())
    return None, monday - timedelta(days=2), monday


def _days_ago(match: re.Match[str], now: datetime) -> _Span | None:
    count = _n_value(match.group("n"))
    unit = match.group("unit").lower().rstrip("s")
    if unit == "day":
        start = day_start(now.date()) - timedelta(days=count)
        return None, start, start + timedelta(days=1)
    monday = day_start(now.date()) - timedelta(days=now.weekday())
    start = monday - timedelta(days=7 * count)
    return None, start, start + timedelta(days=7)


def _day_before_yesterday(_: re.Match[str], now: datetime) -> _Span:
    start = day_start(now.date()) - timedelta(days=2)
    return None, start, start + timedelta(days=1)


def _weekday(match: re.Match[str], now: datetime) -> _Span:
    start = _last_weekday(match.group("wd"), now.date())
    return None, start, start + timedelta(days=1)


def _single_date(match: re.Match[str], now: datetime) -> _Span | None:
    day = _parse_date(match.group("a"), now.date())
    if day is None:
        return None
    return None, day_start(day), day_start(day) + timedelta(days=1)


def _date_range(match: re.Match[str], now: datetime) -> _Span | None:
    first = _parse_date(match.group("a"), now.date())
    if first is None:
        return None
    last = _parse_date(match.group("b"), now.date(), after=first)
    if last is None:
        return None
    first, last = min(first, last), max(first, last)
    return None, day_start(first), day_start(last) + timedelta(days=1)


def _named_month(match: re.Match[str], now: datetime) -> _Span | None:
    start = _latest_month(_month_number(match.group("mon")), match.group("y"), now.date())
    if start is None:
        return None
    return None, start, _to_date(start, month_start(start.year, start.month + 1), now)


def _since(match: re.Match[str], now: datetime) -> _Span | None:
    today = now.date()
    if match.group("a"):
        day = _parse_date(match.group("a"), today)
        start = day_start(day) if day else None
    elif match.group("wd"):
        start = _last_weekday(match.group("wd"), today)
    elif match.group("mon"):
        start = _latest_month(_month_number(match.group("mon")), None, today)
    else:
        anchor = match.group("rel").lower().replace("the beginning", "the start")
        start = resolve_token(_SINCE_ANCHORS[anchor], now).start
    return None if start is None else (None, start, to_date_end(now))


_SINCE_ANCHORS: Final = {
    "yesterday": "yesterday",
    "last week": "last_week",
    "last month": "last_month",
    "the start of the week": "this_week",
    "the start of this week": "this_week",
    "the start of the month": "this_month",
    "the start of this month": "this_month",
}


def _rule(pattern: str, rule: _PeriodRule) -> tuple[re.Pattern[str], _PeriodRule]:
    return re.compile(pattern, _I), rule


_PERIOD_RULES: Final = (
    _rule(
        rf"\b(?:between|from)\s+(?P<a>{_DATE})\s+(?:and|to|through|thru|until|till|-|\u2013)\s+"
        rf"(?P<b>{_DATE})",
        _date_range,
    ),
    _rule(
        rf"(?P<a>\b{_ISO})\s*(?:to|through|thru|until|-|\u2013|\.\.)\s*(?P<b>{_ISO})\b",
        _date_range,
    ),
    _rule(
        rf"\bsince\s+(?:(?P<a>{_DATE})|(?:last\s+)?(?P<wd>\b{_WEEKDAY})\b|"
        rf"(?P<mon>\b{_MONTH})\b(?!\.?\s+[0-9])|(?P<rel>yesterday|last week|last month|"
        r"the (?:start|beginning) of (?:the|this) (?:week|month)))",
        _since,
    ),
    _rule(rf"(?:\bon\s+(?:the\s+)?)?(?P<a>{_DATE})", _single_date),
    _rule(rf"\b(?:on\s+|last\s+|this past\s+)?(?P<wd>{_WEEKDAY})s?\b", _weekday),
    _rule(
        rf"\b(?:in|during|for|of|over|across|throughout)\s+(?:the\s+month\s+of\s+)?"
        rf"(?P<mon>{_MONTH})\b(?!\.?\s+[0-9]{{1,2}}{_ORD}\b)(?:\s+(?P<y>[0-9]{{4}})\b)?",
        _named_month,
    ),
    _rule(rf"\b(?P<mon>{_MONTH})\.?\s+(?P<y>[0-9]{{4}})\b", _named_month),
    _rule(
        rf"\b(?:past|last|previous|prior|trailing)\s+(?P<n>{_NUM})\s+"
        r"(?P<unit>hours?|days?|weeks?|fortnights?|months?|quarters?|years?)\b",
        _last_n,
    ),
    _rule(
        r"\b(?:past|trailing)\s+(?P<unit>hour|day|week|fortnight|month|quarter|year)\b", _past_unit
    ),
    _rule(r"\blast\s+(?P<unit>hour|day|fortnight)\b", _past_unit),
    _rule(rf"\b(?P<n>{_NUM}|a|an)\s+(?P<unit>days?|weeks?)\s+ago\b", _days_ago),
    _rule(r"\bday before yesterday\b", _day_before_yesterday),
    _rule(r"\btoday\b|\bso far today\b", _token("today")),
    _rule(r"\byesterday\b", _token("yesterday")),
    _rule(r"\b(?:this|current)\s+week\b|\bweek[- ]to[- ]date\b|\bwtd\b", _token("this_week")),
    _rule(r"\b(?:last|previous|prior)\s+week\b", _token("last_week")),
    _rule(r"\b(?:this|current)\s+month\b|\bmonth[- ]to[- ]date\b|\bmtd\b", _token("this_month")),
    _rule(r"\b(?:last|previous|prior)\s+month\b", _token("last_month")),
    _rule(r"\b(?:this|current)\s+year\b|\byear[- ]to[- ]date\b|\bytd\b", _year(0)),
    _rule(r"\b(?:last|previous|prior)\s+year\b", _year(-1)),
    _rule(r"\b(?:this|current)\s+quarter\b|\bqtd\b", _quarter(0)),
    _rule(r"\b(?:last|previous|prior)\s+quarter\b", _quarter(-1)),
    _rule(r"\b(?:over\s+)?(?:the\s+|last\s+)?weekend\b", _weekend),
    _rule(r"\b(?:(?:in|during|for)\s+)?q(?P<q>[1-4])(?:\s+(?P<y>[0-9]{4}))?\b", _named_quarter),
)


def _period(text: str, now: datetime) -> PeriodEntity | None:
    """The period the message names; with several, the longest phrase (then the first)."""
    best: tuple[int, int, PeriodEntity] | None = None
    for pattern, rule in _PERIOD_RULES:
        for match in pattern.finditer(text):
            span = rule(match, now)
            if span is None:
                continue
            token, start, end = span
            # Keep the most recent MAX_PERIOD_DAYS of a longer span: the API allows no more.
            start = max(start, end - timedelta(days=MAX_PERIOD_DAYS))
            # A period that has not begun holds no usage: a typo, not a question.
            if end <= start or start >= to_date_end(now):
                continue
            rank = (-(match.end() - match.start()), match.start())
            if best is None or rank < best[:2]:
                phrase = match.group().strip()
                best = (*rank, PeriodEntity(start=start, end=end, phrase=phrase, token=token))
    return best[2] if best else None


# --- analysis ---------------------------------------------------------------------------


def _require_aware(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    return now.astimezone(UTC)


def _entities(
    text: str,
    now: datetime,
    known_models: Collection[str],
    known_features: Collection[str],
    known_providers: Collection[str],
) -> Entities:
    models = _models(text, _known(known_models))
    model_spans = [
        m.span() for m in _MODEL_RE.finditer(text) if len(m.group()) > len(m["fam"] or "")
    ]
    return Entities(
        period=_period(text, now),
        models=models,
        providers=_providers(text, known_providers, model_spans),
        features=_features(text, _known(known_features), model_spans),
        savings_target=_savings_target(text),
    )


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
    entities = _entities(text, now, known_models, known_features, known_providers)
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
