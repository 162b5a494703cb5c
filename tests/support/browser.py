"""The chat page in Debian's headless Chromium, driven by Playwright, fully offline: every
request the page makes must stay on loopback (the Firebase SDK is served by the relay, never
a CDN), and a script error or an error in the console is a failure."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    Route,
    ViewportSize,
    expect,
)

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
# Without these, Chromium phones home at start (component updates, field trials); the
# machine has no network, and the tests want to see only the page's own requests.
CHROMIUM_ARGS = [
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
LOOPBACK = re.compile(r"^(https?|wss?)://(127\.0\.0\.1|localhost|\[::1\])(:\d+)?/")
DESKTOP: ViewportSize = {"width": 1440, "height": 1000}
PHONE: ViewportSize = {"width": 390, "height": 844}


@dataclass
class PageWatch:
    """What the pages of a context did that they should not have: off-loopback requests,
    script errors, errors in the console."""

    offsite: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def assert_clean(self) -> None:
        assert self.offsite == [], f"the page reached beyond loopback: {self.offsite}"
        assert self.errors == [], f"the page logged errors: {self.errors}"


def launch(playwright: Playwright) -> Browser:
    # No skip: a machine without the browser fails here, naming the fix (make test installs it).
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: `make test` installs Debian's chromium"
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


def offline_context(
    browser: Browser, viewport: ViewportSize = DESKTOP
) -> tuple[BrowserContext, PageWatch]:
    """A context of its own (its own signed-in user: the SDK keeps the session in the
    context's IndexedDB) whose every request off loopback is recorded and refused."""
    context = browser.new_context(viewport=viewport, locale="en-US")
    watch = PageWatch()

    def offline(route: Route) -> None:
        if LOOPBACK.match(route.request.url):
            route.continue_()
        else:
            watch.offsite.append(route.request.url)
            route.abort()

    context.route("**/*", offline)
    return context, watch


def watched_page(context: BrowserContext, watch: PageWatch) -> Page:
    """A new page whose script errors and console errors go to ``watch`` (not yet loaded)."""
    page = context.new_page()
    page.on("pageerror", lambda e: watch.errors.append(f"pageerror: {e}"))
    page.on(
        "console",
        lambda m: watch.errors.append(f"console: {m.text}") if m.type == "error" else None,
    )
    return page


def open_page(context: BrowserContext, watch: PageWatch, url: str) -> Page:
    page = watched_page(context, watch)
    page.goto(url)
    return page


def sign_in(page: Page, email: str, password: str) -> None:
    """The page's email/password form, then the socket's first auth.ok."""
    expect(page.get_by_test_id("signin-view")).to_be_visible()
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_test_id("signin-submit").click()
    expect(page.get_by_test_id("connection-status")).to_have_text("Connected")


def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path))
    return path
