"""The relay's frame models (shared/models/frames.py): what is accepted, and the error code
and message each malformed frame gets (docs/relay.md)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from shared.errors import ApexError, BadRequest, ValidationFailed
from shared.models.frames import (
    AuthFrame,
    ChatSend,
    ErrorFrame,
    Ping,
    RunCancel,
    RunResume,
    parse_client_frame,
)

MSG_ID = str(uuid.uuid4())


@pytest.mark.parametrize(
    ("frame", "model"),
    [
        ({"type": "auth", "token": "t"}, AuthFrame),
        ({"type": "chat.send", "client_msg_id": MSG_ID, "content": "hi"}, ChatSend),
        (
            {
                "type": "chat.send",
                "client_msg_id": MSG_ID,
                "content": "x" * 8000,
                "thread_id": "abc_-1",
                "if_busy": "reject",
            },
            ChatSend,
        ),
        ({"type": "run.resume", "run_id": "r1", "after_seq": 0}, RunResume),
        ({"type": "run.cancel", "run_id": "r1"}, RunCancel),
        ({"type": "ping"}, Ping),
    ],
)
def test_each_client_frame_parses_to_its_model(frame: dict[str, Any], model: type) -> None:
    assert isinstance(parse_client_frame(json.dumps(frame)), model)


def test_chat_send_defaults_to_enqueue() -> None:
    frame = parse_client_frame(
        json.dumps({"type": "chat.send", "client_msg_id": MSG_ID, "content": "hi"})
    )
    assert isinstance(frame, ChatSend)
    assert frame.if_busy == "enqueue"
    assert frame.thread_id is None


@pytest.mark.parametrize(
    ("text", "error", "says"),
    [
        ("not json", BadRequest, "not valid JSON"),
        ("[1, 2]", BadRequest, "JSON object"),
        ('"auth"', BadRequest, "JSON object"),
        ("{}", BadRequest, "no `type`"),
        ('{"type": "chat.delete"}', BadRequest, 'unknown frame type "chat.delete"'),
        ('{"type": 7}', BadRequest, "unknown frame type 7"),
        ('{"type": "auth"}', ValidationFailed, "token: Field required"),
        ('{"type": "auth", "token": ""}', ValidationFailed, "token"),
        (
            json.dumps({"type": "chat.send", "client_msg_id": MSG_ID, "content": ""}),
            ValidationFailed,
            "content",
        ),
        (
            json.dumps({"type": "chat.send", "client_msg_id": MSG_ID, "content": "x" * 8001}),
            ValidationFailed,
            "content",
        ),
        (
            json.dumps({"type": "chat.send", "client_msg_id": "not-a-uuid", "content": "hi"}),
            ValidationFailed,
            "client_msg_id",
        ),
        (
            json.dumps(
                {"type": "chat.send", "client_msg_id": MSG_ID, "content": "hi", "if_busy": "wait"}
            ),
            ValidationFailed,
            "if_busy",
        ),
        (
            json.dumps({"type": "chat.send", "client_msg_id": MSG_ID, "content": "hi", "x": 1}),
            ValidationFailed,
            "x: Extra inputs are not permitted",
        ),
        (
            json.dumps(
                {"type": "chat.send", "client_msg_id": MSG_ID, "content": "hi", "thread_id": "a/b"}
            ),
            ValidationFailed,
            "thread_id",
        ),
        ('{"type": "run.resume", "run_id": "r1", "after_seq": -1}', ValidationFailed, "after_seq"),
        ('{"type": "run.resume", "run_id": "r1"}', ValidationFailed, "after_seq"),
        ('{"type": "run.cancel", "run_id": "../x"}', ValidationFailed, "run_id"),
        ('{"type": "ping", "extra": true}', ValidationFailed, "extra"),
    ],
)
def test_malformed_frames_are_refused_with_a_code_and_a_reason(
    text: str, error: type[ApexError], says: str
) -> None:
    with pytest.raises(error) as caught:
        parse_client_frame(text)
    assert type(caught.value) is error
    assert says in caught.value.message


def test_server_frames_leave_out_what_is_unset() -> None:
    frame = ErrorFrame(code="bad_request", message="no")
    assert json.loads(frame.text()) == {"type": "error", "code": "bad_request", "message": "no"}
