"""Command line entry point: `python -m devstack.pubsub --host 127.0.0.1 --port 8085`."""

import argparse
import asyncio
import json
import logging
import signal
import socket
import sys

import httpx

from devstack.pubsub.push import PushWorker
from devstack.pubsub.server import build_server
from devstack.pubsub.state import Broker, PushDeliverer, SubscriptionState

log = logging.getLogger("devstack.pubsub")

# LogRecord attributes that are plumbing, not fields worth printing.
_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line, in the shape Cloud Logging understands."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {"severity": record.levelname, "message": record.getMessage()}
        entry.update({k: v for k, v in record.__dict__.items() if k not in _RESERVED})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.pubsub", description="Local Google Cloud Pub/Sub emulator."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8085, help="port to listen on (0 = any)")
    parser.add_argument("--debug", action="store_true", help="log every message (DEBUG)")
    return parser.parse_args(argv)


def _port_problem(host: str, port: int) -> str | None:
    """Why the port cannot be used, checked up front so the error is ours rather than
    gRPC's native log line; None when it is free."""
    if port == 0:
        return None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.create_server((host, port), family=family):
            return None
    except OSError as exc:
        return f"cannot bind {host}:{port}: {exc.strerror or exc}"


KEEPALIVE_EXPIRY_S = 1.0


async def serve(host: str, port: int) -> int:
    # Idle connections are dropped before an endpoint's own keep-alive timeout (gunicorn's,
    # under functions-framework, is 2 s; httpx keeps them 5 s): a push sent on a connection
    # the server has just closed fails before it arrives, and counted as a delivery attempt
    # that the endpoint never saw (a retried webhook test caught attempt 3 of 5 missing).
    limits = httpx.Limits(max_connections=256, keepalive_expiry=KEEPALIVE_EXPIRY_S)
    async with httpx.AsyncClient(limits=limits) as http:

        def start_push(sub: SubscriptionState) -> PushDeliverer:
            return PushWorker(sub, http)

        broker = Broker(start_push)
        server = build_server(broker)
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        problem = _port_problem(host, port)
        if problem is None:
            try:
                port = server.add_insecure_port(address)
            except RuntimeError as exc:
                problem = str(exc)
        if problem is not None:
            log.error("cannot listen", extra={"address": address, "error": problem})
            return 1
        # Installed before announcing readiness so an early signal still stops us cleanly.
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await server.start()
        log.info("listening", extra={"host": host, "port": port})
        await stop.wait()
        log.info("stopping")
        # Stop the server first so streaming clients see the server going away (and retry)
        # rather than their subscriptions disappearing.
        await server.stop(grace=1)
        broker.close()
    log.info("stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    log.addHandler(handler)
    log.setLevel(logging.DEBUG if args.debug else logging.INFO)
    log.propagate = False
    return asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    sys.exit(main())
