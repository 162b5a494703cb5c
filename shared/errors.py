"""The error vocabulary of Apex: one code per kind of fault, with its HTTP status.

Entry points turn an `ApexError` into `{"error": {"code", "message"}}` (HTTP) or an
`{"type": "error", "code", "message"}` frame (WebSocket); anything else that escapes is a
real fault and becomes `internal` with a reference id (DESIGN §2).
"""

from __future__ import annotations

from typing import ClassVar


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
