"""One webhook POST against receivers on real loopback sockets (DESIGN §11): the signature
over the exact bytes, no redirect followed, the 5 s bound on a receiver that stalls, at most
64 KiB of an answer read, TLS with SNI and the certificate checked for the URL's name while
the connection goes to the address resolved and checked; loopback refused without the
local-stack setting (the receiver never sees a connection)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from shared.budgets.delivery import MAX_RESPONSE_BYTES, TIMEOUT_S, DeliveryFailed, post
from shared.budgets.signing import SIGNATURE_HEADER, new_secret, signature, verify
from tests.support.webhooks import receiver, self_signed

BODY = '{"text":"Budget “Prod” crossed 50%","kind":"budget"}'.encode()


def test_signature_is_hmac_sha256_hex_of_the_exact_bytes() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(secret) > 40
    header = signature(BODY, secret)
    assert header.startswith("sha256=")
    assert len(header) == 7 + 64
    assert header == header.lower()
    assert verify(BODY, secret, header)
    assert not verify(BODY + b" ", secret, header)
    assert not verify(BODY, new_secret(), header)
    # Pinned: `printf '{}' | openssl dgst -sha256 -hmac key`.
    assert (
        signature(b"{}", "key")
        == "sha256=a777724d943eb48dc69bca8a4a6d57a04db3f9ec7e1de4e581e860265bdf3032"
    )


def test_signature_matches_an_independent_hmac() -> None:
    import hashlib
    import hmac

    secret = "whsec_test"
    expected = hmac.new(secret.encode("utf-8"), BODY, hashlib.sha256).hexdigest()
    assert signature(BODY, secret) == f"sha256={expected}"


def test_delivered_to_a_loopback_receiver_under_the_local_setting() -> None:
    secret = new_secret()
    with receiver() as hook:
        delivered = post(
            hook.url("/in?team=1"),
            BODY,
            {SIGNATURE_HEADER: signature(BODY, secret)},
            allow_loopback=True,
        )
        assert delivered.status == 204
        (got,) = hook.wait_for(1, 5)
    assert got.path == "/in?team=1"
    assert got.body == BODY
    assert got.signed_by(secret)
    assert got.headers["host"] == f"127.0.0.1:{hook.port}"
    assert got.headers["content-type"] == "application/json"


def test_loopback_is_refused_without_the_setting_and_nothing_connects() -> None:
    with receiver() as hook:
        for url in (hook.url(), hook.url(host="localhost")):
            with pytest.raises(ValueError, match=r"not a public address|https"):
                post(url, BODY, {}, allow_loopback=False)
        assert hook.wait_for(1, 0.5) == []


def test_a_redirect_is_not_followed() -> None:
    with receiver() as target, receiver() as hook:
        hook.behaviour.status = 302
        hook.behaviour.headers = {"Location": target.url("/elsewhere")}
        with pytest.raises(DeliveryFailed, match=r"302 \(redirects are not followed"):
            post(hook.url(), BODY, {}, allow_loopback=True)
        assert len(hook.wait_for(1, 5)) == 1
        assert target.wait_for(1, 1.0) == []


@pytest.mark.parametrize("status", [400, 404, 500, 503])
def test_a_non_2xx_answer_fails_the_delivery(status: int) -> None:
    with receiver() as hook:
        hook.behaviour.status = status
        with pytest.raises(DeliveryFailed, match=f"answered {status}"):
            post(hook.url(), BODY, {}, allow_loopback=True)


def test_a_stalling_receiver_is_given_up_after_the_timeout() -> None:
    with receiver() as hook:
        hook.behaviour.delay_s = TIMEOUT_S + 3
        started = time.monotonic()
        with pytest.raises(DeliveryFailed, match="did not answer within 5 s"):
            post(hook.url(), BODY, {}, allow_loopback=True)
        elapsed = time.monotonic() - started
    assert TIMEOUT_S - 0.5 < elapsed < TIMEOUT_S + 1.5


def test_a_long_answer_is_read_no_further_than_64_kib() -> None:
    huge = 256 * 1024 * 1024
    with receiver() as hook:
        hook.behaviour.status = 200
        hook.behaviour.body_bytes = huge
        delivered = post(hook.url(), BODY, {}, allow_loopback=True)
        assert delivered.status == 200
        deadline = time.monotonic() + 10
        while not hook.body_sent and time.monotonic() < deadline:
            time.sleep(0.05)
    # The receiver could write only what the socket buffers took beyond the 64 KiB read.
    assert hook.body_sent
    assert MAX_RESPONSE_BYTES <= hook.body_sent[0] < huge // 4


def test_tls_checks_the_certificate_for_the_name_and_sends_sni(tmp_path: Path) -> None:
    cert = self_signed(tmp_path, "localhost")
    with receiver(cert.server_context()) as hook:
        url = hook.url("/secure", host="localhost")
        delivered = post(url, BODY, {}, allow_loopback=True, context=cert.client_context())
        assert delivered.status == 204
        assert delivered.address in ("127.0.0.1", "::1")
        (got,) = hook.wait_for(1, 5)
        assert got.sni == "localhost"
        assert got.headers["host"] == f"localhost:{hook.port}"
        # The system's trust store does not know this certificate: refused, not sent.
        with pytest.raises(DeliveryFailed, match=r"CERTIFICATE_VERIFY_FAILED|certificate"):
            post(url, BODY, {}, allow_loopback=True)
        assert len(hook.wait_for(2, 0.5)) == 1
