"""Run events (DESIGN §3.5, §3.6): what is stored under ``runs/{run}/events/{seq}``, published
to ``apex-events``, sent to WebSocket clients as ``event`` frames and returned by
``runs_get``. One model, so the four can never disagree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetPydanticSchema,
    WithJsonSchema,
)
from pydantic_core import CoreSchema, core_schema

EventType = Literal[
    "run_started",
    "agent_started",
    "agent_thinking",
    "tool_executing",
    "tool_completed",
    "agent_completed",
    "message",
    "run_completed",
    "run_failed",
    "run_cancelled",
]
AgentName = Literal["triage", "data", "optimization"]
TERMINAL_EVENTS: Final = frozenset({"run_completed", "run_failed", "run_cancelled"})
# Event docs are named by zero-padded seq so their ids sort like their numbers.
SEQ_DIGITS: Final = 10


def seq_doc_id(seq: int) -> str:
    return f"{seq:0{SEQ_DIGITS}d}"


def iso_utc(moment: datetime) -> str:
    """ISO 8601 UTC with millisecond precision and a ``Z`` (what clients parse everywhere)."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ``iso_utc``'s text: what every event's ``ts`` is on the wire and in the store.
WIRE_TS_PATTERN: Final = (
    r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d\.\d{3}Z$"
)


def _wire_ts_schema(_source: object, _handler: GetCoreSchemaHandler) -> CoreSchema:
    return core_schema.union_schema(
        [
            core_schema.str_schema(pattern=WIRE_TS_PATTERN),
            core_schema.no_info_after_validator_function(
                iso_utc, core_schema.datetime_schema(tz_constraint="aware")
            ),
        ],
        mode="left_to_right",
    )


# An event's time, kept as its wire text. Events are validated and serialized at every hop
# (the relay does both for each event it forwards), and a ``datetime`` cost a Python
# callback each way (docs/benchmarks.md, relay fan-out). Text already in the wire form is
# taken as it is, checked in pydantic's core; an aware ``datetime``, or ISO 8601 text with
# another offset or precision, is converted; a naive one is refused. Documented as before.
WireTs = Annotated[
    str,
    GetPydanticSchema(_wire_ts_schema),
    WithJsonSchema({"type": "string"}),
]


class RunEvent(BaseModel):
    """``{"type":"event","run_id","seq","event","agent"?,"data","ts"}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["event"] = "event"
    run_id: str
    seq: int = Field(ge=1)
    event: EventType
    # On agent-level events only (DESIGN §3.5): absent, not null, elsewhere. (A field rule
    # rather than a model serializer: the relay serializes every event it forwards.)
    agent: AgentName | None = Field(default=None, exclude_if=lambda agent: agent is None)
    data: dict[str, Any]
    ts: WireTs

    @property
    def terminal(self) -> bool:
        return self.event in TERMINAL_EVENTS

    def frame(self) -> dict[str, Any]:
        """The wire object."""
        return self.model_dump(mode="json")

    def frame_json(self) -> str:
        """``frame()`` as JSON text, as published and as sent to sockets: the model's own
        serializer in one call (``model_dump_json``'s keyword handling is a tenth of its
        cost for an event, and the relay serializes every event it forwards)."""
        return self.__pydantic_serializer__.to_json(self).decode()


class PendingEvent(BaseModel):
    """An event a step produced, before the commit gives it its ``seq``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event: EventType
    agent: AgentName | None = None
    data: dict[str, Any]
    ts: datetime

    def numbered(self, run_id: str, seq: int) -> RunEvent:
        return RunEvent(
            run_id=run_id, seq=seq, event=self.event, agent=self.agent, data=self.data, ts=self.ts
        )
