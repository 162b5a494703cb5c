"""Where a webhook may go (DESIGN §11): public addresses only, IPv6 forms of IPv4 addresses
judged by the IPv4 address inside, https only, loopback only under the local-stack setting."""

from __future__ import annotations

import ipaddress

import pytest

from shared.budgets.addresses import (
    Target,
    UnsafeWebhook,
    check_address,
    parse_url,
    resolve,
    unwrap,
)

# Private, reserved, link-local, metadata and shared addresses, and IPv6 forms that carry
# them: none may pass, whatever the Python version's is_global says of the IPv6 form.
REFUSED = [
    "10.0.0.1",
    "172.16.5.4",
    "192.168.1.1",
    "169.254.169.254",  # the metadata server
    "100.64.0.1",  # carrier-grade NAT
    "0.0.0.0",  # noqa: S104 - an address to refuse, not to bind
    "255.255.255.255",
    "224.0.1.1",  # multicast (is_global in Python)
    "fe80::1",
    "fc00::1",
    "::",
    "::ffff:10.0.0.1",  # IPv4-mapped
    "::ffff:169.254.169.254",
    "::ffff:0:a00:1",  # IPv4-translated
    "::a00:1",  # IPv4-compatible (Python 3.11 calls it global)
    "::a9fe:a9fe",
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1 (Python 3.11 calls it global)
    "64:ff9b::a9fe:a9fe",  # NAT64 of the metadata server
    "64:ff9b:1::808:808",  # local-use NAT64: never
    "2002:a00:1::",  # 6to4 of 10.0.0.1 (Python 3.11 calls it global)
    "2002:a9fe:a9fe::1",  # 6to4 of the metadata server
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "2001::1",  # Teredo
]
PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "2606:4700:4700::1111",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",
    "2002:808:808::1",
]
LOOPBACK = ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"]


@pytest.mark.parametrize("text", REFUSED)
def test_private_and_wrapped_private_addresses_are_refused(text: str) -> None:
    address = ipaddress.ip_address(text)
    with pytest.raises(UnsafeWebhook, match=r"not a public address|local-use NAT64"):
        check_address(address, allow_loopback=False)
    with pytest.raises(UnsafeWebhook):
        check_address(address, allow_loopback=True)


@pytest.mark.parametrize("text", PUBLIC)
def test_public_addresses_pass(text: str) -> None:
    check_address(ipaddress.ip_address(text), allow_loopback=False)


@pytest.mark.parametrize("text", LOOPBACK)
def test_loopback_only_under_the_local_setting(text: str) -> None:
    address = ipaddress.ip_address(text)
    with pytest.raises(UnsafeWebhook):
        check_address(address, allow_loopback=False)
    check_address(address, allow_loopback=True)


@pytest.mark.parametrize(
    ("wrapped", "inner"),
    [
        ("::ffff:10.1.2.3", "10.1.2.3"),
        ("::ffff:0:10.1.2.3", "10.1.2.3"),
        ("::10.1.2.3", "10.1.2.3"),
        ("64:ff9b::10.1.2.3", "10.1.2.3"),
        ("2002:0a01:0203::5", "10.1.2.3"),
        ("2606:4700:4700::1111", "2606:4700:4700::1111"),
        ("::1", "::1"),
    ],
)
def test_unwrap_finds_the_ipv4_address_inside(wrapped: str, inner: str) -> None:
    assert unwrap(ipaddress.ip_address(wrapped)) == ipaddress.ip_address(inner)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://example.com/hook", "https"),
        ("ftp://example.com/hook", "https"),
        ("https://169.254.169.254/latest/meta-data", "not a public address"),
        ("http://169.254.169.254/", "not a public address"),
        ("http://10.0.0.1/", "not a public address"),
        ("https://10.0.0.1/", "not a public address"),
        ("https://[::ffff:10.0.0.1]/", "not a public address"),
        ("https://[::ffff:a9fe:a9fe]/", "not a public address"),
        ("https://[64:ff9b::a00:1]/", "not a public address"),
        ("https://[2002:a00:1::]/", "not a public address"),
        ("https://127.0.0.1/", "not a public address"),
        ("http://127.0.0.1:9000/", "not a public address"),
        ("https://user:pw@example.com/", "credentials"),
        ("https://example.com/#part", "fragment"),
        ("https:///nohost", "no host"),
        ("https://exa mple.com/", "spaces"),
        ("https://example.com:99999/", "not a URL"),
        ("https://example.com/" + "a" * 2100, "longer than"),
    ],
)
def test_urls_refused_at_creation(url: str, reason: str) -> None:
    with pytest.raises(UnsafeWebhook, match=reason):
        parse_url(url, allow_loopback=False)


def test_a_public_https_url_is_taken_apart() -> None:
    target = parse_url("https://Hooks.Example.com/services/T1/B2?x=1", allow_loopback=False)
    assert target == Target("https", "hooks.example.com", 443, "/services/T1/B2?x=1")
    assert target.host_header == "hooks.example.com"
    v6 = parse_url("https://[2606:4700:4700::1111]:8443", allow_loopback=False)
    assert (v6.host, v6.port, v6.path) == ("2606:4700:4700::1111", 8443, "/")
    assert v6.host_header == "[2606:4700:4700::1111]:8443"


def test_http_to_loopback_only_under_the_local_setting() -> None:
    for url in ("http://127.0.0.1:9000/x", "http://localhost:9000/x", "http://[::1]:9000/"):
        with pytest.raises(UnsafeWebhook):
            parse_url(url, allow_loopback=False)
        assert parse_url(url, allow_loopback=True).scheme == "http"
    # Never http to anything else, even on the local stack.
    with pytest.raises(UnsafeWebhook, match="https"):
        parse_url("http://example.com/x", allow_loopback=True)


def test_a_name_is_judged_by_every_address_it_resolves_to() -> None:
    target = parse_url("https://localhost:9000/x", allow_loopback=False)
    with pytest.raises(UnsafeWebhook, match="not a public address"):
        resolve(target, allow_loopback=False)
    found = resolve(target, allow_loopback=True)
    assert found
    assert all(a.is_loopback for a in found)


def test_a_name_that_does_not_resolve_is_refused() -> None:
    target = parse_url("https://no-such-host.invalid/x", allow_loopback=False)
    with pytest.raises(UnsafeWebhook, match="cannot resolve"):
        resolve(target, allow_loopback=False)
