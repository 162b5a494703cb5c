"""What a socket sends (relay/outbox.py), under uvicorn with the relay's WebSocket settings and
a real client: frames in order whether written at once or held behind a full buffer, a client
that reads too slowly closed with 1013, and nothing raised for a client already gone."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable
from typing import Final

import uvicorn
from starlette.types import Receive, Scope, Send
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from relay.__main__ import WS_DEFLATE, WS_IMPL
from relay.outbox import MAX_PENDING_FRAMES, Outbox

# Big enough that the kernel's and the transport's buffers fill after a few thousand frames.
PAYLOAD: Final = "x" * 4096
# Sent after the first frame had to wait (the writer task's path).
AFTER_FULL: Final = 1_000

Scenario = Callable[[Outbox, Receive], Awaitable[None]]


def frame(i: int) -> str:
    return json.dumps({"i": i, "pad": PAYLOAD})


async def _serve(scenario: Scenario, client: Callable[[ClientConnection], Awaitable[None]]) -> None:
    """``scenario`` serves one socket through an ``Outbox``; ``client`` is its peer."""
    done = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "websocket"
        outbox = Outbox(send, "test")
        await receive()  # websocket.connect
        await outbox.accept()
        try:
            await scenario(outbox, receive)
        finally:
            outbox.stop()
            done.set()

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, ws=WS_IMPL, ws_per_message_deflate=WS_DEFLATE, lifespan="off", log_config=None
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        async with connect(f"ws://127.0.0.1:{port}/ws", max_size=None) as ws:
            await client(ws)
        await asyncio.wait_for(done.wait(), 30)
    finally:
        server.should_exit = True
        await serving


async def _until_full(outbox: Outbox) -> int:
    """Send numbered frames until one has to wait; how many were sent."""
    sent = 0
    while outbox.waiting == 0:
        outbox.send_text(frame(sent))
        sent += 1
        if sent % 100 == 0:
            await asyncio.sleep(0)  # let the loop write what it can
    return sent


async def _read_all(ws: ClientConnection) -> tuple[list[int], int, str]:
    """Every frame's number until the close; and the close's code and reason."""
    numbers: list[int] = []
    try:
        while True:
            numbers.append(json.loads(await asyncio.wait_for(ws.recv(), 30))["i"])
    except ConnectionClosed as e:
        closed = e.rcvd
    if closed is None:
        raise AssertionError("the connection ended without a close frame")
    return numbers, closed.code, closed.reason


def test_frames_keep_their_order_through_a_full_buffer_and_the_close_comes_last() -> None:
    full = asyncio.Event()
    sent: list[int] = []

    async def scenario(outbox: Outbox, receive: Receive) -> None:
        count = await _until_full(outbox)
        for i in range(count, count + AFTER_FULL):
            outbox.send_text(frame(i))
        sent.append(count + AFTER_FULL)
        outbox.close(1000, "done")
        full.set()
        while (await receive())["type"] != "websocket.disconnect":
            pass

    async def client(ws: ClientConnection) -> None:
        await asyncio.wait_for(full.wait(), 60)  # not reading till then: the buffers fill
        numbers, code, reason = await _read_all(ws)
        assert numbers == list(range(sent[0]))
        assert (code, reason) == (1000, "done")

    asyncio.run(_serve(scenario, client))


def test_a_client_that_reads_too_slowly_is_closed_with_1013_after_what_it_was_sent() -> None:
    closed = asyncio.Event()

    async def scenario(outbox: Outbox, receive: Receive) -> None:
        sent = await _until_full(outbox)
        while outbox.closing is None:
            outbox.send_text(frame(sent))
            sent += 1
        assert outbox.closing.code == 1013
        assert outbox.waiting == 1  # the close alone: the frames waiting were dropped
        assert sent >= MAX_PENDING_FRAMES
        closed.set()
        while (await receive())["type"] != "websocket.disconnect":
            pass

    async def client(ws: ClientConnection) -> None:
        await asyncio.wait_for(closed.wait(), 60)
        numbers, code, reason = await _read_all(ws)
        assert numbers == list(range(len(numbers)))  # a prefix, in order
        assert (code, reason) == (1013, "too many frames waiting; reconnect and resume")

    asyncio.run(_serve(scenario, client))


def test_sending_to_a_client_that_is_gone_raises_nothing_and_sends_nothing() -> None:
    async def scenario(outbox: Outbox, receive: Receive) -> None:
        assert (await receive())["type"] == "websocket.disconnect"
        outbox.send_text(frame(0))
        assert outbox.closing is not None
        assert outbox.closing.code == 1006
        outbox.send_text(frame(1))
        outbox.close(1000, "too late")
        assert outbox.waiting == 0

    async def client(ws: ClientConnection) -> None:
        await ws.close()

    asyncio.run(_serve(scenario, client))
