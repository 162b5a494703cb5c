"""A forwarding HTTP proxy on a real socket between an exporter and a function, as a load
balancer stands there: it passes every POST on and the answer back, and records what went
through. With ``lose_first`` it forwards the first request but answers it 503 with
Retry-After (the function accepted it; the answer was lost on the way back), so the exporter
sends the same export again."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

# Hop-by-hop and recomputed headers: not passed on.
_SKIP = {"host", "content-length", "connection", "transfer-encoding", "keep-alive"}


@dataclass(frozen=True)
class Exchange:
    path: str
    content_type: str | None
    content_encoding: str | None
    upstream_status: int
    status: int  # what the client got


@dataclass
class Proxy:
    url: str = ""
    exchanges: list[Exchange] = field(default_factory=list)


@contextmanager
def flaky_proxy(target: str, *, lose_first: bool = False) -> Iterator[Proxy]:
    """A proxy to ``target`` (a function's URL); the request path is appended to it."""
    state = Proxy()
    lock = threading.Lock()
    upstream = httpx.Client(timeout=60)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self._body()
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _SKIP}
            answer = upstream.post(target.rstrip("/") + self.path, content=body, headers=headers)
            with lock:
                lose = lose_first and not state.exchanges
                state.exchanges.append(
                    Exchange(
                        self.path,
                        self.headers.get("Content-Type"),
                        self.headers.get("Content-Encoding"),
                        answer.status_code,
                        503 if lose else answer.status_code,
                    )
                )
            if lose:
                self._send(503, b"upstream answer lost", {"Retry-After": "1"})
            else:
                passed = {
                    k: v
                    for k, v in answer.headers.items()
                    if k.lower() not in _SKIP | {"date", "content-encoding"}
                }
                self._send(answer.status_code, answer.content, passed)

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
                return self.rfile.read(int(self.headers.get("Content-Length", "0")))
            body = bytearray()  # Node's http client streams a body in chunks
            while size := int(self.rfile.readline().split(b";")[0], 16):
                body += self.rfile.read(size)
                self.rfile.readline()  # the chunk's CRLF
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return bytes(body)

        def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return  # the exchanges are the record

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        upstream.close()
