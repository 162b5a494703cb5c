"""The relay as a service: health checks, the page's routes and /config.json, start-up
that fails loudly, and SIGTERM (sockets closed with 1012, subscription deleted, exit in
Cloud Run's 10 s)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from google.api_core.exceptions import NotFound
from google.cloud.pubsub_v1 import SubscriberClient
from starlette.applications import Starlette
from starlette.testclient import TestClient

from devstack.emulators import ROOT
from devstack.procs import free_port
from devstack.stack import RunningStack
from relay.app import STATIC_DIR, page_routes
from shared.topology import load_topology
from tests.support.relay import ChatUser, OwnRelay
from tests.support.sockets import refusing_port
from tests.support.wsclient import chat


def test_live_and_ready_answer_200_when_the_dependencies_are_up(
    relay_stack: RunningStack,
) -> None:
    live = httpx.get(f"{relay_stack.relay}/health/live", timeout=10)
    assert (live.status_code, live.json()) == (200, {"status": "live"})
    ready = httpx.get(f"{relay_stack.relay}/health/ready", timeout=10)
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["status"] == "ready"
    assert body["checks"] == {
        "firestore": "ok",
        "pubsub_subscription": "ok",
        "streaming_pull": "ok",
    }


def test_config_json_gives_the_pages_their_sign_in_and_the_functions_urls(
    relay_stack: RunningStack,
) -> None:
    response = httpx.get(f"{relay_stack.relay}/config.json", timeout=10)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.json() == {
        "firebase": {
            "apiKey": "fake-api-key",
            "authDomain": "localhost",
            "projectId": relay_stack.project,
        },
        "authEmulatorHost": relay_stack.hosts.auth,
        "threadsGetUrl": relay_stack.functions["threads_get"],
        "workspacesUrl": relay_stack.functions["workspaces"],
        "agentsDataUrl": relay_stack.functions["agents_data"],
        "agentsOptimizationUrl": relay_stack.functions["agents_optimization"],
    }


def test_the_page_can_call_threads_get_from_the_relays_origin(relay_stack: RunningStack) -> None:
    preflight = httpx.options(
        relay_stack.functions["threads_get"],
        headers={
            "Origin": relay_stack.relay,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
        timeout=10,
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == relay_stack.relay


class _PageParts(HTMLParser):
    """What a page is made of: its title, scripts, links, forms and their inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.title = ""
        self.scripts: list[dict[str, str | None]] = []
        self.links: list[dict[str, str | None]] = []
        self.forms: dict[str, list[str]] = {}
        self._form: str | None = None
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "title":
            self._in_title = True
        elif tag == "script":
            self.scripts.append(named)
        elif tag == "link":
            self.links.append(named)
        elif tag == "form":
            self._form = named.get("id") or ""
            self.forms[self._form] = []
        elif tag == "input" and self._form is not None:
            self.forms[self._form].append(named.get("type") or "text")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag == "form":
            self._form = None

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data


# What a browser accepts for each kind of file the page loads (Starlette guesses from the
# extension; JavaScript has two registered types).
_TYPES = {
    ".js": {"text/javascript", "application/javascript"},
    ".css": {"text/css"},
    ".svg": {"image/svg+xml"},
}
# A module's static imports and dynamic import() calls, minified or not.
_IMPORT = re.compile(r"""(?:\bfrom\s*|\bimport\s*\(?\s*)["']([^"']+)["']""")


def _served_as_built(client: httpx.Client, path: str) -> str:
    """GET ``path`` (under /static/): 200, the type of its extension, the build's bytes."""
    assert path.startswith("/static/"), path
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    content_type = response.headers["content-type"].split(";")[0]
    assert content_type in _TYPES[Path(path).suffix], (path, content_type)
    assert response.content == (STATIC_DIR / path.removeprefix("/static/")).read_bytes(), path
    return response.text


def test_the_stack_serves_the_chat_page(relay_stack: RunningStack) -> None:
    assert (STATIC_DIR / "index.html").is_file(), "relay/static/index.html is part of the build"
    with httpx.Client(base_url=relay_stack.relay, timeout=10) as client:
        page = client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        parts = _PageParts()
        parts.feed(page.text)
        # The chat page: its title, the sign-in form, the composer, the one module it runs.
        assert parts.title == "Apex · LLM spend"
        assert parts.forms == {"signin-form": ["email", "password"], "composer": []}
        assert parts.scripts == [{"type": "module", "src": "/static/app.js"}]
        # Everything it loads comes from the relay's /static/ as built, nothing from a CDN.
        refs = [s["src"] for s in parts.scripts] + [link["href"] for link in parts.links]
        assert sorted(r for r in refs if r) == [
            "/static/app.js",
            "/static/favicon.svg",
            "/static/styles.css",
        ]
        for ref in refs:
            assert ref is not None
            _served_as_built(client, ref)
        # The modules app.js imports, and theirs: what it shares with the dashboard
        # (common.js) and the vendored Firebase SDK, from the relay.
        modules, pending = set(), ["/static/app.js"]
        while pending:
            module = pending.pop()
            modules.add(module)
            for spec in _IMPORT.findall(_served_as_built(client, module)):
                assert spec.startswith(("./", "../", "/static/")), (module, spec)
                resolved = str(httpx.URL(f"http://relay{module}").join(spec).path)
                if resolved not in modules:
                    pending.append(resolved)
        assert modules == {
            "/static/app.js",
            "/static/common.js",
            "/static/vendor/firebase/firebase-app.js",
            "/static/vendor/firebase/firebase-auth.js",
        }


def test_without_its_page_the_relay_says_so_rather_than_faking_one(tmp_path: Path) -> None:
    client = TestClient(Starlette(routes=page_routes(tmp_path)))
    missing = client.get("/")
    assert missing.status_code == 500
    assert "chat page is missing" in missing.text
    (tmp_path / "index.html").write_text("<!doctype html><title>chat</title>")
    (tmp_path / "app.js").write_text("console.log(1)")
    assert client.get("/").text == "<!doctype html><title>chat</title>"
    script = client.get("/static/app.js")
    assert (script.status_code, script.text) == (200, "console.log(1)")
    assert client.get("/static/none.js").status_code == 404


def _start_and_wait(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``python -m relay`` to its end (a relay that starts would run until the timeout)."""
    return subprocess.run(
        [sys.executable, "-m", "relay", "--port", str(free_port())],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )


def test_a_missing_setting_stops_the_relay_naming_it(relay_stack: RunningStack) -> None:
    done = _start_and_wait(
        {k: v for k, v in relay_stack.env.items() if k != "APEX_THREADS_GET_URL"}
    )
    assert done.returncode == 2
    assert "APEX_THREADS_GET_URL" in done.stderr


def test_an_unreachable_pubsub_fails_start_up(relay_stack: RunningStack) -> None:
    with refusing_port() as port:
        done = _start_and_wait({**relay_stack.env, "PUBSUB_EMULATOR_HOST": f"127.0.0.1:{port}"})
    assert done.returncode != 0
    assert "Application startup failed" in done.stdout + done.stderr


def test_sigterm_closes_sockets_with_1012_and_deletes_the_subscription(
    relay_stack: RunningStack,
    start_relay: Callable[..., OwnRelay],
    new_chat_user: Callable[[], ChatUser],
) -> None:
    relay = start_relay()
    path = (
        f"projects/{relay_stack.project}/subscriptions/"
        f"{load_topology().relay_subscription_name(relay.relay_id)}"
    )
    subscriber = SubscriberClient()
    try:
        subscriber.get_subscription(subscription=path)  # exists while the relay runs
        with chat(relay.ws_url) as signed_in, chat(relay.ws_url) as anonymous:
            signed_in.auth(new_chat_user().id_token)
            assert signed_in.is_open()
            sent = time.monotonic()
            relay.process.popen.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
            assert signed_in.closed_with(timeout=10)[0] == 1012
            assert anonymous.closed_with(timeout=10)[0] == 1012
        assert relay.process.popen is not None
        # uvicorn finishes its graceful shutdown, then re-raises the signal it caught, so
        # the process ends as a SIGTERM'd process conventionally does.
        assert relay.process.popen.wait(timeout=10) == -signal.SIGTERM
        log = relay.process.log_path.read_text()
        assert "deleted the relay's subscription" in log
        assert "Application shutdown complete" in log
        assert time.monotonic() - sent < 10
        with pytest.raises(NotFound):
            subscriber.get_subscription(subscription=path)
    finally:
        subscriber.close()


def test_the_stack_serves_the_functions_openapi_document(relay_stack: RunningStack) -> None:
    from shared.endpoints import ENDPOINTS
    from shared.openapi import openapi_document

    response = httpx.get(f"{relay_stack.relay}/openapi.json", timeout=10)
    assert response.status_code == 200
    document = response.json()
    assert document == openapi_document()
    assert document["openapi"] == "3.1.0"
    # One path per function, and the paths below the workspaces function's URL (§9).
    assert {p.strip("/").split("/")[0] for p in document["paths"]} == set(ENDPOINTS)
