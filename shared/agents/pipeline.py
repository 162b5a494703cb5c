"""The step runner: triage → data → optimization, one claimed, atomic step per delivery.

Each delivery of a ``StepRequested`` either commits its step (claim + events + run fields in
one unit of work, see ``RunStore.commit_in``) or finds it committed and only finishes what was left
after the commit (publishing the events and the hand-off). So a duplicate changes nothing,
a delivery that died is finished by the redelivery, and a step that keeps failing reaches
the dead-letter topic, where ``dead_letter`` marks the run failed with the reason.

Each step is one function returning its agent's typed report (``Pipeline._triage``,
``_data``, ``_optimization``), dispatched by a ``match`` on the step's name that mypy checks
covers every ``Step``; the claim stores the report as JSON, and the answer is written from
the reports when the route ends.

One run per thread: the triage step takes the thread's lock (a create-if-absent document);
a run that cannot is left ``queued`` and is started by the run ahead of it when that one
ends (``_hand_off``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, assert_never

from pydantic import BaseModel, ConfigDict

from shared.agents.data import driver_days, measure
from shared.agents.optimization import optimize
from shared.agents.trace import Clock, EventLog, utc_now
from shared.agents.triage import triage
from shared.agents.triage.context import next_context, referenced
from shared.answer.writer import AnswerWriter
from shared.bus import Bus, event_messages, outgoing
from shared.models.context import ThreadContext
from shared.models.dimensions import DIMENSIONS, Dimension
from shared.models.events import RunEvent
from shared.models.findings import (
    DataReport,
    DriverDay,
    Findings,
    OptimizationReport,
    UsageFilters,
)
from shared.models.messages import STEP_TOPICS, Step, StepRequested
from shared.models.period import PeriodRange, resolve_token
from shared.models.triage import TriageResponse, WhatIfSpec
from shared.price_book import PriceBook
from shared.store.documents import Committed, MessageDoc, RunDoc, StepMarker
from shared.store.interfaces import (
    CreateConflict,
    RunStore,
    Storage,
    ThreadStore,
    UsageStore,
    WorkspaceStore,
)
from shared.usage.report import days_of, on_days
from shared.usage.rollups import DailyRollup

log = logging.getLogger(__name__)

# The step a run starts with: it takes the thread's lock.
FIRST_STEP: Final[Step] = "triage"
DEFAULT_PERIOD: Final = "last_30d"
CANCEL_MARKER: Final = "cancel"
FAILED_MARKER: Final = "failed"
ERROR_TEXT_CHARS: Final = 300


# What a step returns: its agent's report (stored on its claim, as JSON).
StepResult = TriageResponse | DataReport | OptimizationReport


@dataclass(slots=True)
class StepWork:
    """One delivery running its step: the run, the earlier steps' claims, the step's time,
    the events it records, and what it hands on to the next step besides its result."""

    run: RunDoc
    markers: Mapping[str, StepMarker | None]
    now: datetime
    events: EventLog
    handoff: str | None = None
    # The thread's context as the triage step read it (DESIGN §13).
    thread: ThreadContext | None = None
    # What the step found for the thread's context beyond its result (kept on its claim).
    context: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a delivery did (for the log line and the tests)."""

    run_id: str
    step: str
    action: str


def assistant_message_id(run_id: str) -> str:
    return f"{run_id}-answer"


class Pipeline:
    def __init__(
        self,
        storage: Storage,
        runs: RunStore,
        threads: ThreadStore,
        usage: UsageStore,
        bus: Bus,
        writer: AnswerWriter,
        clock: Clock = utc_now,
        *,
        workspaces: WorkspaceStore,
    ) -> None:
        self.storage = storage
        self.runs = runs
        self.threads = threads
        self.usage = usage
        self.bus = bus
        self.writer = writer
        self.clock = clock
        self.workspaces = workspaces

    # --- a step ---------------------------------------------------------------------------

    def handle(self, message: StepRequested, delivery_attempt: int | None = None) -> Outcome:
        run_id, step = message.run_id, message.step
        # The run, this step's claim and the earlier steps' results, in one read.
        run, markers = self.runs.get_with_markers(run_id, (step, *earlier_steps(step)))
        if run is None:
            # Runs are stored before their first message is published: this one never was.
            log.error("step message for an unknown run", extra={"fields": {"run_id": run_id}})
            return Outcome(run_id, step, "unknown run: dropped")
        marker = markers[step]
        if marker is not None:
            return self._finish(run, step, marker, None, "duplicate")
        if run.terminal:
            return Outcome(run_id, step, f"run already {run.status}")
        if step == FIRST_STEP and not self.runs.try_lock(run.thread_id, run_id):
            return Outcome(run_id, step, "queued behind the thread's running run")
        if run.cancel_requested:
            return self.cancel_now(run)
        try:
            return self._run_step(run, step, markers)
        except Exception as e:
            # Kept on the run so the dead-letter worker can say why the run failed.
            self.runs.update(
                run_id,
                {"last_error": _error_text(e), "attempt": delivery_attempt or 0, "step": step},
            )
            raise

    def _run_step(
        self, run: RunDoc, step: Step, markers: Mapping[str, StepMarker | None]
    ) -> Outcome:
        work = StepWork(run=run, markers=markers, now=self.clock(), events=EventLog(self.clock))
        fields: dict[str, Any] = {"updated_at": work.now, "step": step}
        result: StepResult
        match step:
            case "triage":
                # The first step starts the run.
                work.events.add(
                    "run_started",
                    {
                        "run_id": run.run_id,
                        "thread_id": run.thread_id,
                        "message_id": run.message_id,
                    },
                )
                fields.update(status="running", started_at=work.now)
                result = triaged = self._triage(work)
            case "data":
                triaged = _triage_of(run, markers)
                result = self._data(work, triaged)
            case "optimization":
                triaged = _triage_of(run, markers)
                result = self._optimization(work, triaged)
            case _:
                assert_never(step)
        next_step = _next_step(triaged, step)
        if next_step is None:
            return self._complete(work, step, fields, triaged, result)
        committed = self.runs.commit(
            run,
            step,
            work.events.events,
            fields,
            next_step=next_step,
            result=result.model_dump(mode="json"),
            handoff=work.handoff,
            context=work.context,
        )
        return self._after_commit(run, step, committed, "committed")

    # --- the steps, one function each -------------------------------------------------------

    def _triage(self, work: StepWork) -> TriageResponse:
        trace = work.events.agent("triage", "Work out what is asked and where it should go")
        catalogue = self.usage.catalogue(work.run.workspace_id)
        thread_id = work.run.thread_id

        def read_context() -> ThreadContext | None:
            work.thread = self.runs.thread_context(thread_id)
            return work.thread

        return triage(
            trace, work.run.question, catalogue, work.now, thread=(thread_id, read_context)
        )

    def _data(self, work: StepWork, triaged: TriageResponse) -> DataReport:
        period = _period_of(triaged, work.now)
        trace = work.events.agent("data", f"Measure the workspace's LLM usage {_span(period)}")
        measured: list[DailyRollup] = []
        report = measure(
            trace,
            self.usage,
            work.run.workspace_id,
            period,
            filters=_filters_of(triaged),
            dimensions=_dimensions_of(triaged),
            on_rollups=measured.extend,
            book=self._book(work),
        )
        # The rollups read, so that the optimization step prices the same snapshot.
        work.handoff = rollups_handoff(measured, period)
        # Each anomaly's driver on its day, so that a later "why?" is answered from it.
        days = driver_days(measured, report.anomalies)
        work.context = {"driver_days": [d.model_dump(mode="json") for d in days]}
        return report

    def _optimization(self, work: StepWork, triaged: TriageResponse) -> OptimizationReport:
        period = _period_of(triaged, work.now)
        trace = work.events.agent("optimization", f"Find and price savings {_span(period)}")
        return optimize(
            trace,
            self.usage,
            work.run.workspace_id,
            period,
            book=self._book(work),
            measured=measured_rollups(work.markers.get("data"), period),
            what_if_spec=_what_if_of(triaged),
            unpriced_what_if="report",
        )

    def _book(self, work: StepWork) -> PriceBook:
        """The workspace's prices, read once per step (a step is one claimed delivery)."""
        return self.workspaces.settings(work.run.workspace_id).price_book()

    # --- the last step: the answer --------------------------------------------------------

    def _complete(
        self,
        work: StepWork,
        step: Step,
        fields: dict[str, Any],
        triaged: TriageResponse,
        result: StepResult,
    ) -> Outcome:
        """Write the answer and end the run: the step's claim and events, the run's end, the
        assistant message and the thread's new context, in one unit of work."""
        run = work.run
        previous = work.thread if step == FIRST_STEP else self.runs.thread_context(run.thread_id)
        findings = _findings(run, triaged, result, work.markers)
        findings = findings.model_copy(update={"references": referenced(previous, triaged)})
        written = self.writer.write(findings)
        message_id = assistant_message_id(run.run_id)
        work.events.add(
            "message",
            {
                "message_id": message_id,
                "text": written.answer.text,
                "recommendations": [
                    r.model_dump(mode="json") for r in written.answer.recommendations
                ],
                "writer": written.writer,
                "fallback_reason": written.fallback_reason,
            },
        )
        started = run.started_at or work.now
        end = self.clock()
        work.events.add(
            "run_completed",
            {"status": "completed", "duration_ms": _ms(end - started)},
        )
        fields.update(status="completed", step=None, updated_at=end)
        unit = self.storage.begin()
        staged = self.runs.commit_in(
            unit,
            run,
            step,
            work.events.events,
            fields,
            terminal=True,
            result=result.model_dump(mode="json"),
            context=work.context,
        )
        self.runs.save_context_in(
            unit,
            run.thread_id,
            next_context(
                previous,
                run_id=run.run_id,
                question=run.question,
                triaged=triaged,
                data=findings.data,
                optimization=findings.optimization,
                driver_days=_driver_days_of(step, work),
            ),
        )
        self.threads.add_message_in(
            unit,
            run.thread_id,
            MessageDoc(
                message_id=message_id,
                role="assistant",
                text=written.answer.text,
                ts=end,
                run_id=run.run_id,
                recommendations=written.answer.recommendations,
            ),
        )
        self.threads.touch_in(unit, run.thread_id, end)
        try:
            unit.commit()
        except CreateConflict:
            return self._after_commit(run, step, None, "completed the run")
        return self._after_commit(run, step, staged, "completed the run")

    # --- after a commit -------------------------------------------------------------------

    def _after_commit(
        self, run: RunDoc, step: str, committed: Committed | None, action: str
    ) -> Outcome:
        if committed is None:
            return Outcome(run.run_id, step, "another delivery committed this step first")
        return self._finish(run, step, committed.marker, committed.events, action)

    def _finish(
        self,
        run: RunDoc,
        name: str,
        marker: StepMarker,
        events: list[RunEvent] | None,
        action: str,
    ) -> Outcome:
        """Publish what the committed step produced (again, if a delivery died before)."""
        if marker.published:
            return Outcome(run.run_id, name, action)
        if events is None:
            events = [
                e
                for e in self.runs.events_after(run.run_id, marker.first_seq - 1)
                if e.seq <= marker.last_seq
            ]
        current = self.runs.get(run.run_id) or run
        messages = event_messages(events, uid=run.uid, relay=current.relay)
        if marker.next_step is not None:
            next_step = StepRequested(run_id=run.run_id, uid=run.uid, step=marker.next_step)
            messages.append(outgoing(STEP_TOPICS[marker.next_step], next_step))
        self.bus.publish_all(messages)
        if marker.terminal:
            self._hand_off(run)
        self.runs.mark_published(run.run_id, name)
        return Outcome(run.run_id, name, action)

    def _hand_off(self, run: RunDoc) -> None:
        """Free the thread and start its oldest queued run, if any."""
        self.runs.release_lock(run.thread_id, run.run_id)
        queued = self.runs.oldest_queued(run.thread_id)
        if queued is not None and self.runs.try_lock(run.thread_id, queued.run_id):
            self.bus.publish(
                STEP_TOPICS[FIRST_STEP],
                StepRequested(run_id=queued.run_id, uid=queued.uid, step=FIRST_STEP),
            )

    # --- ends other than completion -------------------------------------------------------

    def cancel_now(self, run: RunDoc) -> Outcome:
        """Commit the run's cancellation (between steps, or before it started)."""
        now = self.clock()
        log_ = EventLog(self.clock)
        log_.add("run_cancelled", {"reason": "cancelled by the user"})
        committed = self.runs.commit(
            run,
            CANCEL_MARKER,
            log_.events,
            {"status": "cancelled", "reason": "cancelled by the user", "updated_at": now},
            terminal=True,
        )
        return self._after_commit(run, CANCEL_MARKER, committed, "cancelled the run")

    def dead_letter(self, message: StepRequested) -> Outcome:
        """A step that kept failing: the run fails, with the reason the user sees."""
        run = self.runs.get(message.run_id)
        if run is None:
            return Outcome(message.run_id, FAILED_MARKER, "unknown run: dropped")
        marker = self.runs.marker(run.run_id, FAILED_MARKER)
        if marker is not None:
            return self._finish(run, FAILED_MARKER, marker, None, "duplicate")
        if run.terminal:
            return Outcome(run.run_id, FAILED_MARKER, f"run already {run.status}")
        cause = run.last_error or "no error was recorded (the worker may have been stopped)"
        reason = f"The {message.step} step failed after every delivery attempt; last error: {cause}"
        now = self.clock()
        log_ = EventLog(self.clock)
        log_.add("run_failed", {"reason": reason})
        committed = self.runs.commit(
            run,
            FAILED_MARKER,
            log_.events,
            {"status": "failed", "reason": reason, "updated_at": now},
            terminal=True,
        )
        return self._after_commit(run, FAILED_MARKER, committed, "failed the run")


def earlier_steps(step: Step) -> tuple[Step, ...]:
    """The steps whose claims ``step`` reads with its run, in the same round trip: triage's
    route and entities; the data step's report and rollups for the optimization step."""
    match step:
        case "triage":
            return ()
        case "data":
            return ("triage",)
        case "optimization":
            return ("triage", "data")
        case _:
            assert_never(step)


def _next_step(triaged: TriageResponse, step: Step) -> Step | None:
    """The step after ``step`` on the run's route (triage comes before every agent)."""
    agents: list[Step] = list(triaged.route.agents)
    position = agents.index(step) if step in agents else -1
    return agents[position + 1] if position + 1 < len(agents) else None


def _findings(
    run: RunDoc,
    triaged: TriageResponse,
    result: StepResult,
    markers: Mapping[str, StepMarker | None],
) -> Findings:
    """What the answer is written from: the question, its triage, and the reports of the
    agents that ran (the last step's own, and the data step's from its claim)."""
    match result:
        case TriageResponse():
            return Findings(question=run.question, triage=triaged)
        case DataReport():
            return Findings(question=run.question, triage=triaged, data=result)
        case OptimizationReport():
            return Findings(
                question=run.question,
                triage=triaged,
                data=_data_report_of(markers),
                optimization=result,
            )
        case _:
            assert_never(result)


def _driver_days_of(step: Step, work: StepWork) -> list[DriverDay]:
    """The driver days the run's data step found: this step's, or kept on its claim."""
    if step == "data":
        found = work.context
    else:
        marker = work.markers.get("data")
        found = marker.context if marker is not None else None
    return [DriverDay.model_validate(d) for d in (found or {}).get("driver_days", [])]


def _data_report_of(markers: Mapping[str, StepMarker | None]) -> DataReport | None:
    marker = markers.get("data")
    if marker is None or marker.result is None:
        return None
    return DataReport.model_validate(marker.result)


# The most rollup JSON a data step hands on (its claim document must stay under 1 MiB);
# a bigger snapshot is read again by the next agent.
HANDOFF_MAX_BYTES: Final = 512 * 1024


class RollupsHandoff(BaseModel):
    """What the data step hands on: the daily rollups of ``first_day``..``last_day``."""

    model_config = ConfigDict(frozen=True)

    first_day: str
    last_day: str
    rows: list[DailyRollup]


def rollups_handoff(rows: Sequence[DailyRollup], period: PeriodRange) -> str | None:
    """The period's daily rollups as JSON text (serialized once: the claim stores this very
    text), for the optimization agent to price as measured; None over the size cap."""
    days = days_of(period)
    handoff = RollupsHandoff(first_day=days[0], last_day=days[-1], rows=on_days(rows, days))
    text = handoff.model_dump_json(exclude_defaults=True)
    return text if len(text) <= HANDOFF_MAX_BYTES else None


def measured_rollups(
    data_marker: StepMarker | None, period: PeriodRange
) -> list[DailyRollup] | None:
    """The rollups the data step handed on, if they cover ``period`` (a step resolves a
    relative period at its own time, so a run that crosses midnight UTC reads again)."""
    text = None if data_marker is None else data_marker.handoff
    if text is None:
        return None
    handoff = RollupsHandoff.model_validate_json(text)
    days = days_of(period)
    if (handoff.first_day, handoff.last_day) != (days[0], days[-1]):
        return None
    return handoff.rows


def _triage_of(run: RunDoc, markers: Mapping[str, StepMarker | None]) -> TriageResponse:
    marker = markers.get("triage")
    if marker is None or marker.result is None:
        raise RuntimeError(f"run {run.run_id} reached a later step without its triage")
    return TriageResponse.model_validate(marker.result)


def _period_of(triaged: TriageResponse, now: datetime) -> PeriodRange:
    named = triaged.entities.period
    if named is not None:
        return PeriodRange(start=named.start, end=named.end)
    return resolve_token(DEFAULT_PERIOD, now)


def _what_if_of(triaged: TriageResponse) -> WhatIfSpec | None:
    """The what-if the question asks ("what would summarize have cost on claude-3-5-haiku?")."""
    mention = triaged.entities.what_if
    if mention is None:
        return None
    return WhatIfSpec(model=mention.model, provider=mention.provider, feature=mention.feature)


def _filters_of(triaged: TriageResponse) -> UsageFilters:
    """The workspace's own models, features and providers the question names narrow the
    data (a follow-up's inherited ones too: "what about anthropic?" after "which feature
    costs the most?" ranks Anthropic's features). A what-if's target model is no filter:
    the question asks about the usage as it ran."""
    what_if = triaged.entities.what_if
    target = None if what_if is None else what_if.model
    models = [m.name for m in triaged.entities.models if m.known and m.name != target]
    features = [f.name for f in triaged.entities.features if f.known]
    providers = [p.name for p in triaged.entities.providers if p.known]
    return UsageFilters(
        models=models or None, features=features or None, providers=providers or None
    )


# What a chat answer breaks spend down by unless the question names more: the per-user
# rollups are many small documents, read only when users are asked about.
CHAT_DIMENSIONS: Final[tuple[Dimension, ...]] = ("model", "provider", "feature", "day")


def _dimensions_of(triaged: TriageResponse) -> list[Dimension]:
    named = set(CHAT_DIMENSIONS) | set(triaged.entities.group_by)
    return [d for d in DIMENSIONS if d in named]


def _span(period: PeriodRange) -> str:
    end = period.end - timedelta(microseconds=1)
    return f"from {period.start.date().isoformat()} to {end.date().isoformat()}"


def _ms(delta: timedelta) -> float:
    return round(delta.total_seconds() * 1000, 3)


def _error_text(error: Exception) -> str:
    text = f"{type(error).__name__}: {error}"
    return text[:ERROR_TEXT_CHARS]
