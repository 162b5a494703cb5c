"""Readiness probes: each makes one real request of the service's own protocol."""

from __future__ import annotations

import grpc
import httpx
from google.cloud.firestore_v1.types import BatchGetDocumentsRequest
from google.pubsub_v1.types import ListTopicsRequest

from devstack.procs import StackError

PROBE_PROJECT = "demo-apex-probe"


def auth_emulator(host: str) -> bool:
    """The Auth emulator answers its root with `{"authEmulator": {"ready": true}}`."""
    try:
        r = httpx.get(f"http://{host}/", timeout=2.0)
    except httpx.TransportError:
        return False
    return r.status_code == 200 and bool(r.json().get("authEmulator", {}).get("ready"))


def _grpc_answers(
    host: str, method: str, request: bytes, ok_codes: set[grpc.StatusCode], streaming: bool = False
) -> bool:
    with grpc.insecure_channel(host) as channel:
        try:
            if streaming:
                list(channel.unary_stream(method, bytes, bytes)(request, timeout=2.0))
            else:
                channel.unary_unary(method, bytes, bytes)(request, timeout=2.0)
        except grpc.RpcError as e:
            code = e.code()
            if code in {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}:
                return False  # not listening yet
            if code in ok_codes:
                return True
            # Something answers on that port, but not the emulator we expect.
            raise StackError(f"{host} answered {method} with {code.name}: {e.details()}") from e
    return True


def firestore_emulator(host: str) -> bool:
    # BatchGetDocuments is what the Python client's get() uses (the emulator lacks GetDocument).
    database = f"projects/{PROBE_PROJECT}/databases/(default)"
    req = BatchGetDocumentsRequest.pb()(
        database=database, documents=[f"{database}/documents/probe/ready"]
    ).SerializeToString()
    return _grpc_answers(
        host, "/google.firestore.v1.Firestore/BatchGetDocuments", req, set(), streaming=True
    )


def pubsub_emulator(host: str) -> bool:
    req = ListTopicsRequest.pb()(project=f"projects/{PROBE_PROJECT}").SerializeToString()
    return _grpc_answers(host, "/google.pubsub.v1.Publisher/ListTopics", req, set())


def http_answers(url: str) -> bool:
    """Any HTTP response means the server is up (a function may well say 405 to GET)."""
    try:
        httpx.get(url, timeout=2.0)
    except httpx.TransportError:
        return False
    return True
