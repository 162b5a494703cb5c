"""What one socket sends, in order: straight to the socket while nothing is waiting, else
through a writer task that lives only while frames wait (docs/relay.md: a client that reads
too slowly is closed with 1013).

An idle socket holds no queue and no task: most of the relay's sockets are idle, and each
would otherwise keep an ``asyncio.Queue`` (four deques) and a writer task's frames for its
whole life. A frame sent while nothing waits is written at once, with no hop through a queue
and a task: the ASGI server's ``send`` is run until it must wait, which under uvicorn is only
while the transport's buffer is over its high-water mark.
"""

from __future__ import annotations

import asyncio
import logging
import types
import uuid
from collections import deque
from collections.abc import Awaitable, Generator
from dataclasses import dataclass
from typing import Any, Final

from starlette.types import Message, Send

from shared.errors import CloseCode

log = logging.getLogger("apex.relay.session")

INTERNAL_ERROR: Final = CloseCode.INTERNAL_ERROR
TRY_AGAIN_LATER: Final = CloseCode.TRY_AGAIN_LATER
# Frames waiting for a slow client before it is closed with 1013.
MAX_PENDING_FRAMES: Final = 10_000
# RFC 6455: a close reason is at most 123 bytes of UTF-8.
MAX_REASON_BYTES: Final = 123


@dataclass(frozen=True, slots=True)
class Close:
    code: int
    reason: str


# The client went away: nothing more can be sent (the reader sees the disconnect).
GONE: Final = Close(CloseCode.ABNORMAL, "")


class Outbox:
    """``send_text`` and ``close`` in call order; ``closing`` once a close was asked for."""

    __slots__ = ("_name", "_send", "_waiting", "_writer", "closing")

    def __init__(self, send: Send, name: str) -> None:
        self._send = send
        self._name = name  # the session id, for the logs
        # Frames behind a send that had to wait, and the task writing them; None when idle.
        self._waiting: deque[str | Close] | None = None
        self._writer: asyncio.Task[None] | None = None
        self.closing: Close | None = None

    @property
    def waiting(self) -> int:
        """Frames waiting behind a send held up by the socket's buffer (0 when idle)."""
        return 0 if self._waiting is None else len(self._waiting)

    async def accept(self) -> None:
        await self._send({"type": "websocket.accept"})

    async def refuse(self, code: int) -> None:
        """Close before ``accept``: the upgrade is answered with HTTP 403."""
        self.closing = Close(code, "")
        await self._send({"type": "websocket.close", "code": code})

    def send_text(self, text: str) -> None:
        if self.closing is not None:
            return
        if self._waiting is None:
            self._start({"type": "websocket.send", "text": text})
            return
        if len(self._waiting) >= MAX_PENDING_FRAMES:
            log.warning(
                "closing a socket that reads too slowly",
                extra={"fields": {"session_id": self._name, "pending": self.waiting}},
            )
            self.close(TRY_AGAIN_LATER, "too many frames waiting; reconnect and resume", now=True)
            return
        self._waiting.append(text)

    def close(self, code: int, reason: str, *, now: bool = False) -> None:
        """Close after what is waiting (``now``: instead of it)."""
        if self.closing is not None:
            return
        self.closing = Close(code, reason)
        if self._waiting is None:
            self._start(_message(self.closing))
            return
        if now:
            self._waiting.clear()
        self._waiting.append(self.closing)

    def stop(self) -> None:
        """The socket is done: drop what waits."""
        if self._writer is not None:
            self._writer.cancel()

    def _start(self, message: Message) -> None:
        """Send ``message`` now; if the send must wait, the writer task finishes it and sends
        whatever is queued behind it meanwhile."""
        step = self._send(message).__await__()
        try:
            blocked_on = step.send(None)
        except StopIteration:
            return
        except OSError:
            # The client went away (ASGI servers raise an OSError for a send after that).
            self.closing = GONE
            return
        except Exception:  # noqa: BLE001 - logged with its stack trace by _failed()
            self._failed(message)
            return
        self._waiting = deque()
        self._writer = asyncio.get_running_loop().create_task(
            self._write(_resumed(step, blocked_on), message), name=f"ws-writer-{self._name}"
        )

    async def _write(self, first: Awaitable[None], message: Message) -> None:
        waiting = self._waiting
        assert waiting is not None
        try:
            await first
            while waiting:
                message = _message(waiting.popleft())
                await self._send(message)
        except OSError:
            self._idle()
            self.closing = GONE
        except Exception:  # noqa: BLE001 - logged with its stack trace by _failed()
            self._idle()  # first, so that the 1011 close goes out at once
            self._failed(message)
        else:
            self._idle()

    def _idle(self) -> None:
        self._waiting = None
        self._writer = None

    def _failed(self, message: Message) -> None:
        """A fault of the relay in a send (in an ``except`` block): logged with a reference id
        that the 1011 close carries, unless the close was what failed."""
        reference = uuid.uuid4().hex[:12]
        log.exception(
            "the socket's writer failed",
            extra={"fields": {"reference": reference, "session_id": self._name}},
        )
        if message["type"] == "websocket.close":
            self.closing = GONE
            return
        self.closing = Close(INTERNAL_ERROR, f"internal error; reference {reference}")
        self._start(_message(self.closing))


def _message(item: str | Close) -> Message:
    if isinstance(item, Close):
        return {"type": "websocket.close", "code": item.code, "reason": _reason(item.reason)}
    return {"type": "websocket.send", "text": item}


@types.coroutine
def _resumed(step: Generator[Any, None, None], blocked_on: Any) -> Generator[Any, None, None]:
    """The rest of a send that ran until it yielded ``blocked_on``: the task awaiting this
    waits on ``blocked_on`` as if it had run the send from the start, then runs it on."""
    try:
        yield blocked_on
    except BaseException:
        step.close()
        raise
    yield from step


def _reason(text: str) -> str:
    data = text.encode()
    if len(data) <= MAX_REASON_BYTES:
        return text
    return data[: MAX_REASON_BYTES - 3].decode(errors="ignore") + "..."
