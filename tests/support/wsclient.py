"""A WebSocket client of the relay for tests: the ``websockets`` package's sync client, with
the protocol's frames as dicts and the close code and reason at hand."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

TERMINAL = {"run_completed", "run_failed", "run_cancelled"}


class Chat:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    def send(self, frame: dict[str, Any] | str) -> None:
        self.ws.send(frame if isinstance(frame, str) else json.dumps(frame))

    def recv(self, timeout: float = 30.0) -> dict[str, Any]:
        frame: dict[str, Any] = json.loads(self.ws.recv(timeout=timeout))
        return frame

    def expect(self, type_: str, timeout: float = 30.0) -> dict[str, Any]:
        frame = self.recv(timeout)
        assert frame["type"] == type_, frame
        return frame

    def auth(self, token: str) -> dict[str, Any]:
        self.send({"type": "auth", "token": token})
        return self.expect("auth.ok")

    def ask(self, content: str, **extra: Any) -> dict[str, Any]:
        """chat.send; returns chat.accepted."""
        self.send(
            {"type": "chat.send", "client_msg_id": str(uuid.uuid4()), "content": content, **extra}
        )
        return self.expect("chat.accepted")

    def events_until_terminal(self, timeout: float = 90.0) -> list[dict[str, Any]]:
        """Every frame up to a terminal event; each must be an event frame."""
        events: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while not events or events[-1]["event"] not in TERMINAL:
            frame = self.recv(max(0.1, deadline - time.monotonic()))
            assert frame["type"] == "event", frame
            events.append(frame)
        return events

    def closed_with(self, timeout: float = 30.0) -> tuple[int, str]:
        """Wait for the server to close; (code, reason). Frames before the close are skipped."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                self.ws.recv(timeout=max(0.1, deadline - time.monotonic()))
        except ConnectionClosed as e:
            closed = e.rcvd
        if closed is None:
            raise AssertionError("the connection ended without a close frame")
        return closed.code, closed.reason

    def is_open(self) -> bool:
        """A ping is answered with a pong. Event frames of runs still going may arrive first
        and are skipped; any other frame before the pong is a failure."""
        self.send({"type": "ping"})
        deadline = time.monotonic() + 10
        try:
            while (frame := self.recv(max(0.1, deadline - time.monotonic())))["type"] == "event":
                continue
        except ConnectionClosed:
            return False
        return bool(frame["type"] == "pong")


@contextmanager
def chat(url: str, **kwargs: Any) -> Iterator[Chat]:
    """Connect to ``url`` (``ws://.../ws``)."""
    with connect(url, max_size=None, open_timeout=10, **kwargs) as ws:
        yield Chat(ws)


def ws_url(http_url: str) -> str:
    return http_url.replace("http://", "ws://", 1) + "/ws"
