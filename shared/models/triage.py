"""Triage results and routes: what the triage agent found and where the run goes next.

These models are the ``agents_triage`` response (``TriageResponse``) and the triage step's
``agent_completed`` result; field names are part of the API and stay stable.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.models.dimensions import Dimension
from shared.models.period import PeriodRange
from shared.models.usage import Name, ProviderId


class Intent(StrEnum):
    COST_ANALYSIS = "cost_analysis"
    OPTIMIZATION = "optimization"
    USAGE_QUESTION = "usage_question"
    ANOMALY = "anomaly"
    DATA_ONBOARDING = "data_onboarding"
    OTHER = "other"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PeriodEntity(PeriodRange):
    """A period named in the message: its resolved ``[start, end)`` and the words used.

    ``token`` is the equivalent API token (``last_7d``, ``last_week``...) when there is one.
    """

    phrase: str
    token: str | None = None


class ModelMention(_Frozen):
    """A model named in the message; ``known`` when it is one of the workspace's models."""

    name: str
    phrase: str
    known: bool


class ProviderMention(_Frozen):
    """A provider, by its price-table id (``openai``, ``aws``...) or the workspace's name."""

    name: str
    phrase: str
    known: bool


class FeatureMention(_Frozen):
    """A feature (the ``feature`` field of usage records) named in the message."""

    name: str
    phrase: str
    known: bool


class SavingsTarget(_Frozen):
    """What the user wants to save.

    ``percent``: cut spend by ``percent`` (0..100]. ``amount``: save ``amount_usd`` each
    ``per``. ``budget``: bring spend under ``amount_usd`` each ``per``. ``monthly_usd`` is the
    amount per 30-day month (a year is 12 months, a week 7 days, a day 1/30 of a month).
    """

    kind: Literal["percent", "amount", "budget"]
    phrase: str
    percent: float | None = None
    amount_usd: float | None = None
    per: Literal["day", "week", "month", "year"] | None = None
    monthly_usd: float | None = None


class WhatIfSpec(_Frozen):
    """What-if repricing (docs/prices.md): the period's measured tokens, the whole workspace's
    or ``feature``'s, at ``model``'s prices (``provider`` None: the price table infers it)."""

    model: Name
    provider: ProviderId | None = None
    feature: Name | None = None


class WhatIfMention(WhatIfSpec):
    """A what-if question ("what would summarize have cost on claude-3-5-haiku?")."""

    phrase: str


# A measure the message asks about by name ("p95 latency", "how many tokens", "error rate").
Metric = Literal["cost", "requests", "tokens", "latency", "errors", "cache"]
# What an entity kind is called in ``Entities.inherited``.
Inheritable = Literal[
    "intent",
    "period",
    "models",
    "providers",
    "features",
    "savings_target",
    "group_by",
    "metrics",
    "what_if",
]


class FindingRef(_Frozen):
    """A reference to a finding of the thread's earlier answer ("#2", "the second one",
    "why?" after an anomaly, "how?" after a recommendation).

    ``ranks``: the 1-based positions in that answer's list of ``kind`` the words match; one
    is a resolved reference, two or more an ambiguous one (the answer asks which), none a
    reference to something the earlier answer did not have. ``asks`` is what the message
    wants of it: the evidence (``why``), the steps (``how``) or both (``more``).
    """

    kind: Literal["recommendation", "anomaly"]
    ranks: list[int]
    # How many the earlier answer listed (0: it had none of this kind).
    listed: int = Field(ge=0)
    phrase: str
    asks: Literal["why", "how", "more"]


class Entities(_Frozen):
    period: PeriodEntity | None = None
    models: list[ModelMention] = Field(default_factory=list)
    providers: list[ProviderMention] = Field(default_factory=list)
    features: list[FeatureMention] = Field(default_factory=list)
    savings_target: SavingsTarget | None = None
    # Breakdowns the message asks for by name ("by user", "which models", "daily").
    group_by: list[Dimension] = Field(default_factory=list)
    # Measures the message names, in the order it names them (the answer's first sentence).
    metrics: list[Metric] = Field(default_factory=list)
    # Every intent the message asks, in the order it asks them ("what did we spend, and where
    # can we save?" is cost_analysis then optimization); when triage is not sure what is
    # meant (route answer ``clarify``), the two best readings, best first.
    intents: list[Intent] = Field(default_factory=list)
    # An earlier answer's finding the message refers to (only with a thread's context).
    reference: FindingRef | None = None
    # A what-if question: what the usage would have cost on another model.
    what_if: WhatIfMention | None = None
    # What was carried over from the thread's previous run (DESIGN §13); empty without one.
    inherited: list[Inheritable] = Field(default_factory=list)


class MatchedCue(_Frozen):
    """One lexicon cue that fired: the intent it votes for, its weight and the text."""

    intent: Intent
    cue: str
    weight: float
    phrase: str


class Correction(_Frozen):
    """A misspelled word read as the word it is one edit from ("spnd" as "spend")."""

    word: str
    read_as: str


class TriageResult(_Frozen):
    """The analysis of one message. ``scores`` holds every intent's summed cue weight.

    ``clarify``: the message asks nothing clearly (no cue weighs enough, and no thread
    context settles it) or refers to several earlier findings at once: the answer asks
    which it means (``entities.intents`` or ``entities.reference.ranks`` are the readings).
    """

    intent: Intent
    confidence: float = Field(ge=0.0, le=1.0)
    entities: Entities
    matched_cues: list[MatchedCue]
    scores: dict[Intent, float]
    clarify: bool = False
    corrections: list[Correction] = Field(default_factory=list)


Agent = Literal["data", "optimization"]
AnswerKind = Literal["findings", "onboarding", "help", "reference", "clarify"]


class Route(_Frozen):
    """Where the run goes after triage.

    ``agents``: the agents to run, in order. ``answer``: ``findings`` (written from what the
    agents found), ``onboarding`` (how to send usage data), ``help`` (what Apex can do),
    ``reference`` (from a finding of the thread's earlier answer) or ``clarify`` (triage is
    not sure what is meant: the answer asks, with the two best readings).
    ``data_sufficient``: whether the workspace has usage data to answer from.
    """

    agents: list[Agent]
    answer: AnswerKind
    data_sufficient: bool
    reason: str


class TriageResponse(_Frozen):
    """The ``agents_triage`` response body: ``{intent, confidence, entities, route}``."""

    intent: Intent
    confidence: float = Field(ge=0.0, le=1.0)
    entities: Entities
    route: Route

    @classmethod
    def build(cls, result: TriageResult, route: Route) -> TriageResponse:
        return cls(
            intent=result.intent,
            confidence=result.confidence,
            entities=result.entities,
            route=route,
        )
