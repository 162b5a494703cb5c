"""One webhook POST (DESIGN §11), to an address that was checked.

The host is resolved once (``addresses.resolve``: every address checked), and the connection
goes to those addresses, in order, with TLS's SNI and certificate check and the ``Host``
header naming the host of the URL: no second lookup can swap the address between check and
connect. No redirect is followed (a 3xx is a failed delivery). The whole exchange, connect
to the status line, has ``TIMEOUT_S``: a watchdog shuts the socket when it runs out, so a
receiver that trickles its answer cannot hold the worker. At most ``MAX_RESPONSE_BYTES`` of
the response body are read; the rest is ignored.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Final

from shared.budgets.addresses import IPAddress, Target, UnsafeWebhook, parse_url, resolve

TIMEOUT_S: Final = 5.0
MAX_RESPONSE_BYTES: Final = 64 * 1024
USER_AGENT: Final = "Apex-Webhooks/1"


class DeliveryFailed(Exception):
    """The receiver did not take the notification (a non-2xx status, a timeout, a refused
    or broken connection); the message says which, without the URL's path or query."""


@dataclass(frozen=True, slots=True)
class Delivered:
    status: int
    address: str
    elapsed_s: float


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to ``address``, with SNI and the certificate check for ``host``."""

    def __init__(
        self, target: Target, address: IPAddress, context: ssl.SSLContext, timeout: float
    ) -> None:
        super().__init__(target.host, target.port, timeout=timeout, context=context)
        self._address = address
        self._context_for_host = context

    def connect(self) -> None:
        raw = socket.create_connection((str(self._address), self.port), timeout=self.timeout)
        self.sock = self._context_for_host.wrap_socket(raw, server_hostname=self.host)


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Plain HTTP to ``address`` (loopback receivers on the local stack only)."""

    def __init__(self, target: Target, address: IPAddress, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((str(self._address), self.port), timeout=self.timeout)


def post(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    allow_loopback: bool,
    context: ssl.SSLContext | None = None,
) -> Delivered:
    """POST ``body`` to ``url``; ``UnsafeWebhook`` if the URL or an address it resolves to is
    not allowed, ``DeliveryFailed`` unless the receiver answered 2xx in time.

    ``context``: the TLS context (default: the system's trust store, hostname checked)."""
    target = parse_url(url, allow_loopback=allow_loopback)
    started = time.monotonic()
    addresses = resolve(target, allow_loopback=allow_loopback)
    errors: list[str] = []
    for address in addresses:
        remaining = TIMEOUT_S - (time.monotonic() - started)
        if remaining <= 0:
            errors.append("timed out")
            break
        try:
            status = _exchange(target, address, body, headers, context, remaining)
        except _Unreachable as e:
            errors.append(f"{address}: {e}")
            continue  # the next address (each was checked); nothing was sent to this one
        elapsed = time.monotonic() - started
        if 200 <= status < 300:
            return Delivered(status, str(address), elapsed)
        redirect = " (redirects are not followed)" if 300 <= status < 400 else ""
        raise DeliveryFailed(f"{target.host} answered {status}{redirect}")
    raise DeliveryFailed(f"cannot reach {target.host}: {'; '.join(errors) or 'no address'}")


class _Unreachable(Exception):
    """The connection could not be made (so the request was never sent)."""


def _exchange(
    target: Target,
    address: IPAddress,
    body: bytes,
    headers: dict[str, str],
    context: ssl.SSLContext | None,
    budget_s: float,
) -> int:
    connection: http.client.HTTPConnection
    if target.scheme == "https":
        connection = _PinnedHTTPSConnection(
            target, address, context or ssl.create_default_context(), budget_s
        )
    else:
        connection = _PinnedHTTPConnection(target, address, budget_s)
    expired = threading.Event()

    def shut() -> None:
        # Ends any read or write in progress at once (a receiver trickling bytes included).
        expired.set()
        sock = connection.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                return  # already closed: nothing left to interrupt

    watchdog = threading.Timer(budget_s, shut)
    watchdog.daemon = True
    watchdog.start()
    try:
        try:
            connection.connect()
        except (OSError, ssl.SSLError) as e:
            if expired.is_set():
                raise DeliveryFailed(f"{target.host} did not answer within {TIMEOUT_S:g} s") from e
            raise _Unreachable(_reason(e)) from e
        try:
            connection.request(
                "POST",
                target.path,
                body=body,
                headers={
                    "Host": target.host_header,
                    "User-Agent": USER_AGENT,
                    "Content-Type": "application/json",
                    "Connection": "close",
                    **headers,
                },
            )
            response = connection.getresponse()
            response.read(MAX_RESPONSE_BYTES)  # the rest of a long answer is not read
            return response.status
        except (OSError, http.client.HTTPException, ssl.SSLError) as e:
            if expired.is_set():
                raise DeliveryFailed(f"{target.host} did not answer within {TIMEOUT_S:g} s") from e
            raise DeliveryFailed(f"{target.host}: {_reason(e)}") from e
    finally:
        watchdog.cancel()
        connection.close()


def _reason(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:300]


__all__ = [
    "MAX_RESPONSE_BYTES",
    "TIMEOUT_S",
    "Delivered",
    "DeliveryFailed",
    "UnsafeWebhook",
    "post",
]
