"""Request and response bodies of the public HTTP functions (DESIGN §2).

Requests forbid unknown fields, so a typo is a 422 naming the field rather than a silently
ignored option.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_serializer

from shared.models.dimensions import DIMENSIONS, Dimension
from shared.models.events import RunEvent, iso_utc
from shared.models.findings import Answer, Recommendation, UsageFilters
from shared.models.messages import ID_PATTERN
from shared.models.period import PeriodSpec
from shared.models.triage import WhatIfSpec

MAX_MESSAGE_CHARS = 8_000
RunStatus = Literal["queued", "running", "completed", "failed", "cancelled"]
TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})
Identifier = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
Content = Annotated[str, StringConstraints(min_length=1, max_length=MAX_MESSAGE_CHARS)]


class _Request(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Response(BaseModel):
    model_config = ConfigDict(frozen=True)


class ExecuteRequest(_Request):
    message: Content
    thread_id: Identifier | None = None
    wait: bool = True
    timeout_s: int = Field(default=30, ge=1, le=60)


class TriageRequest(_Request):
    message: Content


class DataRequest(_Request):
    period: PeriodSpec
    group_by: list[Dimension] = Field(
        default_factory=lambda: list(DIMENSIONS), min_length=1, max_length=len(DIMENSIONS)
    )
    filters: UsageFilters = Field(default_factory=UsageFilters)


class OptimizationRequest(_Request):
    period: PeriodSpec
    min_monthly_savings_usd: float = Field(default=0.0, ge=0.0, le=1e12)
    # What the period's tokens would have cost on another model (docs/prices.md).
    what_if: WhatIfSpec | None = None


class Rejected(_Response):
    index: int
    error: str


class IngestResponse(_Response):
    accepted: int
    rejected: list[Rejected]


class _Timestamped(_Response):
    @field_serializer("*", when_used="json")
    def _times(self, value: object) -> object:
        return iso_utc(value) if isinstance(value, datetime) else value


class RunView(_Timestamped):
    run_id: str
    thread_id: str
    status: RunStatus
    reason: str | None = None
    created_at: datetime
    updated_at: datetime


class RunResponse(_Response):
    run: RunView
    events: list[RunEvent]


class ExecuteAccepted(_Response):
    """202: the run did not finish within ``timeout_s`` (or ``wait`` was false)."""

    run_id: str
    thread_id: str
    status: RunStatus


class ExecuteResponse(ExecuteAccepted):
    """200: the run finished; its answer and every event."""

    answer: Answer | None
    events: list[RunEvent]
    reason: str | None = None


class ThreadSummary(_Timestamped):
    thread_id: str
    title: str
    updated_at: datetime


class ThreadList(_Response):
    threads: list[ThreadSummary]


class MessageView(_Timestamped):
    message_id: str
    role: Literal["user", "assistant"]
    text: str
    ts: datetime
    run_id: str | None = None
    # Assistant messages: the recommendations the answer was written from.
    recommendations: list[Recommendation] = Field(default_factory=list)


class ThreadView(_Response):
    thread: ThreadSummary
    messages: list[MessageView]
