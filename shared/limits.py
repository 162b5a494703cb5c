"""The request-size limits of every edge (DESIGN §2, §7), defined here once: the HTTP
functions, the relay, the ingest parser, the push messages, the OpenAPI document and the
onboarding answer all read them from this module (it imports nothing, so anything may)."""

from __future__ import annotations

from typing import Final

KIB: Final = 1024
MIB: Final = 1024 * KIB
# A request body of a public function.
MAX_BODY_BYTES: Final = 1 * MIB
# usage_ingest's body and records (the usage batch it publishes holds as many).
MAX_INGEST_BODY_BYTES: Final = 5 * MIB
MAX_INGEST_RECORDS: Final = 5_000
# The most an ingest function's Retry-After says (OTLP exporters give up after about 10 s).
INGEST_MAX_RETRY_AFTER_S: Final = 5
# A WebSocket frame (uvicorn's ``ws_max_size``: a bigger one closes the socket with 1009).
MAX_FRAME_BYTES: Final = 64 * KIB


def size_text(size: int) -> str:
    """``5 MiB``, ``64 KiB``: a limit as the documents write it."""
    for unit, name in ((MIB, "MiB"), (KIB, "KiB")):
        if size >= unit and size % unit == 0:
            return f"{size // unit} {name}"
    return f"{size:,} bytes"
