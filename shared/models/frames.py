"""WebSocket frames of the chat relay (DESIGN §3; the protocol is docs/relay.md).

Client frames are one discriminated union on ``type``, forbidding unknown fields, so the
relay validates every frame at the edge in one call; server frames are models too, so what
is sent is what is documented. Event frames are ``shared.models.events.RunEvent``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Final, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from shared.edge import MAX_FRAME_BYTES as MAX_FRAME_BYTES  # the limit of these frames
from shared.errors import BadRequest, ValidationFailed
from shared.models.api import Content, Identifier, RunStatus
from shared.workspaces.roles import Role

# A Firebase ID token is 1-2 KB; anything much longer is not one.
MAX_TOKEN_CHARS: Final = 16 * 1024


class _ClientFrame(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AuthFrame(_ClientFrame):
    type: Literal["auth"]
    token: str = Field(min_length=1, max_length=MAX_TOKEN_CHARS, repr=False)
    # The workspace to act in (DESIGN §9); without it, the socket's current one (first
    # frame: the user's personal workspace).
    workspace_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,128}$")


class ChatSend(_ClientFrame):
    type: Literal["chat.send"]
    client_msg_id: UUID
    thread_id: Identifier | None = None
    content: Content
    if_busy: Literal["enqueue", "reject"] = "enqueue"


class RunResume(_ClientFrame):
    type: Literal["run.resume"]
    run_id: Identifier
    after_seq: int = Field(ge=0)


class RunCancel(_ClientFrame):
    type: Literal["run.cancel"]
    run_id: Identifier


class Ping(_ClientFrame):
    type: Literal["ping"]


ClientFrame = Annotated[
    AuthFrame | ChatSend | RunResume | RunCancel | Ping, Field(discriminator="type")
]
CLIENT_TYPES: Final = ("auth", "chat.send", "run.resume", "run.cancel", "ping")
_CLIENT_FRAME: Final[TypeAdapter[ClientFrame]] = TypeAdapter(ClientFrame)


def parse_client_frame(text: str) -> ClientFrame:
    """One text frame as a client frame.

    ``BadRequest`` when it is not a JSON object with a known ``type``; ``ValidationFailed``
    naming the field when a known frame is malformed.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise BadRequest(f"the frame is not valid JSON: {e}") from e
    if not isinstance(data, dict):
        raise BadRequest("a frame is a JSON object with a `type`")
    kind = data.get("type")
    if kind not in CLIENT_TYPES:
        known = ", ".join(CLIENT_TYPES)
        if kind is None:
            raise BadRequest(f"the frame has no `type`; one of {known}")
        raise BadRequest(f"unknown frame type {_short(kind)}; one of {known}")
    try:
        return _CLIENT_FRAME.validate_python(data)
    except ValidationError as e:
        raise ValidationFailed(describe_frame_error(e)) from e


def describe_frame_error(error: ValidationError) -> str:
    """``field: message`` for each problem (at most three); the tag is not a field."""
    parts = []
    for item in error.errors()[:3]:
        loc = [str(p) for p in item["loc"]][1:]  # drop the union member (the frame type)
        parts.append(f"{'.'.join(loc) or 'frame'}: {item['msg']}")
    return "; ".join(parts)


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


class _ServerFrame(BaseModel):
    model_config = ConfigDict(frozen=True)

    def text(self) -> str:
        return self.model_dump_json(exclude_none=True)


class AuthOk(_ServerFrame):
    type: Literal["auth.ok"] = "auth.ok"
    uid: str
    workspace_id: str
    role: Role
    session_id: str
    expires_at: int


class ChatAccepted(_ServerFrame):
    type: Literal["chat.accepted"] = "chat.accepted"
    client_msg_id: UUID
    thread_id: str
    run_id: str
    message_id: str


class RunResumed(_ServerFrame):
    type: Literal["run.resumed"] = "run.resumed"
    run_id: str
    status: RunStatus


class RunCancelOk(_ServerFrame):
    type: Literal["run.cancel.ok"] = "run.cancel.ok"
    run_id: str
    status: RunStatus


class Pong(_ServerFrame):
    type: Literal["pong"] = "pong"


class ErrorFrame(_ServerFrame):
    type: Literal["error"] = "error"
    code: str
    message: str
    client_msg_id: UUID | None = None
    run_id: str | None = None
    retry_after_s: int | None = None


ServerFrame = AuthOk | ChatAccepted | RunResumed | RunCancelOk | Pong | ErrorFrame
