"""The fan-out's dispatch (relay/fanout.py): a live event is serialized once, and every watcher
of its run gets that one text, which is the event's frame as JSON."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from google.cloud.pubsub_v1 import SubscriberClient

from relay.fanout import Fanout
from shared.models.events import RunEvent
from shared.topology import load_topology
from tests.support.sockets import refusing_port


class Recorder:
    """A watcher that keeps what it is given; ``leave``: it unwatches on its first event."""

    def __init__(self, fanout: Fanout, run_id: str, *, leave: bool = False) -> None:
        self.fanout, self.run_id, self.leave = fanout, run_id, leave
        self.got: list[tuple[RunEvent, str]] = []
        fanout.watch(run_id, self)

    def on_event(self, event: RunEvent, text: str) -> None:
        self.got.append((event, text))
        if self.leave:
            self.fanout.unwatch(self.run_id, self)

    def on_resync(self) -> None:
        raise AssertionError("no resync here")


@pytest.fixture
def fanout(monkeypatch: pytest.MonkeyPatch) -> Iterator[Fanout]:
    # The client only opens a channel here; dispatch never calls Pub/Sub (a call would be
    # refused).
    with refusing_port() as port:
        monkeypatch.setenv("PUBSUB_EMULATOR_HOST", f"127.0.0.1:{port}")
        loop = asyncio.new_event_loop()
        subscriber = SubscriberClient()
        try:
            yield Fanout(subscriber, "demo-test", "local-test", load_topology(), loop)
        finally:
            subscriber.close()
            loop.close()


def event(run_id: str, seq: int, reasoning: str = "thinking") -> RunEvent:
    return RunEvent(
        run_id=run_id,
        seq=seq,
        event="agent_thinking",
        agent="data",
        data={"reasoning": reasoning, "cost": 1.5, "none": None},
        ts=datetime(2026, 1, 1, 12, 0, 0, 123000, tzinfo=UTC),
    )


def test_each_event_is_serialized_once_for_every_watcher_of_its_run(fanout: Fanout) -> None:
    watchers = [Recorder(fanout, "r1") for _ in range(3)]
    elsewhere = Recorder(fanout, "r2")
    first = event("r1", 1, "naïve € 😀")
    fanout.dispatch(first)
    texts = [text for w in watchers for _, text in w.got]
    assert len(texts) == 3
    assert all(text is texts[0] for text in texts)  # one serialization, shared
    assert json.loads(texts[0]) == first.frame()
    assert "naïve € 😀" in texts[0]  # UTF-8, like the other server frames
    assert elsewhere.got == []


def test_a_watcher_leaving_during_a_dispatch_leaves_the_others_their_event(
    fanout: Fanout,
) -> None:
    leaving = Recorder(fanout, "r1", leave=True)
    staying = [Recorder(fanout, "r1") for _ in range(2)]
    fanout.dispatch(event("r1", 1))
    fanout.dispatch(event("r1", 2))
    assert [e.seq for e, _ in leaving.got] == [1]
    assert all([e.seq for e, _ in w.got] == [1, 2] for w in staying)
    for w in staying:
        fanout.unwatch("r1", w)
    assert fanout.watched_runs() == 0
    fanout.dispatch(event("r1", 3))  # nobody watches: dropped
