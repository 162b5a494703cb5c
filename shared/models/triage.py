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


class Entities(_Frozen):
    period: PeriodEntity | None = None
    models: list[ModelMention] = Field(default_factory=list)
    providers: list[ProviderMention] = Field(default_factory=list)
    features: list[FeatureMention] = Field(default_factory=list)
    savings_target: SavingsTarget | None = None
    # Breakdowns the message asks for by name ("by user", "which models", "daily").
    group_by: list[Dimension] = Field(default_factory=list)


class MatchedCue(_Frozen):
    """One lexicon cue that fired: the intent it votes for, its weight and the text."""

    intent: Intent
    cue: str
    weight: float
    phrase: str


class TriageResult(_Frozen):
    """The analysis of one message. ``scores`` holds every intent's summed cue weight."""

    intent: Intent
    confidence: float = Field(ge=0.0, le=1.0)
    entities: Entities
    matched_cues: list[MatchedCue]
    scores: dict[Intent, float]


Agent = Literal["data", "optimization"]
AnswerKind = Literal["findings", "onboarding", "help"]


class Route(_Frozen):
    """Where the run goes after triage.

    ``agents``: the agents to run, in order. ``answer``: ``findings`` (written from what the
    agents found), ``onboarding`` (how to send usage data) or ``help`` (what Apex can do).
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
