"""The thread context a run leaves behind, what the triage step shows of the one it reads,
and the earlier findings a reference names (DESIGN §13).

Pure: the pipeline reads and writes the context through the run store.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shared.models.context import ThreadContext
from shared.models.findings import (
    DataReport,
    DriverDay,
    OptimizationReport,
    ReferencedFinding,
)
from shared.models.triage import TriageResponse


def next_context(
    previous: ThreadContext | None,
    *,
    run_id: str,
    question: str,
    triaged: TriageResponse,
    data: DataReport | None,
    optimization: OptimizationReport | None,
    driver_days: Sequence[DriverDay] = (),
) -> ThreadContext:
    """The context after this run: its triage (the previous one's, if this run was small
    talk, how to send data, or about the earlier answer's findings), its own findings, and
    the previous findings it did not replace."""
    answer = triaged.route.answer
    if answer in ("help", "onboarding") and previous is not None:
        return previous.model_copy(update={"run_id": run_id})
    reference = triaged.entities.reference
    focus = None
    if answer == "reference" and reference is not None and len(reference.ranks) == 1:
        focus = reference
    elif data is None and optimization is None and previous is not None:
        focus = previous.focus
    update: dict[str, Any] = {}
    if optimization is not None:
        update["recommendations"] = optimization.recommendations
        update["recommendations_period"] = optimization.period
    if data is not None:
        update["anomalies"] = data.anomalies
        update["driver_days"] = list(driver_days)
        update["anomalies_period"] = data.period
    base = previous or ThreadContext(
        run_id=run_id,
        question=question,
        intent=triaged.intent,
        confidence=triaged.confidence,
        entities=triaged.entities,
        answer=answer,
    )
    if reference is not None and previous is not None:
        # A question about the earlier answer: a later follow-up ("and last week?") still
        # continues the question that answer was to, with the finding now in focus.
        return previous.model_copy(update={"run_id": run_id, "focus": focus})
    return base.model_copy(
        update={
            **update,
            "run_id": run_id,
            "question": question,
            "intent": triaged.intent,
            "confidence": triaged.confidence,
            "entities": triaged.entities,
            "answer": answer,
            "focus": focus,
        }
    )


def referenced(context: ThreadContext | None, triaged: TriageResponse) -> list[ReferencedFinding]:
    """The earlier findings the question refers to (none, one, or the several it may mean)."""
    reference = triaged.entities.reference
    if context is None or reference is None:
        return []
    found = []
    for rank in reference.ranks:
        if reference.kind == "recommendation":
            found.append(
                ReferencedFinding(
                    kind="recommendation",
                    rank=rank,
                    of=len(context.recommendations),
                    asks=reference.asks,
                    period=context.recommendations_period,
                    recommendation=context.recommendations[rank - 1],
                )
            )
        else:
            anomaly = context.anomalies[rank - 1]
            driver_day = next((d for d in context.driver_days if d.day == anomaly.day), None)
            found.append(
                ReferencedFinding(
                    kind="anomaly",
                    rank=rank,
                    of=len(context.anomalies),
                    asks=reference.asks,
                    period=context.anomalies_period,
                    anomaly=anomaly,
                    driver_day=driver_day,
                )
            )
    return found


def shown(context: ThreadContext | None) -> dict[str, Any]:
    """What the triage step's ``read_thread_context`` tool shows of the context it read."""
    if context is None:
        return {"found": False}
    entities = context.entities
    return {
        "found": True,
        "run_id": context.run_id,
        "question": context.question,
        "intent": context.intent.value,
        "intents": [i.value for i in entities.intents],
        "period": entities.period.model_dump(mode="json") if entities.period else None,
        "models": [m.name for m in entities.models],
        "features": [f.name for f in entities.features],
        "providers": [p.name for p in entities.providers],
        "recommendations": [r.title for r in context.recommendations],
        "anomalies": [a.day for a in context.anomalies],
        "focus": context.focus.model_dump(mode="json") if context.focus else None,
    }
