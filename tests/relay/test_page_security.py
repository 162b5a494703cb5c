"""The relay's pages hold a signed-in user's tokens (issue 16 item 6): every response says
which scripts may run and where the page may connect (CSP), `nosniff`, a `Referrer-Policy`,
HSTS over https only — and in a real Chromium an inline script injected into the page does
not run while the app itself still signs in and connects."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from playwright.sync_api import Browser, expect

from devstack.stack import RunningStack
from relay.headers import FIREBASE_AUTH_ORIGINS, content_security_policy
from tests.support.browser import offline_context, open_page, sign_in
from tests.support.relay import ChatUser


def _directives(policy: str) -> dict[str, list[str]]:
    parsed = {}
    for part in policy.split(";"):
        name, *values = part.split()
        parsed[name] = values
    return parsed


def test_every_response_carries_the_security_headers(relay_stack: RunningStack) -> None:
    for path in (
        "/",
        "/dashboard",
        "/static/app.js",
        "/config.json",
        "/health/live",
        "/no-such-page",
    ):
        response = httpx.get(relay_stack.relay + path, timeout=10)
        assert response.headers["x-content-type-options"] == "nosniff", path
        assert response.headers["referrer-policy"] == "no-referrer", path
        assert "strict-transport-security" not in response.headers, path  # plain http
        policy = _directives(response.headers["content-security-policy"])
        assert policy["script-src"] == ["'self'"], path
        assert policy["frame-ancestors"] == ["'none'"], path
        assert policy["default-src"] == ["'none'"], path
    connect = _directives(httpx.get(relay_stack.relay + "/", timeout=10).headers[
        "content-security-policy"
    ])["connect-src"]  # fmt: skip
    host = relay_stack.relay.removeprefix("http://")
    functions = {
        relay_stack.functions[name]
        for name in ("threads_get", "workspaces", "agents_data", "agents_optimization")
    }
    assert set(connect) == {
        "'self'",
        f"ws://{host}",
        *(url.rstrip("/") for url in functions),
        f"http://{relay_stack.hosts.auth}",
    }


def test_hsts_is_sent_when_the_request_came_over_https(relay_stack: RunningStack) -> None:
    response = httpx.get(relay_stack.relay + "/", headers={"X-Forwarded-Proto": "https"})
    assert response.headers["strict-transport-security"].startswith("max-age=31536000")
    connect = _directives(response.headers["content-security-policy"])["connect-src"]
    assert any(source.startswith("wss://") for source in connect)


def test_the_policy_names_googles_auth_endpoints_without_an_emulator() -> None:
    policy = _directives(
        content_security_policy(
            "apex.example.com", True, ["https://threads-get-abc.a.run.app/"], None
        )
    )
    assert policy["connect-src"] == [
        "'self'",
        "wss://apex.example.com",
        "https://threads-get-abc.a.run.app",
        *FIREBASE_AUTH_ORIGINS,
    ]
    # A Host header that is not a host[:port] adds no source (it could smuggle directives).
    sneaky = _directives(content_security_policy("x; script-src *", False, [], None))
    assert sneaky["script-src"] == ["'self'"]
    assert sneaky["connect-src"] == ["'self'", *FIREBASE_AUTH_ORIGINS]


# What an attacker who gets markup into the page would try: an inline script, and an inline
# event handler. Inserted into the live page (not by rewriting the response: a response
# Playwright fulfils has no address, and Chromium then refuses the page's loopback calls).
INJECT = """
const script = document.createElement("script");
script.textContent = 'document.documentElement.dataset.pwned = "inline";';
document.body.append(script);
const holder = document.createElement("div");
holder.innerHTML =
  '<img src="data:," onerror="document.documentElement.dataset.pwned = \\'handler\\'">';
document.body.append(holder);
"""


def test_an_injected_inline_script_does_not_run_and_the_app_still_works(
    relay_stack: RunningStack, browser: Browser, new_chat_user: Callable[[], ChatUser]
) -> None:
    user = new_chat_user()
    context, watch = offline_context(browser)
    try:
        page = open_page(context, watch, f"{relay_stack.relay}/")
        page.evaluate(INJECT)
        sign_in(page, user.email, user.password)
        expect(page.get_by_test_id("workspace")).to_have_text(f"workspace {user.uid}")
        page.evaluate(INJECT)  # and once more, signed in
        page.get_by_label("Message").fill("hello")
        page.get_by_test_id("send").click()
        expect(page.get_by_test_id("run").get_by_test_id("answer")).to_be_visible(timeout=60_000)
        assert page.evaluate("document.documentElement.dataset.pwned") is None
        # Chromium reports each refused inline script in the console; nothing else failed.
        refused = [e for e in watch.errors if "Content Security Policy" in e]
        assert len(refused) == 4, watch.errors
        watch.errors = [e for e in watch.errors if e not in refused]
        watch.assert_clean()
    finally:
        context.close()
