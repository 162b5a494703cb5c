"""Where a webhook may go (DESIGN §11): https to public addresses only.

An IPv6 address that carries an IPv4 one (IPv4-mapped ``::ffff:a.b.c.d``, IPv4-translated
``::ffff:0:a.b.c.d``, IPv4-compatible ``::a.b.c.d``, NAT64 ``64:ff9b::/96`` and 6to4
``2002::/16``) is judged by the IPv4 address inside it: ``::ffff:10.0.0.1`` is 10.0.0.1, a
private address, whatever the Python version's ``is_global`` says of the IPv6 form (3.11
calls ``64:ff9b::a00:1`` global). Then only ``is_global`` addresses that are not multicast
pass, and never the local-use NAT64 prefix ``64:ff9b:1::/48`` (its embedding varies with the
prefix length, so it cannot be unwrapped).

``allow_loopback`` (``APEX_WEBHOOKS_ALLOW_LOOPBACK``, the local stack only: production
settings refuse it) lets loopback addresses through as well, over ``http`` or ``https``.

At creation a URL whose host is an IP literal is judged at once (422); a host name is
resolved at delivery, where every address it resolves to must pass and the connection goes
to an address checked (``resolve``): no second lookup between check and connect.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Final
from urllib.parse import SplitResult, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_CHARS: Final = 2048
_MAPPED: Final = ipaddress.ip_network("::ffff:0:0/96")
_TRANSLATED: Final = ipaddress.ip_network("::ffff:0:0:0/96")
_COMPATIBLE: Final = ipaddress.ip_network("::/96")
_NAT64: Final = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL: Final = ipaddress.ip_network("64:ff9b:1::/48")
_SIXTOFOUR: Final = ipaddress.ip_network("2002::/16")
_LOW32: Final = 0xFFFFFFFF


class UnsafeWebhook(ValueError):
    """A webhook URL or address Apex will not send to; the message says why."""


def unwrap(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 form carries (mapped, translated, compatible, NAT64, 6to4),
    else ``address`` itself."""
    if isinstance(address, ipaddress.IPv4Address):
        return address
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _TRANSLATED or address in _NAT64:
        return ipaddress.IPv4Address(int(address) & _LOW32)
    if address in _SIXTOFOUR:
        six_to_four = address.sixtofour
        assert six_to_four is not None  # every address of 2002::/16 has one
        return six_to_four
    if address in _COMPATIBLE and address != ipaddress.IPv6Address("::1"):
        return ipaddress.IPv4Address(int(address) & _LOW32)
    return address


def is_loopback(address: IPAddress) -> bool:
    """127/8, ::1, and the IPv4-mapped form of 127/8 (which the system routes to 127/8);
    never a NAT64 or 6to4 form, which would leave the host."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def check_address(address: IPAddress, *, allow_loopback: bool) -> None:
    """Raise ``UnsafeWebhook`` unless a webhook may connect to ``address``."""
    if allow_loopback and is_loopback(address):
        return
    if isinstance(address, ipaddress.IPv6Address) and address in _NAT64_LOCAL:
        raise UnsafeWebhook(f"{address} is a local-use NAT64 address, not a public one")
    inner = unwrap(address)
    if not inner.is_global or inner.is_multicast:
        shown = f"{address} ({inner})" if inner != address else str(address)
        raise UnsafeWebhook(f"{shown} is not a public address")


@dataclass(frozen=True, slots=True)
class Target:
    """A webhook URL taken apart: what to connect to and what to say in the request."""

    scheme: str
    host: str  # a name, or an IP literal without brackets
    port: int
    path: str  # path and query, as sent in the request line

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def parse_url(url: str, *, allow_loopback: bool) -> Target:
    """The URL's parts, or ``UnsafeWebhook``: https only (http only to loopback, and only
    under ``allow_loopback``), a host, no credentials, no fragment; an IP literal host must
    pass ``check_address`` now."""
    if len(url) > MAX_URL_CHARS:
        raise UnsafeWebhook(f"longer than {MAX_URL_CHARS} characters")
    if not url.isprintable() or any(c.isspace() for c in url):
        raise UnsafeWebhook("must not contain spaces or control characters")
    try:
        parts: SplitResult = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise UnsafeWebhook(f"not a URL: {e}") from e
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    if scheme not in ("https", "http"):
        raise UnsafeWebhook("must be an https URL")
    if not host:
        raise UnsafeWebhook("has no host")
    if parts.username is not None or parts.password is not None:
        raise UnsafeWebhook("must not carry credentials (user:password@)")
    if parts.fragment:
        raise UnsafeWebhook("must not have a fragment")
    literal = _literal(host)
    if literal is not None:
        check_address(literal, allow_loopback=allow_loopback)
    if scheme == "http" and not (allow_loopback and _loopback_host(host, literal)):
        raise UnsafeWebhook("must be an https URL")
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(scheme, host, port or (443 if scheme == "https" else 80), path)


def _loopback_host(host: str, literal: IPAddress | None) -> bool:
    if literal is not None:
        return is_loopback(literal)
    return host.lower() == "localhost"


def resolve(target: Target, *, allow_loopback: bool) -> list[IPAddress]:
    """Every address ``target.host`` resolves to, each checked (``UnsafeWebhook`` if any
    fails: a name that also points inside is refused whole). Connect to these, and only these."""
    literal = _literal(target.host)
    if literal is not None:
        check_address(literal, allow_loopback=allow_loopback)
        return [literal]
    try:
        infos = socket.getaddrinfo(
            target.host, target.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
    except socket.gaierror as e:
        raise UnsafeWebhook(f"cannot resolve {target.host}: {e.strerror}") from e
    found: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        # An IPv6 sockaddr may carry a scope ("fe80::1%eth0"): never a public address anyway.
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        check_address(address, allow_loopback=allow_loopback)
        if address not in found:
            found.append(address)
    if not found:
        raise UnsafeWebhook(f"{target.host} resolves to no address")
    if target.scheme == "http" and not all(is_loopback(a) for a in found):
        raise UnsafeWebhook("http is only for loopback receivers on the local stack")
    return found
