"""What the data and optimization agents find: the ``agents_data`` and ``agents_optimization``
response bodies, the results of their ``agent_completed`` events, and the input of the
answer writers. Field names are part of the API (DESIGN §2, §8) and stay stable.

Money is in USD as floats rounded to the cent for display fields (``*_usd``); the agents
compute in exact integers (1e-9 USD) or ``Decimal`` and round only here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.models.dimensions import Dimension
from shared.models.period import PeriodRange
from shared.models.recommendations import RecommendationKind
from shared.models.triage import TriageResponse, WhatIfSpec

# The key of a breakdown row for calls that named no feature or no end user.
NONE_KEY = "(none)"

EvidenceValue = float | int | str

# What a saving rests on (DESIGN §8, "What a recommendation may claim"): ``measured`` when
# every number it is computed from is in the records; ``upper_bound`` when it assumes what
# the records cannot show (that a prompt prefix is shared, how long it is): the most the
# change would save.
Basis = Literal["measured", "upper_bound"]
# An upper bound's confidence never reaches a measured one's: it is capped here, below the
# lowest confidence a measured kind starts from (``shared.usage.recommend.BASE_CONFIDENCE``).
UPPER_BOUND_MAX_CONFIDENCE = 0.4


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class UsageTotals(_Frozen):
    """Spend, requests, tokens, latency and errors of a set of calls."""

    requests: int = Field(ge=0)
    errors: int = Field(ge=0)
    error_rate: float = Field(ge=0.0, le=1.0)
    input_tokens: int = Field(ge=0)
    cached_input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)
    cost_usd: float = Field(ge=0.0)
    # Calls of models the price table does not know: counted, never priced at 0.
    unpriced_requests: int = Field(ge=0)
    # From the rollups' fixed-bucket histograms; None when no call reported a latency.
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None


class BreakdownRow(UsageTotals):
    """The totals of one value of a dimension (``key``: a model, a day, ``(none)``...)."""

    key: str
    share_of_cost: float = Field(ge=0.0, le=1.0)


class Trend(_Frozen):
    """This period against the one of equal length before it."""

    previous_period: PeriodRange
    previous_cost_usd: float = Field(ge=0.0)
    cost_change_usd: float
    # None when the previous period had no spend (a change from zero has no percentage).
    cost_change_pct: float | None
    previous_requests: int = Field(ge=0)
    requests_change_pct: float | None


class AnomalyDriver(_Frozen):
    """The (provider, model, feature) whose cost rose the most on the anomalous day."""

    provider: str
    model: str
    feature: str | None
    cost_usd: float = Field(ge=0.0)
    rolling_median_usd: float = Field(ge=0.0)
    increase_usd: float


class Anomaly(_Frozen):
    """A day whose cost is far above the rolling median of the days before it."""

    day: str
    cost_usd: float = Field(ge=0.0)
    rolling_median_usd: float = Field(ge=0.0)
    ratio: float
    driver: AnomalyDriver


class UnknownModel(_Frozen):
    """A model the price table does not know: reported, never priced at zero."""

    provider: str
    model: str
    requests: int = Field(ge=0)


# Which prices a report's costs are at: the price table's, or the workspace's own
# (``PUT /{ws}/prices``: the answer says "at your prices"; docs/prices.md).
PricesBasis = Literal["list", "workspace"]


class DataReport(_Frozen):
    """The ``agents_data`` response: ``{period, totals, breakdown, trend, anomalies}``."""

    period: PeriodRange
    totals: UsageTotals
    breakdown: dict[Dimension, list[BreakdownRow]]
    trend: Trend
    anomalies: list[Anomaly]
    unknown_models: list[UnknownModel] = Field(default_factory=list)
    prices: PricesBasis = "list"


class ModelTarget(_Frozen):
    """A model a cheaper-model recommendation proposes, priced on the measured tokens."""

    model: str
    # Its capability tier in ``shared/model_tiers.yaml`` (None: a deprecated model's
    # replacement the list does not classify).
    tier: Literal["small", "medium", "large"] | None
    monthly_savings_usd: float = Field(ge=0.0)
    input_usd_per_mtok: float = Field(ge=0.0)
    cached_input_usd_per_mtok: float = Field(ge=0.0)
    output_usd_per_mtok: float = Field(ge=0.0)
    # What the period's calls would have cost on it.
    period_cost_usd: float = Field(ge=0.0)


class Recommendation(_Frozen):
    """One priced recommendation (DESIGN §8): what to change, what it saves, and why."""

    kind: RecommendationKind
    title: str
    detail: str
    monthly_savings_usd: float = Field(ge=0.0)
    confidence: float = Field(ge=0.0, le=1.0)
    # The numbers behind the savings (token sums, shares, prices per million tokens...).
    evidence: dict[str, EvidenceValue]
    steps: list[str] = Field(min_length=1)
    provider: str
    model: str
    feature: str | None
    # The model to move to (cheaper_model, deprecated_model); None for the other kinds.
    target_model: str | None = None
    # Whether the saving is measured or an upper bound; the confidence follows from it.
    basis: Basis
    # Every model proposed, best first (``target_model`` is the first; the saving shown and
    # counted in the total is the first's); empty for kinds that propose no model.
    targets: list[ModelTarget] = Field(default_factory=list, max_length=2)

    @model_validator(mode="after")
    def _consistent(self) -> Recommendation:
        if self.basis == "upper_bound" and self.confidence > UPPER_BOUND_MAX_CONFIDENCE:
            raise ValueError(f"an upper bound's confidence is at most {UPPER_BOUND_MAX_CONFIDENCE}")
        if self.targets and self.targets[0].model != self.target_model:
            raise ValueError("target_model must be the first of targets")
        return self


class WhatIfSource(_Frozen):
    """One model the period's calls ran on, and what its tokens would cost on the target."""

    provider: str
    model: str
    requests: int = Field(ge=0)
    input_tokens: int = Field(ge=0)
    cached_input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)
    # Calls whose current cost is unknown (a model neither the table nor the workspace
    # prices): their tokens are in the what-if cost, not in the current one.
    unpriced_requests: int = Field(ge=0)
    current_cost_usd: float = Field(ge=0.0)
    what_if_cost_usd: float = Field(ge=0.0)
    difference_usd: float


class WhatIf(_Frozen):
    """What the period's measured tokens (the workspace's, or one feature's) would have cost
    on another model: each call's tokens at the target's prices of its day (batch tokens at
    its batch prices). Token counts differ between model families: ``caveat`` says so."""

    provider: str
    model: str
    feature: str | None
    input_usd_per_mtok: float = Field(ge=0.0)
    cached_input_usd_per_mtok: float = Field(ge=0.0)
    output_usd_per_mtok: float = Field(ge=0.0)
    requests: int = Field(ge=0)
    current_cost_usd: float = Field(ge=0.0)
    what_if_cost_usd: float = Field(ge=0.0)
    # what-if minus current: negative is a saving.
    difference_usd: float
    difference_pct: float | None
    sources: list[WhatIfSource]
    prices: PricesBasis
    caveat: str


class OptimizationReport(_Frozen):
    """The ``agents_optimization`` response: ranked recommendations and their total."""

    period: PeriodRange
    recommendations: list[Recommendation]
    total_monthly_savings_usd: float = Field(ge=0.0)
    unknown_models: list[UnknownModel] = Field(default_factory=list)
    prices: PricesBasis = "list"
    # Only when the request asked (``what_if``).
    what_if: WhatIf | None = None
    # A chat what-if whose target neither the table nor the workspace prices (the function
    # answers 422 instead): the answer says so.
    what_if_unpriced: WhatIfSpec | None = None


class UsageFilters(_Frozen):
    """Restricts a data query to some models, providers, features or end users (``None``: all).

    ``users`` applies to the per-user rollups only (they carry no model or feature), so it
    cannot be combined with the other filters.
    """

    models: list[str] | None = Field(default=None, min_length=1, max_length=50)
    providers: list[str] | None = Field(default=None, min_length=1, max_length=20)
    features: list[str] | None = Field(default=None, min_length=1, max_length=50)
    users: list[str] | None = Field(default=None, min_length=1, max_length=50)


class Answer(_Frozen):
    """The assistant's answer: the text the user reads and the recommendations behind it."""

    text: str = Field(min_length=1)
    recommendations: list[Recommendation] = Field(default_factory=list)


class DriverDay(_Frozen):
    """An anomaly's driver on its day against the days before it (DESIGN §13: "why?"):
    whether it made more calls, sent longer prompts, wrote longer answers or failed more.

    ``before`` sums the ``days_before`` days before ``day``; the ``*_per_day_before`` fields
    are those sums per day, the ``*_per_request`` fields divide tokens by requests.
    """

    day: str
    provider: str
    model: str
    feature: str | None
    that_day: UsageTotals
    days_before: int = Field(ge=1)
    before: UsageTotals
    requests_per_day_before: float = Field(ge=0.0)
    cost_per_day_before_usd: float = Field(ge=0.0)
    input_tokens_per_request: float | None
    input_tokens_per_request_before: float | None
    output_tokens_per_request: float | None
    output_tokens_per_request_before: float | None


class ReferencedFinding(_Frozen):
    """A finding of the thread's earlier answer that the question refers to: the
    ``rank``-th of the ``of`` recommendations or anomalies that answer listed, what is asked
    of it (``why``: its evidence or driver; ``how``: its steps; ``more``: both), and the
    period the earlier answer covered."""

    kind: Literal["recommendation", "anomaly"]
    rank: int = Field(ge=1)
    of: int = Field(ge=1)
    asks: Literal["why", "how", "more"]
    period: PeriodRange | None = None
    recommendation: Recommendation | None = None
    anomaly: Anomaly | None = None
    driver_day: DriverDay | None = None


class Findings(_Frozen):
    """Everything an answer may be written from: the question and what the agents found,
    or, for a question about an earlier answer, that answer's findings it refers to (one:
    answered from it; several: the answer asks which)."""

    question: str
    triage: TriageResponse
    data: DataReport | None = None
    optimization: OptimizationReport | None = None
    references: list[ReferencedFinding] = Field(default_factory=list)
