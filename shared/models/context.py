"""A thread's context (DESIGN §13): what its latest run was asked and found, kept so that
the next message can be read as a follow-up ("and last week?") or as a question about an
earlier answer ("#2", "why?").

The final step of every completed run writes it (``RunStore.save_context_in``, with the
answer, in one unit of work); the triage step of the thread's next run reads it
(``RunStore.thread_context``). A run that found nothing new (help, a clarifying question, an
answer from an earlier finding, a data-only answer after recommendations) carries the
earlier findings forward, so "#2" keeps meaning what the thread last listed.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from shared.models.findings import Anomaly, DriverDay, Recommendation
from shared.models.period import PeriodRange
from shared.models.triage import AnswerKind, Entities, FindingRef, Intent


class ThreadContext(BaseModel):
    """The thread's latest completed run (``run_id``) and the question a follow-up continues
    (``question``, its triage after inheritance: the latest run's own, or the one before it
    when that run was small talk or about the earlier answer), the findings a follow-up may
    refer to, and ``focus``, the finding the latest answer was about, if any."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: str
    question: str
    intent: Intent
    confidence: float = Field(ge=0.0, le=1.0)
    entities: Entities
    answer: AnswerKind
    # The ranked recommendations of the latest answer that had them, and its period.
    recommendations: list[Recommendation] = Field(default_factory=list)
    recommendations_period: PeriodRange | None = None
    # The anomalies of the latest answer that measured usage, with each driver's day.
    anomalies: list[Anomaly] = Field(default_factory=list)
    driver_days: list[DriverDay] = Field(default_factory=list)
    anomalies_period: PeriodRange | None = None
    focus: FindingRef | None = None

    @property
    def has_findings(self) -> bool:
        return bool(self.recommendations or self.anomalies)
