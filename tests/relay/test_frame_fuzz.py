"""Hypothesis-driven fuzz of client frames on an authenticated socket: a frame the relay
cannot use gets an error frame and the socket stays up; no frame ever closes it with 1011.

The only closes allowed are the documented ones for the frame itself: 1008 for an `auth`
frame whose token is not valid, 1009 for a frame over 64 KiB.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed

from devstack.stack import RunningStack
from tests.support.relay import ChatUser
from tests.support.wsclient import Chat, chat, ws_url

TYPES = ["auth", "chat.send", "run.resume", "run.cancel", "ping", "bogus", "", "event"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
frames = st.one_of(
    # Objects shaped like frames, with wrong or missing fields.
    st.fixed_dictionaries(
        {"type": st.sampled_from(TYPES)},
        optional={
            "run_id": json_values,
            "after_seq": json_values,
            "client_msg_id": json_values,
            "content": json_values,
            "thread_id": json_values,
            "if_busy": json_values,
            "token": st.text(max_size=60),
        },
    ).map(json.dumps),
    json_values.map(json.dumps),  # any JSON at all
    st.text(max_size=200),  # mostly not JSON
    st.binary(max_size=200),  # binary frames
)


class Socket:
    """One authenticated connection, reopened after a documented close."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token
        self._cm: Any = None
        self.chat: Chat | None = None

    def open(self) -> Chat:
        if self.chat is None:
            self._cm = chat(self.url)
            self.chat = self._cm.__enter__()
            self.chat.auth(self.token)
        return self.chat

    def close(self) -> None:
        if self._cm is not None:
            self._cm.__exit__(None, None, None)
        self._cm, self.chat = None, None


@pytest.fixture
def socket(relay_stack: RunningStack, new_chat_user: Any) -> Iterator[Socket]:
    user: ChatUser = new_chat_user()
    s = Socket(ws_url(relay_stack.relay), user.id_token)
    yield s
    s.close()


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(frame=frames)
def test_no_frame_closes_with_1011_and_errors_keep_the_socket(
    socket: Socket, frame: str | bytes
) -> None:
    ws = socket.open()
    ws.ws.send(frame)
    ws.send({"type": "ping"})
    deadline = time.monotonic() + 20
    try:
        while True:
            reply = ws.recv(max(0.1, deadline - time.monotonic()))
            if reply["type"] == "pong":
                return  # the socket is still up and answering
            assert reply["type"] in {
                "error",
                "chat.accepted",
                "event",
                "auth.ok",
                "run.resumed",
                "run.cancel.ok",
            }, reply
            if reply["type"] == "error":
                assert reply["code"] != "internal", reply
    except ConnectionClosed as e:
        code, reason = (e.rcvd.code, e.rcvd.reason) if e.rcvd is not None else (None, "")
        socket.close()
        assert code != 1011
        is_auth = isinstance(frame, str) and frame.startswith('{"type": "auth"')
        assert code == 1008, (code, frame)
        assert is_auth, frame
        # Only the token's own faults close (shared/auth.py), and the reason says which.
        assert reason.startswith(("no ID token", "the ID token ", "the account")), reason
