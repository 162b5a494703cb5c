"""A local server speaking OpenAI's chat-completions wire protocol over a real socket, for
the official ``openai`` client (no OpenAI account here). A known model gets a completion with
the usage its ``Usage`` says (prompt, completion and cached prompt tokens), unless the last
message is ``RATE_LIMITED``: that gets OpenAI's 429 error body; an unknown model a 404."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final

RATE_LIMITED: Final = "rate-limit-me"


@dataclass(frozen=True)
class Usage:
    """What the server reports for a model: the model it answers as, and the token counts."""

    served_as: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0


@dataclass
class FakeOpenAI:
    base_url: str
    usage: Mapping[str, Usage]
    requests: list[dict[str, Any]] = field(default_factory=list)


def _completion(request: dict[str, Any], usage: Usage) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": usage.served_as,
        "system_fingerprint": "fp_apex_test",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "ok", "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.prompt_tokens + usage.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": usage.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        },
    }


_RATE_LIMIT_BODY: Final = {
    "error": {
        "message": "Rate limit reached for requests",
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    }
}


@contextmanager
def fake_openai(usage: Mapping[str, Usage]) -> Iterator[FakeOpenAI]:
    """The server on a port of the OS's choosing, for the duration of the block."""
    state = FakeOpenAI("", usage)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.requests.append({"path": self.path, "body": body})
            model = body.get("model")
            if self.path != "/v1/chat/completions":
                self._send(404, {"error": {"message": f"no route {self.path}", "type": "x"}})
            elif body["messages"][-1]["content"] == RATE_LIMITED:
                self._send(429, _RATE_LIMIT_BODY, {"retry-after": "20"})
            elif model in usage:
                self._send(200, _completion(body, usage[model]))
            else:
                error = {"message": f"The model `{model}` does not exist", "type": "invalid"}
                self._send(404, {"error": error})

        def _send(
            self, status: int, body: object, headers: Mapping[str, str] | None = None
        ) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-request-id", uuid.uuid4().hex)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return  # the test asserts on what it received, not on a log

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
