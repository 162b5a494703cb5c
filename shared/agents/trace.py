"""What a step shows the user while it works: the DESIGN §3.6 events of one agent.

``AgentTrace`` records ``agent_started``, ``agent_thinking``, and a ``tool_executing`` /
``tool_completed`` pair around every tool call with its real arguments, results and
timing; the step commits the recorded events atomically when it is done.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel

from shared.models.events import AgentName, EventType, PendingEvent

T = TypeVar("T")
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def to_jsonable(value: Any) -> Any:
    """Pydantic models (and lists/dicts of them) as JSON-ready data for event payloads."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    return value


class EventLog:
    """The events of one step, in order."""

    def __init__(self, clock: Clock = utc_now) -> None:
        self.clock = clock
        self.events: list[PendingEvent] = []

    def add(self, event: EventType, data: dict[str, Any], agent: AgentName | None = None) -> None:
        self.events.append(PendingEvent(event=event, agent=agent, data=data, ts=self.clock()))

    def agent(self, name: AgentName, task: str) -> AgentTrace:
        trace = AgentTrace(self, name)
        self.add("agent_started", {"agent_name": name, "task_description": task}, name)
        return trace


class AgentTrace:
    def __init__(self, log: EventLog, name: AgentName) -> None:
        self._log = log
        self.name = name

    def think(self, reasoning: str) -> None:
        self._log.add("agent_thinking", {"reasoning": reasoning}, self.name)

    def tool(
        self,
        tool_name: str,
        args: dict[str, Any],
        call: Callable[[], T],
        shown: Callable[[T], Any] | None = None,
    ) -> T:
        """Run ``call`` as tool ``tool_name``; its events carry ``args`` and the result
        (or ``shown(result)``, for a tool whose raw result is bulk data such as rollups).

        A tool that raises is recorded (``success: false`` with the error) and the error
        propagates: the step fails and is retried, it does not answer from a broken tool.
        """
        execution_id = uuid.uuid4().hex[:16]
        self._log.add(
            "tool_executing",
            {"tool_name": tool_name, "tool_args": to_jsonable(args), "execution_id": execution_id},
            self.name,
        )
        started = time.perf_counter()
        try:
            result = call()
        except Exception as e:
            self._completed(tool_name, execution_id, started, {"error": str(e)}, success=False)
            raise
        results = to_jsonable(result if shown is None else shown(result))
        self._completed(tool_name, execution_id, started, results, success=True)
        return result

    def _completed(
        self, tool: str, execution_id: str, started: float, results: Any, *, success: bool
    ) -> None:
        self._log.add(
            "tool_completed",
            {
                "tool_name": tool,
                "execution_id": execution_id,
                "results": results,
                "execution_time_ms": round((time.perf_counter() - started) * 1000, 3),
                "success": success,
            },
            self.name,
        )

    def completed(self, result: Any, status: str = "completed") -> None:
        self._log.add(
            "agent_completed", {"status": status, "result": to_jsonable(result)}, self.name
        )
