"""Security headers of the relay's HTTP responses (issue 16 item 6): the pages hold a
signed-in user's tokens, so a script that is not the relay's own must not run, and the page
may talk only to the relay, the functions it calls and Firebase Auth.

- ``Content-Security-Policy`` on every response: scripts and styles only from the relay
  itself (no inline script, no ``eval``), connections only to the relay (its HTTP and
  WebSocket origins), the configured function URLs and the Firebase Auth endpoints in use
  (the Auth emulator's origin when it is configured, Google's otherwise), no plugins, no
  ``<base>``, forms only to the relay, and no framing (``frame-ancestors 'none'``).
- ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: no-referrer`` everywhere.
- ``Strict-Transport-Security`` only when the request came over https (Cloud Run terminates
  TLS and says so in ``X-Forwarded-Proto``): on http it would be ignored, and locally it
  would pin the developer's browser to https for a host that has none.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Final
from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Google's Firebase Auth REST endpoints, which the browser SDK calls to sign in and refresh.
FIREBASE_AUTH_ORIGINS: Final = (
    "https://identitytoolkit.googleapis.com",
    "https://securetoken.googleapis.com",
)
HSTS: Final = "max-age=31536000; includeSubDomains"
_HOST: Final = re.compile(
    r"^[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]{2,45}\](:[0-9]{1,5})?$"
)


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not an http(s) URL: {url!r}")
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(
    relay_host: str, secure: bool, function_urls: Iterable[str], auth_emulator_host: str | None
) -> str:
    """The policy for a page served from ``relay_host`` (its ``Host``)."""
    ws = "wss" if secure else "ws"
    # The page's own WebSocket: CSP 'self' does not cover ws(s) in every browser. A Host that
    # is not a plain host[:port] (only the requester's own page would see it) adds nothing.
    own_socket = [f"{ws}://{relay_host}"] if _HOST.match(relay_host) else []
    connect = [
        "'self'",
        *own_socket,
        *sorted({origin_of(url) for url in function_urls}),
        *(
            [f"http://{auth_emulator_host}"]
            if auth_emulator_host is not None
            else list(FIREBASE_AUTH_ORIGINS)
        ),
    ]
    directives = {
        "default-src": "'none'",
        "script-src": "'self'",
        "style-src": "'self'",
        "img-src": "'self' data:",
        "font-src": "'self'",
        "connect-src": " ".join(connect),
        "manifest-src": "'self'",
        "object-src": "'none'",
        "base-uri": "'none'",
        "form-action": "'self'",
        "frame-ancestors": "'none'",
    }
    return "; ".join(f"{name} {value}" for name, value in directives.items())


def is_secure(scope: Scope, headers: Headers) -> bool:
    forwarded = headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return forwarded == "https" or scope.get("scheme") == "https"


class SecurityHeaders:
    """ASGI middleware adding the headers to every HTTP response (WebSockets pass through)."""

    def __init__(
        self, app: ASGIApp, function_urls: Iterable[str], auth_emulator_host: str | None
    ) -> None:
        self.app = app
        self.function_urls = tuple(function_urls)
        self.auth_emulator_host = auth_emulator_host
        for url in self.function_urls:
            origin_of(url)  # a malformed URL fails at start-up, not in a browser

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_headers = Headers(scope=scope)
        secure = is_secure(scope, request_headers)
        added = self.headers_for(request_headers.get("host", "localhost"), secure)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in added.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def headers_for(self, host: str, secure: bool) -> Mapping[str, str]:
        headers = {
            "Content-Security-Policy": content_security_policy(
                host, secure, self.function_urls, self.auth_emulator_host
            ),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        }
        if secure:
            headers["Strict-Transport-Security"] = HSTS
        return headers
