"""Pub/Sub messages Apex publishes, and the push envelope its workers receive (DESIGN §2).

Every message carries attributes (``kind`` at least): a push envelope without them would
break functions-framework's conversion, and the dead-letter worker dispatches on ``kind``.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Final, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared.errors import BadRequest, ValidationFailed
from shared.limits import MAX_INGEST_RECORDS

Step = Literal["triage", "data", "optimization"]
STEP_TOPICS: Final[dict[Step, str]] = {
    "triage": "apex-triage",
    "data": "apex-data",
    "optimization": "apex-optimization",
}
USAGE_TOPIC: Final = "apex-usage"
EVENTS_TOPIC: Final = "apex-events"
ID_PATTERN: Final = r"^[A-Za-z0-9_-]{1,128}$"


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StepRequested(_Message):
    """Run ``run_id`` is ready for ``step`` (the first one is the ``RunRequested`` of §3.3)."""

    kind: Literal["run_step"] = "run_step"
    run_id: str = Field(pattern=ID_PATTERN)
    # The run's user, so that a worker's every log line names it before the run is read.
    uid: str = Field(min_length=1)
    step: Step

    def attributes(self) -> dict[str, str]:
        return {"kind": self.kind, "run_id": self.run_id, "step": self.step}


class UsageBatch(_Message):
    """Accepted usage records of one ingest request, for the aggregator."""

    kind: Literal["usage_batch"] = "usage_batch"
    batch_id: str = Field(pattern=ID_PATTERN)
    workspace_id: str = Field(pattern=ID_PATTERN)
    uid: str
    # Normalized records (``UsageRecord.model_dump(mode="json")``).
    records: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_INGEST_RECORDS)

    def attributes(self) -> dict[str, str]:
        return {"kind": self.kind, "batch_id": self.batch_id, "workspace_id": self.workspace_id}


PipelineMessage = StepRequested | UsageBatch
_M = TypeVar("_M", bound=BaseModel)


class PushedMessage(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    data: str = ""
    attributes: dict[str, str] = Field(default_factory=dict)
    message_id: str = Field(alias="messageId", min_length=1)
    publish_time: str | None = Field(default=None, alias="publishTime")

    @field_validator("data")
    @classmethod
    def _base64(cls, value: str) -> str:
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as e:
            raise ValueError("message.data is not base64") from e
        return value

    def payload(self) -> bytes:
        return base64.b64decode(self.data)


class PushEnvelope(BaseModel):
    """The standard push body: ``{"message": {...}, "subscription", "deliveryAttempt"?}``."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    message: PushedMessage
    subscription: str = Field(min_length=1)
    # Present only on subscriptions with a dead-letter policy (all of Apex's work queues).
    delivery_attempt: int | None = Field(default=None, alias="deliveryAttempt", ge=1)

    @classmethod
    def parse(cls, body: bytes) -> PushEnvelope:
        try:
            return cls.model_validate_json(body)
        except ValidationError as e:
            raise ValidationFailed(f"not a Pub/Sub push envelope: {_first_error(e)}") from e

    def decode(self, model: type[_M]) -> _M:
        """The message's data as ``model`` (a malformed one is a poison message)."""
        try:
            return model.model_validate(json.loads(self.message.payload()))
        except (ValidationError, json.JSONDecodeError, UnicodeDecodeError) as e:
            raise BadRequest(f"message {self.message.message_id} is not a {model.__name__}") from e


def _first_error(error: ValidationError) -> str:
    item = error.errors()[0]
    return f"{'.'.join(str(p) for p in item['loc'])}: {item['msg']}"
