"""The error vocabulary of Apex: one code per kind of fault, with its HTTP status, and the
WebSocket close codes beside them.

Entry points turn an `ApexError` into `{"error": {"code", "message"}}` (HTTP) or an
`{"type": "error", "code", "message"}` frame (WebSocket); anything else that escapes is a
real fault and becomes `internal` with a reference id (DESIGN §2; ``shared.edge.fault_of``).
A socket ended by an error is closed with the code ``close_code`` gives it.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum
from typing import ClassVar, Final


class ApexError(Exception):
    code: ClassVar[str] = "internal"
    http_status: ClassVar[int] = 500

    def __init__(self, message: str, *, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s

    def body(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}


class BadRequest(ApexError):
    code = "bad_request"
    http_status = 400


class Unauthenticated(ApexError):
    code = "unauthenticated"
    http_status = 401


class Forbidden(ApexError):
    code = "forbidden"
    http_status = 403


class NotFound(ApexError):
    code = "not_found"
    http_status = 404


class MethodNotAllowed(ApexError):
    code = "method_not_allowed"
    http_status = 405


class Conflict(ApexError):
    code = "conflict"
    http_status = 409


class Gone(ApexError):
    """It existed and no longer can be used: an invite past its expiry (DESIGN §9)."""

    code = "gone"
    http_status = 410


class ThreadBusy(ApexError):
    """A run of this thread is still going and the client asked not to queue (DESIGN §3.4)."""

    code = "thread_busy"
    http_status = 409


class PayloadTooLarge(ApexError):
    code = "payload_too_large"
    http_status = 413


class UnsupportedMediaType(ApexError):
    code = "unsupported_media_type"
    http_status = 415


class ValidationFailed(ApexError):
    code = "validation_failed"
    http_status = 422


class RateLimited(ApexError):
    code = "rate_limited"
    http_status = 429


class Unavailable(ApexError):
    """A dependency (Firestore, Pub/Sub, Google's certificates) did not answer: retry later."""

    code = "unavailable"
    http_status = 503


class Internal(ApexError):
    code = "internal"
    http_status = 500


class CloseCode(IntEnum):
    """The WebSocket close codes the relay sends (RFC 6455 §7.4.1 and IANA's registry), as
    docs/relay.md lists them."""

    # The client went away without a close frame (never sent: what a send after that means).
    ABNORMAL = 1006
    # A bad, expired or revoked token, no auth frame in time, another user's token.
    POLICY_VIOLATION = 1008
    # A frame over the limit (uvicorn's ``ws_max_size``: shared.edge.MAX_FRAME_BYTES).
    MESSAGE_TOO_BIG = 1009
    # A fault of the relay itself; the reason carries the logged reference id.
    INTERNAL_ERROR = 1011
    # The instance is restarting (SIGTERM; sent by uvicorn).
    SERVICE_RESTART = 1012
    # A temporary condition: a client that reads too slowly, a dependency that is down.
    TRY_AGAIN_LATER = 1013


# The close of a socket ended by an error of this kind (most errors are an error frame and
# the socket stays open; these are the codes for when it does not).
_CLOSE_CODES: Final[Mapping[type[ApexError], CloseCode]] = {
    BadRequest: CloseCode.POLICY_VIOLATION,
    Unauthenticated: CloseCode.POLICY_VIOLATION,
    Forbidden: CloseCode.POLICY_VIOLATION,
    NotFound: CloseCode.POLICY_VIOLATION,
    MethodNotAllowed: CloseCode.POLICY_VIOLATION,
    Conflict: CloseCode.POLICY_VIOLATION,
    Gone: CloseCode.POLICY_VIOLATION,
    ThreadBusy: CloseCode.POLICY_VIOLATION,
    PayloadTooLarge: CloseCode.MESSAGE_TOO_BIG,
    UnsupportedMediaType: CloseCode.POLICY_VIOLATION,
    ValidationFailed: CloseCode.POLICY_VIOLATION,
    RateLimited: CloseCode.TRY_AGAIN_LATER,
    Unavailable: CloseCode.TRY_AGAIN_LATER,
    Internal: CloseCode.INTERNAL_ERROR,
    ApexError: CloseCode.INTERNAL_ERROR,
}


def close_code(error: ApexError) -> CloseCode:
    """The close code of a socket that ``error`` ends (its nearest listed class)."""
    return next(_CLOSE_CODES[kind] for kind in type(error).__mro__ if kind in _CLOSE_CODES)
