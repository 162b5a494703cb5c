"""The pages at a workspace's own prices, and a what-if answer (issue 14 items 6-7), in headless
Chromium against the stack with its relay (``relay_stack``), offline.

A user's personal workspace holds the planted usage of the last 40 days and a negotiated price
(``PUT /{ws}/prices``): the chat answer says "At your prices" (the agents' reports say
``prices: "workspace"``) and a what-if question's answer shows the what-if's table, per model
the usage ran on: its cost as it ran, the same tokens at the target's prices, the difference,
the target's prices and the caveat, each figure the optimization agent's. The dashboard says
"At your prices" under its period and beside the recommendations' total.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from google.cloud import firestore
from playwright.sync_api import BrowserContext, Page, expect

from devstack.auth_emulator import AuthEmulator, SignedIn
from devstack.stack import RunningStack
from devstack.synthetic import generate
from tests.support.browser import PageWatch, open_page, screenshot
from tests.support.browser import sign_in as chat_sign_in
from tests.support.relay import ChatUser, auth_default_project
from tests.support.stack import Caller, ingest
from tests.support.teams import verified_chat_user

RUN_TIMEOUT_MS = 90_000
LOAD_TIMEOUT_MS = 60_000
QUESTION = "what would summarize_thread have cost on gpt-4o-mini in the last 30 days?"
PRICES = [{"provider": "anthropic", "model": "claude-sonnet-4-6", "discount_pct": 25}]


@pytest.fixture(scope="module")
def priced(relay_stack: RunningStack) -> ChatUser:
    """A user whose workspace holds 40 days of planted usage up to yesterday and a price of
    its own for the model `summarize_thread` runs on."""
    served = auth_default_project(relay_stack.hosts.auth)
    assert relay_stack.project == served, (
        f"the stack runs on {relay_stack.project!r}, the Auth emulator signs in for {served!r}"
    )
    with AuthEmulator(relay_stack.hosts.auth, relay_stack.project) as auth:
        user = verified_chat_user(auth)
    caller = Caller(
        SignedIn(user.uid, user.email, user.id_token, refresh_token=""),
        user.workspace,
        relay_stack.functions,
    )
    db = firestore.Client(project=relay_stack.project)
    try:
        ingest(caller, db, generate(end=datetime.now(UTC).date() - timedelta(days=1), days=40))
    finally:
        db.close()
    put = httpx.put(
        f"{relay_stack.functions['workspaces']}/{user.workspace}/prices",
        json=PRICES,
        headers={"Authorization": f"Bearer {user.id_token}", "X-Apex-Workspace": user.workspace},
        timeout=30,
    )
    assert put.status_code == 200, put.text
    return user


def run_events(stack: RunningStack, user: ChatUser, run_id: str) -> list[dict[str, Any]]:
    response = httpx.get(
        stack.functions["runs_get"],
        params={"run_id": run_id},
        headers={"Authorization": f"Bearer {user.id_token}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["events"]
    return events


def result_of(events: list[dict[str, Any]], agent: str) -> dict[str, Any]:
    [done] = [e for e in events if e.get("agent") == agent and e["event"] == "agent_completed"]
    result: dict[str, Any] = done["data"]["result"]
    return result


def money(amount: float) -> str:
    return f"${amount:,.2f}"


MINUS = "\N{MINUS SIGN}"


def signed(amount: float) -> str:
    """app.js's difference: a sign always (a minus sign for cheaper), then the amount."""
    sign = "+" if amount > 0 else MINUS if amount < 0 else ""
    return f"{sign}{money(abs(amount))}"


def ask(page: Page, question: str) -> str:
    runs_before = page.get_by_test_id("run").count()
    page.get_by_label("Message").fill(question)
    page.get_by_test_id("send").click()
    run = page.get_by_test_id("run").nth(runs_before)
    expect(run).to_be_attached()
    run_id = run.get_attribute("data-run-id")
    assert run_id
    expect(run).to_have_attribute("data-done", "done", timeout=RUN_TIMEOUT_MS)
    return run_id


def test_a_what_if_answer_shows_its_table_and_says_at_your_prices(
    relay_stack: RunningStack, priced: ChatUser, context: tuple[BrowserContext, PageWatch]
) -> None:
    browser_context, watch = context
    page = open_page(browser_context, watch, f"{relay_stack.relay}/")
    chat_sign_in(page, priced.email, priced.password)
    run_id = ask(page, QUESTION)
    run = page.locator(f'[data-testid="run"][data-run-id="{run_id}"]')
    events = run_events(relay_stack, priced, run_id)
    optimization = result_of(events, "optimization")
    assert result_of(events, "data")["prices"] == optimization["prices"] == "workspace"
    what_if = optimization["what_if"]
    assert what_if is not None
    assert what_if["feature"] == "summarize_thread"
    assert what_if["prices"] == "workspace"

    expect(run.get_by_test_id("answer-prices")).to_contain_text("At your prices")
    # The spend named is the usage as it ran, not the target's (a model the workspace uses).
    answer = run.get_by_test_id("answer")
    expect(answer).to_contain_text("Spend on feature summarize_thread for ")
    expect(answer).not_to_contain_text("Spend on gpt-4o-mini")
    table = run.get_by_test_id("whatif-table")
    expect(table).to_be_visible()
    expect(run.get_by_test_id("whatif-caption")).to_have_text(
        f"What feature summarize_thread's measured tokens would have cost on "
        f"{what_if['model']}, at your prices"
    )
    rows = table.get_by_test_id("whatif-row")
    expect(rows).to_have_count(len(what_if["sources"]))
    assert what_if["sources"], what_if
    for index, source in enumerate(what_if["sources"]):
        row = rows.nth(index)
        expect(row).to_have_attribute("data-model", source["model"])
        expect(row.get_by_test_id("whatif-requests")).to_have_text(f"{source['requests']:,}")
        expect(row.get_by_test_id("whatif-current")).to_have_text(money(source["current_cost_usd"]))
        expect(row.get_by_test_id("whatif-cost")).to_have_text(money(source["what_if_cost_usd"]))
        expect(row.get_by_test_id("whatif-diff")).to_have_text(signed(source["difference_usd"]))
    expect(table.get_by_test_id("whatif-total-current")).to_have_text(
        money(what_if["current_cost_usd"])
    )
    expect(table.get_by_test_id("whatif-total-cost")).to_have_text(
        money(what_if["what_if_cost_usd"])
    )
    expect(table.get_by_test_id("whatif-total-diff")).to_contain_text(
        signed(what_if["difference_usd"])
    )
    expect(run.get_by_test_id("whatif-prices")).to_contain_text(
        f"{money(what_if['output_usd_per_mtok'])} output per million tokens"
    )
    expect(run.get_by_test_id("whatif-caveat")).to_have_text(what_if["caveat"])
    # The answer's own statement of the caveat is an aside, not underscores shown as text.
    expect(answer.locator(".prose em").filter(has_text=what_if["caveat"])).to_have_count(1)
    assert "_Token counts" not in (answer.locator(".prose").text_content() or "")
    # The table's box scrolls, not the page.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    screenshot(page, "chat-what-if.png")

    # A question that asks no what-if shows no what-if table, still at your prices.
    plain = ask(page, "What did we spend in the last 30 days?")
    plain_run = page.locator(f'[data-testid="run"][data-run-id="{plain}"]')
    expect(plain_run.get_by_test_id("answer-prices")).to_be_visible()
    expect(plain_run.get_by_test_id("whatif")).to_have_count(0)
    watch.assert_clean()


def test_the_dashboard_says_at_your_prices(
    relay_stack: RunningStack, priced: ChatUser, context: tuple[BrowserContext, PageWatch]
) -> None:
    browser_context, watch = context
    page = open_page(browser_context, watch, f"{relay_stack.relay}/dashboard")
    expect(page.get_by_test_id("signin-view")).to_be_visible()
    page.get_by_label("Email").fill(priced.email)
    page.get_by_label("Password").fill(priced.password)
    page.get_by_test_id("signin-submit").click()
    root = page.get_by_test_id("dashboard")
    expect(root).to_have_attribute("data-workspace", priced.workspace)
    expect(root).to_have_attribute("data-state", "ready", timeout=LOAD_TIMEOUT_MS)
    note = page.get_by_test_id("prices-text")
    expect(note).to_be_visible()
    expect(note).to_have_attribute("data-prices", "workspace")
    expect(note).to_contain_text("At your prices")
    expect(page.get_by_test_id("recs-total")).to_contain_text("a month in all, at your prices")
    screenshot(page, "dashboard-your-prices.png")
    watch.assert_clean()
