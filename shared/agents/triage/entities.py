"""Entities in a chat message: models, providers, features, a savings target, a period,
the breakdowns asked for.

Pure: no I/O and no clock. The workspace's own names (``known_*``) are matched first, so
mentions come back with the workspace's spelling.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Final, Literal

from shared.agents.triage.periods import find_period
from shared.models.dimensions import Dimension
from shared.models.period import (
    DAYS_PER_MONTH,
)
from shared.models.triage import (
    Entities,
    FeatureMention,
    ModelMention,
    ProviderMention,
    SavingsTarget,
    WhatIfMention,
)

_I: Final = re.IGNORECASE


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
        taken.append(match.span())
        phrase = match.group()
        family = (match.group("fam") or "").lower()
        if family and phrase.lower() == family and family not in _BARE_FAMILIES:
            continue
        for mention in _resolve_model(phrase, known):
            found.setdefault(mention.name, mention)
    for match in _ALIAS_RE.finditer(text):
        if _overlaps(match.span(), taken):
            continue
        for mention in _resolve_alias(match, known):
            found.setdefault(mention.name, mention)
    return list(found.values())


# Models named without their family: "4o", "4o mini", "sonnet", "haiku 4.5", "flash".
_ALIAS_RE: Final = re.compile(
    r"(?<![\w.-])(?:(?P<short>[0-9](?:\.[0-9])?o)(?:[-_ ](?P<mini>mini))?|"
    r"(?P<variant>sonnet|opus|haiku|flash)(?:[-_ ]?(?P<ver>[0-9](?:[.-][0-9])?)(?![0-9]))?)"
    r"(?![\w-]|\.\w)",
    _I,
)


def _resolve_alias(match: re.Match[str], known: _NameMatcher | None) -> list[ModelMention]:
    """The workspace's models an alias names: "4o" is gpt-4o (not gpt-4o-mini: the fewest
    other parts wins), "sonnet" every Sonnet it has; an alias it has none of is a model only
    when unmistakable ("4o" is gpt-4o)."""
    phrase = match.group()
    short = match["short"]
    wanted = _CHUNK.findall(phrase.lower())
    if known is not None:
        matches: list[tuple[int, str]] = []
        for name in known.by_key.values():
            chunks = _CHUNK.findall(_DATE_SUFFIX.sub("", name).lower())
            if all(chunks.count(c) >= wanted.count(c) for c in set(wanted)):
                matches.append((len(chunks) - len(wanted), name))
        if matches:
            if short is not None or match["ver"] is not None:
                fewest = min(extra for extra, _ in matches)
                matches = [m for m in matches if m[0] == fewest]
            return [ModelMention(name=n, phrase=phrase, known=True) for _, n in sorted(matches)]
    if short is not None:
        return [ModelMention(name=normalize_model(f"gpt-{phrase}"), phrase=phrase, known=False)]
    return []


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
    if not matches and not bare:
        # "claude sonnet" names the workspace's claude-sonnet-4-6: every part of the phrase
        # is a part of the model's name.
        wanted = _CHUNK.findall(name)
        matches = [
            known_name
            for known_name in known.by_key.values()
            if set(wanted) <= set(_CHUNK.findall(_DATE_SUFFIX.sub("", known_name).lower()))
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


# Endings dropped so that "summarizer", "summaries", "summarise" all read as "summar".
_SUFFIXES: Final = (
    "izations",
    "isations",
    "ications",
    "ization",
    "isation",
    "ication",
    "izers",
    "isers",
    "izer",
    "iser",
    "izing",
    "ising",
    "ized",
    "ised",
    "ize",
    "ise",
    "ations",
    "ation",
    "ions",
    "ion",
    "iers",
    "ier",
    "ies",
    "ers",
    "er",
    "ings",
    "ing",
    "ors",
    "or",
    "ed",
    "es",
    "s",
    "e",
    "y",
)
_WORDS: Final = re.compile(r"[a-z][a-z0-9]*|[A-Z][a-z0-9]+|[A-Z]+(?![a-z])")
_WORD_IN_TEXT: Final = re.compile(r"[A-Za-z][A-Za-z0-9]*")
# Words too common to name a feature by themselves ("the chat", "our agent").
_GENERIC_STEMS: Final = frozenset(
    [
        "agent",
        "ai",
        "answ",
        "api",
        "app",
        "assist",
        "assistant",
        "batch",
        "bot",
        "cach",
        "call",
        "chat",
        "code",
        "cost",
        "data",
        "default",
        "email",
        "error",
        "feature",
        "flow",
        "job",
        "llm",
        "main",
        "model",
        "new",
        "old",
        "one",
        "pipelin",
        "prod",
        "prompt",
        "request",
        "respons",
        "review",
        "search",
        "servic",
        "spend",
        "support",
        "system",
        "tag",
        "task",
        "test",
        "thread",
        "ticket",
        "token",
        "tool",
        "user",
        "v1",
        "v2",
        "work",
    ]
)
_DETERMINER: Final = frozenset({"the", "our", "my", "that", "this", "their", "your"})
_AGENTIVE: Final = re.compile(r"(?:er|or|ers|ors)$")


@lru_cache(maxsize=8192)
def stem(word: str) -> str:
    """A word without its ending: "summarizer" -> "summar", "tagging" -> "tag"."""
    word = word.lower()
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiou":
        word = word[:-1]  # "tagg" -> "tag"
    return word


@dataclass(frozen=True, slots=True)
class _LooseFeatures:
    """Each known feature's word stems ("summarize_thread" -> summar, thread)."""

    stems: dict[str, tuple[str, ...]]
    by_stem: dict[str, tuple[str, ...]]


@lru_cache(maxsize=256)
def _loose(names: tuple[str, ...]) -> _LooseFeatures:
    stems: dict[str, tuple[str, ...]] = {}
    by_stem: dict[str, list[str]] = {}
    for name in names:
        parts = tuple(stem(w) for w in _WORDS.findall(name) if len(w) >= 2)
        if not parts:
            continue
        stems[name] = parts
        for part in set(parts):
            by_stem.setdefault(part, []).append(name)
    return _LooseFeatures(stems, {k: tuple(v) for k, v in by_stem.items()})


def _loose_features(
    text: str, names: Collection[str], taken: list[tuple[int, int]]
) -> list[tuple[str, str, tuple[int, int]]]:
    """Known features named loosely: "the summarizer" (summarize), "the ticket classifier"
    (classify_ticket), "research agent" (research_agent). Every word of the feature's name,
    in any order and with any ending; or one distinctive word of it after "the"/"our" or as
    an agent noun ("summarizer"), when only one feature has it. An exact word form of a
    one-word feature wins over a partial match of a longer one."""
    if not names:
        return []
    loose = _loose(tuple(sorted(names)))
    words = [
        (m.group(), stem(m.group()), m.span())
        for m in _WORD_IN_TEXT.finditer(text)
        if not _overlaps(m.span(), taken)
    ]
    found: dict[str, tuple[str, tuple[int, int]]] = {}
    for index, (word, word_stem, span) in enumerate(words):
        candidates = loose.by_stem.get(word_stem)
        if not candidates:
            continue
        before = words[index - 1][0].lower() if index else ""
        after = words[index + 1][0].lower() if index + 1 < len(words) else ""
        # "the summarizer", "our classifier": a name; "a summary of costs": not one.
        named = (before in _DETERMINER or _AGENTIVE.search(word.lower()) is not None) and (
            after not in ("of", "for")
        )
        nearby = words[max(0, index - 3) : index + 4]
        stems_near = {w[1] for w in nearby}
        full = [
            name
            for name in candidates
            if set(loose.stems[name]) <= stems_near and (len(loose.stems[name]) > 1 or named)
        ]
        if full:
            best = max(full, key=lambda n: len(loose.stems[n]))
            used = [w for w in nearby if w[1] in loose.stems[best]]
            where = (used[0][2][0], used[-1][2][1])
            found.setdefault(best, (text[where[0] : where[1]], where))
            continue
        if (
            len(candidates) == 1
            and named
            and word_stem not in _GENERIC_STEMS
            and len(word_stem) >= 3
        ):
            found.setdefault(candidates[0], (f"{before} {word}".strip(), span))
    return [(name, phrase, span) for name, (phrase, span) in found.items()]


def _features(
    text: str,
    known: _NameMatcher | None,
    model_spans: list[tuple[int, int]],
    known_names: Collection[str] = (),
) -> list[FeatureMention]:
    found: dict[str, FeatureMention] = {}

    def add(name: str, phrase: str) -> None:
        known_name = known.by_key.get(_key(name)) if known else None
        if known_name is not None:
            found.setdefault(known_name, FeatureMention(name=known_name, phrase=phrase, known=True))
        elif name.lower() not in _NOT_FEATURES and _key(name):
            found.setdefault(name, FeatureMention(name=name, phrase=phrase, known=False))

    taken = list(model_spans)
    for name, phrase, span in _find_known(text, known):
        if not _overlaps(span, model_spans):
            add(name, phrase)
            taken.append(span)
    for match in _BACKTICKED.finditer(text):
        inner = match.group(1).strip()
        if not _MODEL_RE.fullmatch(inner):
            add(inner, match.group())
    loose = _loose_features(text, known_names, taken)
    taken += [span for _, _, span in loose]
    for pattern in (_FEATURE_AFTER, _FEATURE_BEFORE):
        for match in pattern.finditer(text):
            if not _overlaps(match.span(1), taken):
                add(match.group(1).rstrip(".-"), match.group().strip())
    for name, phrase, _ in loose:
        add(name, phrase)
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


# A breakdown named: "by model", "which features", "per provider", "daily", "who", "users".
_GROUP_BY: Final[dict[Dimension, re.Pattern[str]]] = {
    "model": re.compile(r"\b(?:by|per|each|every|which|top|across)\s+(?:llm\s+)?models?\b", _I),
    "provider": re.compile(
        r"\b(?:by|per|each|every|which|top|across)\s+(?:providers?|vendors?)\b", _I
    ),
    "feature": re.compile(r"\b(?:by|per|each|every|which|top|across)\s+features?\b", _I),
    "user": re.compile(r"\b(?:end[- ]?users?|users?|customers?|who)\b", _I),
    "day": re.compile(
        r"\b(?:by|per|each|every|which)\s+days?\b|\b(?:daily|day[- ]by[- ]day)\b", _I
    ),
}


def _group_by(text: str) -> list[Dimension]:
    return [dimension for dimension, pattern in _GROUP_BY.items() if pattern.search(text)]


# --- what-if ----------------------------------------------------------------------------

# A question about what the usage would have cost on another model: the target is the first
# model named after the cue's preposition ("on", "with", "using", "switched to"...).
_SWITCHED: Final = (
    r"(?:switched|switch|switching|moved|move|moving|migrated|migrate|changed|change|went|go|"
    r"ported|port)"
)
_WHAT_IF_CUES: Final = tuple(
    re.compile(pattern, _I)
    for pattern in (
        r"\bwhat\s+(?:would|will|might|could)\b.{0,120}?\b(?:have\s+)?(?:cost|costs|been|be)\b"
        r".{0,40}?(?P<to>\b(?:on|with|using|via|in|at)\b|\bif\s+(?:we|i|it|they)\s+(?:had\s+)?"
        r"(?:used|use|switched\s+to|moved\s+to|ran\s+on|run\s+on|been\s+on)\b)",
        r"\bhow\s+much\s+would\b.{0,120}?\b(?:cost|be)\b.{0,40}?(?P<to>\b(?:on|with|using|via)\b)",
        r"\bwhat\s+if\s+(?:we|i|it|they)\s+(?:had\s+)?(?:used|use)\b(?P<to>)",
        r"\bwhat\s+if\b.{0,60}?\b(?:switched|switch|moved|move|ran|run|been|were|was)\b"
        r".{0,60}?(?P<to>\b(?:to|on|with)\b)",
        r"\bif\s+(?:we|i)\s+had\s+(?:used|run\b.{0,60}?\bon|switched\b.{0,60}?\bto)(?P<to>)",
        r"\b(?:cost|reprice[ds]?|priced?)\b.{0,80}?(?P<to>\bat\b)(?:[^.?!]|\.(?=\w)){0,60}?'?s?\s+prices\b",
        # "what would happen if we moved summarize to gpt-4o-mini?", "... if we used haiku?"
        r"\bwhat\s+(?:would|will|could|might)\s+happen\s+if\b.{0,60}?\b" + _SWITCHED + r"\b"
        r".{0,60}?(?P<to>\b(?:to|onto|on|with)\b)",
        r"\bwhat\s+(?:would|will|could|might)\s+happen\s+if\s+(?:we|i|it|they)\s+(?:had\s+)?"
        r"(?:used|use)\b(?P<to>)",
    )
)
# A conditional switch asks a what-if when the message is about money ("if we switched to
# haiku how much would we save?"); alone ("if we move to haiku, will quality drop?") not.
_WHAT_IF_SWITCH: Final = re.compile(
    r"\bif\s+(?:we|i|it|they)\s+(?:had\s+)?(?:" + _SWITCHED + r"\b.{0,60}?(?P<to>\b(?:to|onto)\b)"
    r"|(?:used|use)\b(?P<use>))",
    _I,
)
_MONEY_WORDS: Final = re.compile(
    r"\b(?:cost|costs|costed|save|saved|saving|savings|spend|spent|bill|billed|pay|paid|"
    r"cheaper|pricier|expensive|price|prices|difference)\b",
    _I,
)


def _name_at(text: str, phrase: str, after: int) -> int:
    """Where ``phrase`` is named as a whole name at or after ``after`` (-1: not)."""
    found = re.compile(rf"(?<![\w.-]){re.escape(phrase)}(?![\w-])", _I).search(text, after)
    return -1 if found is None else found.start()


def _what_if(
    text: str,
    models: list[ModelMention],
    features: list[FeatureMention],
    providers: list[ProviderMention],
) -> WhatIfMention | None:
    matches = [cue.search(text) for cue in _WHAT_IF_CUES]
    if _MONEY_WORDS.search(text):
        matches.append(_WHAT_IF_SWITCH.search(text))
    for match in matches:
        if match is None:
            continue
        after = match.end("to") if match.start("to") >= 0 else match.end("use")
        # The target: the model named first after the preposition.
        placed = [(_name_at(text, m.phrase, after), m) for m in models]
        # The earliest; of two names at one place ("gpt-4o" in "gpt-4o-mini"), the longer.
        found = sorted(
            ((at, m) for at, m in placed if at >= 0), key=lambda f: (f[0], -len(f[1].phrase))
        )
        if not found:
            continue
        at, target = found[0]
        # A provider named right with the target ("on anthropic's claude-3-5-haiku").
        provider = next(
            (
                p.name
                for p in providers
                if after <= text.lower().find(p.phrase.lower(), after) < at + len(target.phrase)
            ),
            None,
        )
        feature = features[0].name if len(features) == 1 else None
        return WhatIfMention(
            model=target.name,
            provider=provider,
            feature=feature,
            phrase=text[match.start() : at + len(target.phrase)].strip(),
        )
    return None


def extract_entities(
    text: str,
    now: datetime,
    known_models: Collection[str],
    known_features: Collection[str],
    known_providers: Collection[str],
) -> Entities:
    models = _models(text, _known(known_models))
    model_spans = [
        m.span() for m in _MODEL_RE.finditer(text) if len(m.group()) > len(m["fam"] or "")
    ] + [m.span() for m in _ALIAS_RE.finditer(text)]
    providers = _providers(text, known_providers, model_spans)
    features = _features(text, _known(known_features), model_spans, known_features)
    return Entities(
        period=find_period(text, now),
        models=models,
        providers=providers,
        features=features,
        savings_target=_savings_target(text),
        group_by=_group_by(text),
        what_if=_what_if(text, models, features, providers),
    )
