"""Bad input on the relay's socket (issue 4): each gets the close code or error frame that
docs/relay.md documents; an error frame leaves the socket open; nothing is a 1011."""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus

from devstack.stack import RunningStack
from shared.models.frames import MAX_FRAME_BYTES
from tests.support.ratelimit import seconds_left_in_window, start_within_one_window
from tests.support.relay import ChatUser, OwnRelay
from tests.support.wsclient import Chat, chat, ws_url


@pytest.fixture
def url(relay_stack: RunningStack) -> str:
    return ws_url(relay_stack.relay)


def _error(c: Chat, code: str) -> dict[str, Any]:
    frame = c.expect("error")
    assert frame["code"] == code, frame
    assert frame["message"]
    return frame


def test_no_auth_frame_in_time_closes_with_1008(start_relay: Callable[..., OwnRelay]) -> None:
    relay = start_relay(APEX_RELAY_AUTH_TIMEOUT_S="1")
    with chat(relay.ws_url) as c:
        opened = time.monotonic()
        code, reason = c.closed_with(timeout=10)
    assert (code, reason) == (1008, "no auth frame within 1 s")
    assert 0.9 <= time.monotonic() - opened < 5


def test_frames_before_auth_are_refused_and_the_socket_stays_open(
    url: str, new_chat_user: Callable[[], ChatUser]
) -> None:
    with chat(url) as c:
        c.send({"type": "chat.send", "client_msg_id": str(uuid.uuid4()), "content": "hi"})
        refused = _error(c, "unauthenticated")
        assert "client_msg_id" in refused
        c.send({"type": "ping"})
        _error(c, "unauthenticated")
        assert c.auth(new_chat_user().id_token)["type"] == "auth.ok"
        assert c.is_open()


# The reason names what is wrong with the token, as firebase-admin says it; a reason over
# RFC 6455's 123 bytes is cut to 120 and "..." (relay/outbox.py).
_NOT_VALID = "the ID token is not valid: "
_LONG_TOKEN_REASON = _NOT_VALID + "Wrong number of segments in token: b'"
_LONG_TOKEN_REASON += "a" * (120 - len(_LONG_TOKEN_REASON)) + "..."


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("garbage", _NOT_VALID + "Wrong number of segments in token: b'garbage'"),
        ("a" * 5000, _LONG_TOKEN_REASON),
        (
            "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
            _NOT_VALID + 'Firebase ID token has incorrect "aud" (audience) claim',
        ),
    ],
)
def test_a_bad_token_closes_with_1008(url: str, token: str, reason: str) -> None:
    with chat(url) as c:
        c.send({"type": "auth", "token": token})
        assert c.closed_with() == (1008, reason)


def test_an_expired_token_closes_with_1008(url: str, new_chat_user: Callable[[], ChatUser]) -> None:
    stale = new_chat_user().token_expiring_at(int(time.time()) - 1)
    with chat(url) as c:
        c.send({"type": "auth", "token": stale})
        assert c.closed_with() == (1008, "the ID token has expired; sign in again")


def test_a_bearer_header_on_the_upgrade_signs_the_socket_in(
    url: str, new_chat_user: Callable[[], ChatUser]
) -> None:
    user = new_chat_user()
    with chat(url, additional_headers={"Authorization": f"Bearer {user.id_token}"}) as c:
        ok = c.expect("auth.ok")  # unasked: the first frame
        assert ok["uid"] == user.uid
        assert c.is_open()
    with chat(url, additional_headers={"Authorization": "Bearer garbage"}) as c:
        assert c.closed_with() == (
            1008,
            _NOT_VALID + "Wrong number of segments in token: b'garbage'",
        )
    with chat(url, additional_headers={"Authorization": "Basic dTpw"}) as c:
        assert c.closed_with() == (1008, "no ID token was given")


def test_a_frame_over_64_kib_closes_with_1009_and_one_of_64_kib_does_not(
    url: str, new_chat_user: Callable[[], ChatUser]
) -> None:
    with chat(url) as c:
        c.auth(new_chat_user().id_token)
        exactly = json.dumps({"type": "ping", "pad": ""})
        exactly = exactly[:-2] + "x" * (MAX_FRAME_BYTES - len(exactly)) + '"}'
        assert len(exactly.encode()) == MAX_FRAME_BYTES
        c.send(exactly)
        _error(c, "validation_failed")  # a frame of the limit is read (and is not a ping)
        assert c.is_open()
        c.send("x" * (MAX_FRAME_BYTES + 1))
        closed = c.closed_with()
    # The reason is the WebSocket server's (uvicorn's websockets-sansio, relay/__main__.py).
    assert closed == (
        1009,
        f"frame with {MAX_FRAME_BYTES + 1} bytes exceeds limit of {MAX_FRAME_BYTES} bytes",
    )


@pytest.mark.parametrize(
    ("frame", "code", "says"),
    [
        ("{not json", "bad_request", "not valid JSON"),
        ("[]", "bad_request", "JSON object"),
        ('{"content": "hi"}', "bad_request", "no `type`"),
        ('{"type": "chat.edit"}', "bad_request", "unknown frame type"),
        (
            '{"type": "chat.send", "client_msg_id": "x", "content": "hi"}',
            "validation_failed",
            "client_msg_id",
        ),
        (
            json.dumps({"type": "chat.send", "client_msg_id": str(uuid.uuid4()), "content": ""}),
            "validation_failed",
            "content",
        ),
        (
            json.dumps(
                {"type": "chat.send", "client_msg_id": str(uuid.uuid4()), "content": "x" * 8001}
            ),
            "validation_failed",
            "content",
        ),
        (
            '{"type": "run.resume", "run_id": "r", "after_seq": -3}',
            "validation_failed",
            "after_seq",
        ),
        ('{"type": "run.cancel"}', "validation_failed", "run_id"),
        ('{"type": "ping", "id": 1}', "validation_failed", "id"),
    ],
)
def test_a_bad_frame_gets_an_error_frame_and_the_socket_stays_open(
    url: str, new_chat_user: Callable[[], ChatUser], frame: str, code: str, says: str
) -> None:
    with chat(url) as c:
        c.auth(new_chat_user().id_token)
        c.send(frame)
        assert says in _error(c, code)["message"]
        assert c.is_open()


def test_a_binary_frame_is_a_bad_request(url: str, new_chat_user: Callable[[], ChatUser]) -> None:
    with chat(url) as c:
        c.auth(new_chat_user().id_token)
        c.ws.send(b'{"type": "ping"}')
        _error(c, "bad_request")
        assert c.is_open()


def test_another_users_run_and_thread_are_not_found(
    url: str, new_chat_user: Callable[[], ChatUser]
) -> None:
    owner, other = new_chat_user(), new_chat_user()
    with chat(url) as c:
        c.auth(owner.id_token)
        accepted = c.ask("What did we spend last week?")
        c.events_until_terminal()
    with chat(url) as c:
        c.auth(other.id_token)
        c.send({"type": "run.resume", "run_id": accepted["run_id"], "after_seq": 0})
        assert _error(c, "not_found")["run_id"] == accepted["run_id"]
        c.send({"type": "run.cancel", "run_id": accepted["run_id"]})
        _error(c, "not_found")
        c.send({"type": "run.resume", "run_id": "no-such-run", "after_seq": 0})
        _error(c, "not_found")
        msg_id = str(uuid.uuid4())
        c.send(
            {
                "type": "chat.send",
                "client_msg_id": msg_id,
                "thread_id": accepted["thread_id"],
                "content": "and now?",
            }
        )
        assert _error(c, "not_found")["client_msg_id"] == msg_id
        assert c.is_open()


def test_a_refresh_with_another_users_token_closes_with_1008(
    url: str, new_chat_user: Callable[[], ChatUser]
) -> None:
    with chat(url) as c:
        c.auth(new_chat_user().id_token)
        c.send({"type": "auth", "token": new_chat_user().id_token})
        assert c.closed_with() == (1008, "a fresh token must be the same user's")


def test_chat_messages_past_the_per_user_limit_are_rate_limited(
    start_relay: Callable[..., OwnRelay], new_chat_user: Callable[[], ChatUser]
) -> None:
    relay = start_relay(APEX_CHAT_MESSAGES_PER_MINUTE="2")
    user = new_chat_user()
    with chat(relay.ws_url) as c:
        c.auth(user.id_token)
        start_within_one_window(need_s=30)
        # Up to the limit each message is accepted; the one past it, and the next, get an
        # error frame naming the message, with the seconds left of the window.
        answers = []
        for _ in range(4):
            msg_id = str(uuid.uuid4())
            c.send({"type": "chat.send", "client_msg_id": msg_id, "content": "hi"})
            while (frame := c.recv())["type"] == "event":
                continue  # the accepted runs' events
            answers.append((msg_id, frame, seconds_left_in_window()))
        assert [frame["type"] for _, frame, _ in answers] == [
            "chat.accepted",
            "chat.accepted",
            "error",
            "error",
        ], answers
        for msg_id, accepted, _ in answers[:2]:
            assert accepted["client_msg_id"] == msg_id
        for msg_id, refused, left in answers[2:]:
            assert refused["code"] == "rate_limited", refused
            assert refused["client_msg_id"] == msg_id
            assert "more than 2 chat messages a minute" in refused["message"]
            assert math.floor(left) <= refused["retry_after_s"] <= math.ceil(left) + 1
        assert c.is_open()


def test_a_page_from_another_origin_cannot_open_a_socket(relay_stack: RunningStack) -> None:
    evil = "https://evil.example.com"
    with pytest.raises(InvalidStatus) as refused, chat(ws_url(relay_stack.relay), origin=evil):
        pass
    assert refused.value.response.status_code == 403
    # The relay's own page (same origin) and the configured origins may.
    for origin in (relay_stack.relay, relay_stack.relay.replace("127.0.0.1", "localhost")):
        with chat(ws_url(relay_stack.relay), origin=origin) as c:
            c.send({"type": "ping"})
            _error(c, "unauthenticated")
