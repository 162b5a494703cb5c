"""The Firestore emulator's write log (devstack/patches/: the pinned patch adds it): how
often each document was written, to check Firestore's sustained limit of about one write a
second per document, which the emulator itself never enforces.

The patch serves it as a small gRPC service on the emulator's own port, JSON in and out:
``Start`` begins logging one project's committed writes (afresh), ``Stats`` reports them,
``Stop`` ends it. A project nobody started is not logged (no cost to the rest).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

import grpc
from pydantic import BaseModel, ConfigDict

SERVICE: Final = "/apex.emulator.WriteLog/"
TIMEOUT_S: Final = 30.0


class DocumentWrites(BaseModel):
    """One document's committed writes: how many, the first and last (ms since the epoch),
    and the most in any one-second span."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str  # below ``.../documents/``
    writes: int
    first_ms: int
    last_ms: int
    max_in_1s: int


class WriteStats(BaseModel):
    """The writes logged for a project (under a path prefix): totals and the hottest."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    documents: int
    writes: int
    first_ms: int | None
    last_ms: int | None
    hottest: list[DocumentWrites]

    def hottest_rate(self, over_s: float) -> float:
        """The hottest document's writes a second, averaged over ``over_s`` seconds."""
        return self.hottest[0].writes / over_s if self.hottest else 0.0


def _encode(value: dict[str, Any]) -> bytes:
    return json.dumps(value).encode()


def _decode(data: bytes) -> Any:
    return json.loads(data) if data else {}


class WriteLog:
    """A client of the write log of the emulator at ``host`` (``host:port``)."""

    def __init__(self, host: str) -> None:
        self._channel = grpc.insecure_channel(host)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> WriteLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, request: dict[str, Any]) -> Any:
        call = self._channel.unary_unary(
            SERVICE + method, request_serializer=_encode, response_deserializer=_decode
        )
        return call(request, timeout=TIMEOUT_S)

    def start(self, project: str) -> None:
        """Log the project's committed writes from now on (forgetting any logged before)."""
        self._call("Start", {"project": project})

    def stop(self, project: str) -> None:
        self._call("Stop", {"project": project})

    def stats(self, project: str, *, top: int = 10, prefix: str = "") -> WriteStats:
        """The writes logged since ``start``: totals and the ``top`` documents with the most
        writes, of the documents whose path (below ``documents/``) starts with ``prefix``."""
        return WriteStats.model_validate(
            self._call("Stats", {"project": project, "top": top, "prefix": prefix})
        )

    @contextmanager
    def logging(self, project: str) -> Iterator[ProjectWrites]:
        """Log the project's writes while the block runs."""
        self.start(project)
        try:
            yield ProjectWrites(self, project)
        finally:
            self.stop(project)


class ProjectWrites:
    """The write log of one project, while it is logged (``WriteLog.logging``)."""

    def __init__(self, log: WriteLog, project: str) -> None:
        self._log = log
        self.project = project

    def stats(self, *, top: int = 10, prefix: str = "") -> WriteStats:
        return self._log.stats(self.project, top=top, prefix=prefix)
