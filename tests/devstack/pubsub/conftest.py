"""Fixtures: the session's emulator, a fresh project per test, a push receiver."""

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient
from google.cloud.pubsub_v1.types import PublisherOptions

from devstack.emulators import EmulatorHosts


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll `condition` until it holds or `timeout` seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


@pytest.fixture(scope="session")
def emulator_host(emulators: EmulatorHosts) -> str:
    """The session's Pub/Sub emulator: tests/conftest.py starts it (or takes it from env)."""
    return emulators.pubsub


@pytest.fixture(scope="session")
def clients(emulator_host: str) -> Iterator[tuple[Any, Any]]:
    publisher = PublisherClient()
    subscriber = SubscriberClient()
    yield publisher, subscriber
    subscriber.close()


@pytest.fixture(scope="session")
def ordered_publisher(emulator_host: str) -> Any:
    """A publisher with message ordering enabled (needed to publish with ordering keys)."""
    return PublisherClient(publisher_options=PublisherOptions(enable_message_ordering=True))


@dataclass
class PubSub:
    """A fresh project on the emulator with the official clients and small helpers."""

    project: str
    publisher: Any
    subscriber: Any

    def topic_path(self, topic_id: str) -> str:
        return f"projects/{self.project}/topics/{topic_id}"

    def subscription_path(self, sub_id: str) -> str:
        return f"projects/{self.project}/subscriptions/{sub_id}"

    def create_topic(self, topic_id: str = "topic") -> str:
        return str(self.publisher.create_topic(name=self.topic_path(topic_id)).name)

    def create_subscription(self, sub_id: str, topic: str, **fields: Any) -> str:
        request = {"name": self.subscription_path(sub_id), "topic": topic, **fields}
        return str(self.subscriber.create_subscription(request=request).name)

    def publish(self, topic: str, data: bytes = b"payload", **attributes: str) -> str:
        return str(self.publisher.publish(topic, data, **attributes).result(timeout=10))

    def pull(self, subscription: str, max_messages: int = 10, timeout: float = 5.0) -> list[Any]:
        """Pull; the emulator holds the call until messages arrive or ~1 s before timeout."""
        response = self.subscriber.pull(
            request={"subscription": subscription, "max_messages": max_messages},
            timeout=timeout,
        )
        return list(response.received_messages)

    def nack(self, subscription: str, ack_ids: list[str]) -> None:
        self.subscriber.modify_ack_deadline(
            request={"subscription": subscription, "ack_ids": ack_ids, "ack_deadline_seconds": 0}
        )

    def ack(self, subscription: str, ack_ids: list[str]) -> None:
        self.subscriber.acknowledge(request={"subscription": subscription, "ack_ids": ack_ids})

    wait_until = staticmethod(wait_until)


@pytest.fixture
def pubsub(clients: tuple[Any, Any]) -> PubSub:
    publisher, subscriber = clients
    return PubSub(f"test-{uuid.uuid4().hex[:12]}", publisher, subscriber)


@dataclass
class PushRequest:
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    received_at: float

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class PushReceiver:
    """A local HTTP endpoint recording pushes and answering with scripted statuses."""

    base_url: str
    requests: list[PushRequest] = field(default_factory=list)
    # Per path: statuses to answer in turn (the last one repeats) and optional delays.
    statuses: dict[str, list[int]] = field(default_factory=dict)
    delays: dict[str, list[float]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    released: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str, statuses: list[int], delays: list[float] | None = None) -> str:
        with self.lock:
            self.statuses[path] = list(statuses)
            self.delays[path] = list(delays or [])
        return f"{self.base_url}{path}"

    def received(self, path: str) -> list[PushRequest]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def wait_for(self, path: str, count: int, timeout: float) -> list[PushRequest]:
        """Wait until `path` got at least `count` requests; returns what it got."""
        wait_until(lambda: len(self.received(path)) >= count, timeout)
        return self.received(path)

    def answer(self, path: str) -> tuple[float, int]:
        with self.lock:
            statuses = self.statuses.get(path, [404])
            status = statuses.pop(0) if len(statuses) > 1 else statuses[0]
            delays = self.delays.get(path, [])
            delay = delays.pop(0) if delays else 0.0
        return delay, status


@pytest.fixture
def push_receiver() -> Iterator[PushReceiver]:
    receiver: PushReceiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with receiver.lock:
                receiver.requests.append(
                    PushRequest(
                        self.path,
                        {k.lower(): v for k, v in self.headers.items()},
                        body,
                        time.monotonic(),
                    )
                )
            delay, status = receiver.answer(self.path)
            if delay and receiver.released.wait(delay):
                return  # test over: drop the connection without answering
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            """Keep the test output clean."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver = PushReceiver(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    receiver.released.set()
    server.shutdown()
    server.server_close()
