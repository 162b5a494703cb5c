"""The dashboard (issue 16 item 1, DESIGN §12) in a real browser: Debian's headless Chromium,
driven by Playwright, against the stack with its relay (``relay_stack``), fully offline.

A team workspace holds 90 days of planted synthetic usage (ingested through
``usage_ingest``, the aggregator applied it all) and, for the budget bars, budgets made
through the ``workspaces`` function. Each test's reader is a new member of that team (each
has their own rate limit), who signs in on ``/dashboard`` in their personal workspace (empty)
and switches to the team. Every figure the page shows is checked against what the functions
answer for the same workspace and period, called here over HTTP with a read API key: the
totals, each breakdown row, each day of each model's stack (the chart's data and its table),
the anomalies, each recommendation, each budget. The page must make no request off loopback,
log no error and break no Content-Security-Policy rule. Full-page screenshots of 7, 30 and 90
days land in ``test-artifacts/``.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from google.cloud import firestore
from google.cloud.pubsub_v1 import PublisherClient
from playwright.sync_api import Browser, BrowserContext, Page, expect

from devstack.auth_emulator import AuthEmulator, SignedIn
from devstack.stack import RunningStack
from devstack.synthetic import generate
from relay.app import STATIC_DIR
from shared.budgets.tick import TICK_TOPIC
from shared.models.budgets import BudgetTick
from shared.store.usage import FirestoreUsageStore
from tests.relay.test_lifecycle import _IMPORT, _PageParts, _served_as_built
from tests.support.browser import (
    ARTIFACTS,
    DESKTOP,
    PHONE,
    ROOT,
    PageWatch,
    offline_context,
    watched_page,
)
from tests.support.relay import ChatUser, auth_default_project
from tests.support.stack import Caller, ingest
from tests.support.teams import Workspaces, verified_chat_user

LOAD_TIMEOUT_MS = 60_000
TOP_ROWS = 8  # dashboard.js: a breakdown's rows before "Other"
# The functions may answer from a membership check up to this old (DESIGN §9: at most 10 s).
ACCESS_CACHE_S = 10.0
MAX_SERIES = 7  # dashboard.js: models stacked one by one
DIMENSIONS = ("feature", "model", "provider", "user")
BASIS_LABELS = {"measured": "Measured", "upper_bound": "Upper bound"}  # common.js
# Okabe & Ito's colour-blind-safe palette, which the chart's series take (grey for "Other").
OKABE_ITO = {"#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442"}
# Collects every CSP violation the page reports (Chromium also logs them as console errors).
CSP_WATCH = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`);
});
"""


@dataclass(frozen=True)
class Team:
    owner: ChatUser
    workspace: str
    name: str
    read_key: str
    workspaces: Workspaces


@pytest.fixture(scope="module")
def team(relay_stack: RunningStack) -> Team:
    """A team whose workspace holds the 90 days of planted usage up to yesterday."""
    served = auth_default_project(relay_stack.hosts.auth)
    assert relay_stack.project == served, (
        f"the stack runs on {relay_stack.project!r}, the Auth emulator signs in for {served!r}"
    )
    api = Workspaces(relay_stack.functions["workspaces"])
    with AuthEmulator(relay_stack.hosts.auth, relay_stack.project) as auth:
        owner = verified_chat_user(auth)
    name = f"Analytics {uuid.uuid4().hex[:6]}"
    workspace = api.create(owner, name)
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    caller = Caller(
        SignedIn(owner.uid, owner.email, owner.id_token, refresh_token=""),
        workspace,
        relay_stack.functions,
    )
    db = firestore.Client(project=relay_stack.project)
    try:
        ingest(caller, db, generate(end=yesterday, days=90))
    finally:
        db.close()
    key = api.call(owner, "POST", f"/{workspace}/keys", {"name": "checks", "scope": "read"}, 201)
    return Team(owner, workspace, name, key["secret"], api)


@pytest.fixture
def reader(relay_stack: RunningStack, team: Team) -> ChatUser:
    """A new member of the team (a rate limit of their own)."""
    with AuthEmulator(relay_stack.hosts.auth, relay_stack.project) as auth:
        user = verified_chat_user(auth)
    team.workspaces.join(team.owner, team.workspace, user, "member")
    return user


@pytest.fixture
def context(browser: Browser) -> Iterator[tuple[BrowserContext, PageWatch]]:
    context, watch = offline_context(browser)
    context.add_init_script(CSP_WATCH)
    yield context, watch
    context.close()


# --- the functions, as the test calls them ----------------------------------------------------


@dataclass(frozen=True)
class Functions:
    stack: RunningStack
    key: str
    workspace: str

    def post(self, function: str, body: dict[str, Any]) -> dict[str, Any]:
        response = httpx.post(
            self.stack.functions[function],
            json=body,
            headers={"Authorization": f"Bearer {self.key}", "X-Apex-Workspace": self.workspace},
            timeout=60,
        )
        assert response.status_code == 200, (function, body, response.text)
        answer: dict[str, Any] = response.json()
        return answer

    def data(self, start: str, end: str, **extra: Any) -> dict[str, Any]:
        return self.post("agents_data", {"period": {"start": start, "end": end}, **extra})

    def optimization(self, start: str, end: str) -> dict[str, Any]:
        return self.post("agents_optimization", {"period": {"start": start, "end": end}})


def functions_for(stack: RunningStack, team: Team) -> Functions:
    return Functions(stack, team.read_key, team.workspace)


# --- the page -----------------------------------------------------------------------------------


def money(amount: float) -> str:
    return f"-${-amount:,.2f}" if amount < 0 else f"${amount:,.2f}"


def cents(amount: float) -> int:
    return round(amount * 100)


def preset_range(days: int) -> tuple[str, str]:
    today = datetime.now(UTC).date()
    return (today - timedelta(days=days - 1)).isoformat(), today.isoformat()


def sign_in(page: Page, user: ChatUser) -> None:
    expect(page.get_by_test_id("signin-view")).to_be_visible()
    expect(page.get_by_test_id("dashboard")).to_be_hidden()
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(user.password)
    page.get_by_test_id("signin-submit").click()
    expect(page.get_by_test_id("dashboard")).to_be_visible()


def wait_drawn(page: Page, workspace: str, start: str, end: str) -> None:
    """The dashboard shows ``workspace`` from ``start`` to ``end``, every section loaded."""
    root = page.get_by_test_id("dashboard")
    expect(root).to_have_attribute("data-workspace", workspace)
    expect(root).to_have_attribute("data-start", start)
    expect(root).to_have_attribute("data-end", end)
    expect(root).to_have_attribute("data-state", "ready", timeout=LOAD_TIMEOUT_MS)
    assert page.get_by_test_id("section-error").all_inner_texts() == []


def full_screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def attrs(page: Page, selector: str, script: str) -> Any:
    return page.eval_on_selector_all(selector, script)


def check_totals(page: Page, report: dict[str, Any]) -> None:
    totals = report["totals"]
    spend = page.get_by_test_id("total-spend")
    expect(spend.locator("dd")).to_have_text(money(totals["cost_usd"]))
    assert float(spend.get_attribute("data-usd") or "nan") == totals["cost_usd"]
    requests = page.get_by_test_id("total-requests")
    assert int(requests.get_attribute("data-value") or "-1") == totals["requests"]
    expect(requests.locator("dd")).to_have_text(f"{totals['requests']:,}")
    trend = page.get_by_test_id("total-trend")
    assert float(trend.get_attribute("data-usd") or "nan") == report["trend"]["cost_change_usd"]


def check_breakdowns(page: Page, report: dict[str, Any]) -> None:
    """Each dimension: agents_data's first rows as it ranks them, then "Other" summing the rest."""
    for dimension in DIMENSIONS:
        rows = report["breakdown"][dimension]
        assert rows, f"the planted usage has a {dimension} breakdown"
        expected = [(r["key"], money(r["cost_usd"]), r["requests"]) for r in rows[:TOP_ROWS]]
        rest = rows[TOP_ROWS:]
        if rest:
            other = sum(cents(r["cost_usd"]) for r in rest)
            expected.append(("(other)", money(other / 100), sum(r["requests"] for r in rest)))
        shown = attrs(
            page,
            f'[data-testid="breakdown-{dimension}"] [data-testid="breakdown-row"]',
            """rows => rows.map(r => [r.dataset.key,
                r.querySelector('[data-testid="row-spend"]').textContent,
                Number(r.querySelector('[data-testid="row-requests"]').dataset.value)])""",
        )
        assert [tuple(row) for row in shown] == expected, dimension


def check_daily(page: Page, fns: Functions, report: dict[str, Any], start: str, end: str) -> None:
    """Each model's stack on each day is agents_data's spend of that model on that day (one
    call per model, filters.models), each day's total its day row, the anomalies its own; the
    chart draws the numbers the table shows."""
    days = [
        (datetime.fromisoformat(start) + timedelta(days=n)).date().isoformat()
        for n in range((datetime.fromisoformat(end) - datetime.fromisoformat(start)).days + 1)
    ]
    models = [r["key"] for r in report["breakdown"]["model"]]
    assert 1 < len(models) <= MAX_SERIES, "the planted usage stacks every model on its own"
    expected: dict[str, dict[str, float]] = {}
    for model in models:
        per_model = fns.data(start, end, group_by=["day"], filters={"models": [model]})
        costs = {r["key"]: r["cost_usd"] for r in per_model["breakdown"]["day"]}
        expected[model] = {day: costs.get(day, 0.0) for day in days}
    table = attrs(
        page,
        '[data-testid="daily-row"]',
        """rows => rows.map(r => ({day: r.dataset.day, anomaly: r.dataset.anomaly === "true",
            total: Number(r.querySelector('[data-testid="daily-total"]').dataset.usd),
            totalText: r.querySelector('[data-testid="daily-total"]').textContent,
            cells: Object.fromEntries([...r.querySelectorAll('[data-testid="daily-cell"]')]
              .map(c => [c.dataset.series, [Number(c.dataset.usd), c.textContent]]))}))""",
    )
    assert [row["day"] for row in table] == days
    day_totals = {r["key"]: r["cost_usd"] for r in report["breakdown"]["day"]}
    anomalies = {a["day"] for a in report["anomalies"]}
    for row in table:
        day = row["day"]
        assert (row["total"], row["totalText"]) == (
            day_totals.get(day, 0.0),
            money(day_totals.get(day, 0.0)),
        ), day
        assert row["anomaly"] == (day in anomalies), day
        assert row["cells"] == {m: [expected[m][day], money(expected[m][day])] for m in models}
    chart = page.evaluate(
        """() => {
          const chart = Chart.getChart(document.querySelector('[data-testid="daily-chart"]'));
          return {labels: chart.data.labels, datasets: chart.data.datasets.map(d =>
            ({label: d.label, data: d.data, colour: d.backgroundColor}))};
        }"""
    )
    assert chart["labels"] == days
    assert [d["label"] for d in chart["datasets"]] == models
    for dataset in chart["datasets"]:
        assert dataset["data"] == [expected[dataset["label"]][day] for day in days]
    colours = [d["colour"] for d in chart["datasets"]]
    assert len(set(colours)) == len(colours), "each model its own colour"
    assert set(colours) <= OKABE_ITO


def check_recommendations(page: Page, found: dict[str, Any]) -> None:
    recs = found["recommendations"]
    assert recs, "the planted inefficiencies give recommendations"
    shown = attrs(
        page,
        '[data-testid="rec"]',
        """recs => recs.map(r => ({
            kind: r.dataset.kind,
            title: r.querySelector('[data-testid="rec-title"]').textContent,
            savings: r.querySelector('[data-testid="rec-savings"]').textContent,
            usd: Number(r.querySelector('[data-testid="rec-savings"]').dataset.usd),
            confidence: Number(r.querySelector('[data-testid="rec-confidence"]').dataset.value),
            confidenceText: r.querySelector('[data-testid="rec-confidence"]').textContent,
            basis: r.querySelector('[data-testid="rec-basis"]').dataset.basis,
            basisText: r.querySelector('[data-testid="rec-basis"]').textContent,
            ask: r.querySelector('[data-testid="rec-ask"]').getAttribute("href")}))""",
    )
    assert len(shown) == len(recs)
    for rec, row in zip(recs, shown, strict=True):
        assert row["kind"] == rec["kind"]
        assert row["title"] == rec["title"].replace("`", "")  # `names` shown as code
        assert row["usd"] == rec["monthly_savings_usd"]
        assert row["savings"] == f"{money(rec['monthly_savings_usd'])}/mo"
        assert row["confidence"] == rec["confidence"]
        assert row["confidenceText"] == f"Confidence {round(rec['confidence'] * 100)}%"
        # What the saving rests on (issue 14), beside the confidence it gives.
        assert row["basis"] == rec["basis"]
        assert row["basisText"] == f"Basis: {BASIS_LABELS[rec['basis']]}"
        question = parse_qs(urlsplit(row["ask"]).query)["ask"][0]
        assert urlsplit(row["ask"]).path == "/"
        assert rec["title"] in question
        assert money(rec["monthly_savings_usd"]) in question
    total = page.get_by_test_id("recs-total")
    expect(total).to_have_text(f"{money(found['total_monthly_savings_usd'])} a month in all")


def check_period(
    page: Page, fns: Functions, workspace: str, start: str, end: str
) -> dict[str, Any]:
    """The page's figures for the period against the functions'; agents_data's report."""
    wait_drawn(page, workspace, start, end)
    report = fns.data(start, end)
    check_totals(page, report)
    check_breakdowns(page, report)
    check_daily(page, fns, report, start, end)
    check_recommendations(page, fns.optimization(start, end))
    return report


def assert_clean(page: Page, watch: PageWatch) -> None:
    assert page.evaluate("window.__cspViolations") == []
    watch.assert_clean()


# --- tests --------------------------------------------------------------------------------------


def test_the_dashboards_figures_are_the_functions_for_7_30_90_days_and_a_custom_period(
    relay_stack: RunningStack,
    team: Team,
    reader: ChatUser,
    context: tuple[BrowserContext, PageWatch],
) -> None:
    ctx, watch = context
    fns = functions_for(relay_stack, team)
    page = watched_page(ctx, watch)
    page.goto(f"{relay_stack.relay}/dashboard")
    sign_in(page, reader)
    # No ?days= yet: the last 30 days, written into the address.
    start, end = preset_range(30)
    wait_drawn(page, reader.uid, start, end)
    assert parse_qs(urlsplit(page.url).query) == {"days": ["30"]}
    # The reader's personal workspace has no usage: every section says so.
    expect(page.get_by_test_id("total-spend").locator("dd")).to_have_text("$0.00")
    expect(page.get_by_test_id("daily-empty")).to_be_visible()
    expect(page.get_by_test_id("budgets-empty")).to_be_visible()
    expect(page.get_by_test_id("recs-empty")).to_be_visible()

    # The switcher (the chat page's, from common.js): the team's figures replace them.
    switcher = page.get_by_test_id("workspace-select")
    expect(switcher.locator("option")).to_have_text(["Personal · owner", f"{team.name} · member"])
    switcher.select_option(team.workspace)
    check_period(page, fns, team.workspace, start, end)
    expect(page.get_by_test_id("dash-workspace")).to_have_text(team.name)
    full_screenshot(page, "dashboard-30d.png")

    page.get_by_text("7 days", exact=True).click()
    start, end = preset_range(7)
    check_period(page, fns, team.workspace, start, end)
    assert parse_qs(urlsplit(page.url).query) == {"days": ["7"]}
    full_screenshot(page, "dashboard-7d.png")

    # From the keyboard: the period is a group of radios; arrows move through it.
    page.get_by_test_id("period-30").focus()
    page.keyboard.press("ArrowRight")
    start, end = preset_range(90)
    report = check_period(page, fns, team.workspace, start, end)
    assert report["anomalies"], "the planted anomaly is within 90 days"
    assert parse_qs(urlsplit(page.url).query) == {"days": ["90"]}
    full_screenshot(page, "dashboard-90d.png")

    # A reload keeps the period (the address) and the workspace (remembered per user).
    page.reload()
    check_period(page, fns, team.workspace, start, end)

    # A custom period: whole UTC days, end included, in the address.
    page.get_by_text("Custom", exact=True).click()
    first = (datetime.now(UTC).date() - timedelta(days=20)).isoformat()
    last = (datetime.now(UTC).date() - timedelta(days=6)).isoformat()
    page.get_by_label("From", exact=True).fill(first)
    page.get_by_label("To", exact=True).fill(last)
    page.get_by_test_id("period-apply").click()
    check_period(page, fns, team.workspace, first, last)
    assert parse_qs(urlsplit(page.url).query) == {"start": [first], "end": [last]}
    # A range the functions would refuse is refused here, named, and nothing reloads.
    page.get_by_label("From", exact=True).fill(last)
    page.get_by_label("To", exact=True).fill(first)
    page.get_by_test_id("period-apply").click()
    expect(page.get_by_test_id("period-error")).to_have_text("The period ends before it starts.")
    expect(page.get_by_test_id("dashboard")).to_have_attribute("data-start", first)

    # Back in the browser's history: the 90 days again.
    page.go_back()
    check_period(page, fns, team.workspace, *preset_range(90))

    # And back to the personal workspace: redrawn empty.
    switcher.select_option(reader.uid)
    wait_drawn(page, reader.uid, *preset_range(90))
    expect(page.get_by_test_id("total-spend").locator("dd")).to_have_text("$0.00")
    assert_clean(page, watch)


def test_budget_bars_read_spent_of_monthly_with_the_forecast(
    relay_stack: RunningStack,
    team: Team,
    reader: ChatUser,
    context: tuple[BrowserContext, PageWatch],
) -> None:
    api = team.workspaces
    made = [
        api.call(team.owner, "POST", f"/{team.workspace}/budgets", body, 201)
        for body in (
            {"name": f"Everything {uuid.uuid4().hex[:4]}", "monthly_usd": 40},
            {"name": "gpt-4o", "monthly_usd": 2.5, "scope": {"model": "gpt-4o"}},
        )
    ]
    ctx, watch = context
    page = watched_page(ctx, watch)
    page.goto(f"{relay_stack.relay}/dashboard?days=7")
    sign_in(page, reader)
    page.get_by_test_id("workspace-select").select_option(team.workspace)
    wait_drawn(page, team.workspace, *preset_range(7))
    listed = api.call(reader, "GET", f"/{team.workspace}/budgets")["budgets"]
    assert {b["budget_id"] for b in made} <= {b["budget_id"] for b in listed}
    bars = page.get_by_test_id("budget")
    expect(bars).to_have_count(len(listed))
    for budget in listed:
        bar = page.locator(f'[data-testid="budget"][data-budget-id="{budget["budget_id"]}"]')
        spent = f"{money(budget['spend_usd'])} of {money(budget['monthly_usd'])}"
        expect(bar.get_by_test_id("budget-spent")).to_have_text(spent)
        expect(bar.get_by_test_id("budget-forecast")).to_contain_text(
            f"Forecast {money(budget['forecast_usd'])} for the month"
        )
        meter = bar.get_by_role("meter")
        expect(meter).to_have_accessible_name(budget["name"])
        assert float(meter.get_attribute("aria-valuemax") or "nan") == budget["monthly_usd"]
        used, forecast = budget["spend_usd"], budget["forecast_usd"]
        status = "over" if used >= budget["monthly_usd"] else "ok"
        if status == "ok" and forecast > budget["monthly_usd"]:
            status = "at-risk"
        expect(bar).to_have_attribute("data-status", status)
    expect(page.get_by_test_id("budgets-month")).to_contain_text(listed[0]["month"])
    assert any(b["spend_usd"] > 0 for b in listed), "yesterday's planted usage is this month's"
    full_screenshot(page, "dashboard-budgets.png")
    assert_clean(page, watch)


def test_signed_out_the_dashboard_shows_the_chat_pages_sign_in_form_and_calls_nothing(
    relay_stack: RunningStack,
    new_chat_user: Callable[[], ChatUser],
    context: tuple[BrowserContext, PageWatch],
) -> None:
    reader = new_chat_user()
    ctx, watch = context
    page = watched_page(ctx, watch)
    calls: list[str] = []
    functions = tuple(relay_stack.functions.values())
    page.on("request", lambda r: calls.append(r.url) if r.url.startswith(functions) else None)
    configs: list[str] = []
    page.on("response", lambda r: configs.append(r.url) if "/config.json" in r.url else None)
    page.goto(f"{relay_stack.relay}/dashboard")
    form = page.get_by_test_id("signin-form")
    expect(form).to_be_visible()
    # Preloaded by the page and then read by its script: fetched once, by the preload.
    assert configs == [f"{relay_stack.relay}/config.json"]
    initiators = page.evaluate(
        "() => performance.getEntriesByType('resource')"
        ".filter((e) => e.name.endsWith('/config.json')).map((e) => e.initiatorType)"
    )
    assert initiators == ["link"]
    expect(page.get_by_test_id("dashboard")).to_be_hidden()
    expect(page.get_by_test_id("workspace-bar")).to_be_hidden()
    # The chat page's form: the same fields, the same names.
    chat = watched_page(ctx, watch)
    chat.goto(f"{relay_stack.relay}/")
    expect(chat.get_by_test_id("signin-form")).to_be_visible()
    fields = """f => [...f.querySelectorAll('input, button')]
        .map(e => [e.id, e.type, e.labels?.[0]?.textContent ?? e.textContent])"""
    assert form.evaluate(fields) == chat.get_by_test_id("signin-form").evaluate(fields)
    chat.close()
    assert calls == []
    sign_in(page, reader)
    page.get_by_test_id("sign-out").click()
    expect(page.get_by_test_id("signin-form")).to_be_visible()
    expect(page.get_by_test_id("dashboard")).to_be_hidden()
    assert_clean(page, watch)


def test_a_recommendation_asks_about_itself_in_the_chat(
    relay_stack: RunningStack,
    team: Team,
    reader: ChatUser,
    context: tuple[BrowserContext, PageWatch],
) -> None:
    ctx, watch = context
    page = watched_page(ctx, watch)
    page.goto(f"{relay_stack.relay}/dashboard?days=30")
    sign_in(page, reader)
    page.get_by_test_id("workspace-select").select_option(team.workspace)
    wait_drawn(page, team.workspace, *preset_range(30))
    first = page.get_by_test_id("rec").first
    top = functions_for(relay_stack, team).optimization(*preset_range(30))["recommendations"][0]
    title, savings = top["title"], money(top["monthly_savings_usd"])
    expect(first.get_by_test_id("rec-savings")).to_have_text(f"{savings}/mo")
    first.get_by_test_id("rec-ask").click()
    # The chat page, signed in (the same session), in the workspace chosen on the dashboard,
    # with the question in the composer for the reader to send; the address forgets it.
    expect(page.get_by_test_id("connection-status")).to_have_text("Connected")
    expect(page.get_by_test_id("workspace")).to_have_text(f"workspace {team.workspace}")
    question = page.get_by_label("Message")
    expect(question).to_have_value(re.compile(re.escape(title)))
    expect(question).to_have_value(re.compile(re.escape(savings)))
    expect(question).to_have_value(re.compile("the last 30 days"))
    expect(question).to_be_focused()
    assert urlsplit(page.url).query == ""
    expect(page.get_by_test_id("run")).to_have_count(0)  # nothing sent
    # And back: the chat links to the dashboard.
    page.get_by_test_id("nav-dashboard").click()
    wait_drawn(page, team.workspace, *preset_range(30))
    assert_clean(page, watch)


def test_a_member_removed_from_the_remembered_workspace_gets_their_own(
    relay_stack: RunningStack,
    team: Team,
    reader: ChatUser,
    context: tuple[BrowserContext, PageWatch],
) -> None:
    """The page loads the remembered workspace while it lists the reader's workspaces; one the
    reader has left since gives way to the personal workspace, and nothing of it is shown."""
    ctx, watch = context
    page = watched_page(ctx, watch)
    page.goto(f"{relay_stack.relay}/dashboard?days=7")
    sign_in(page, reader)
    page.get_by_test_id("workspace-select").select_option(team.workspace)
    wait_drawn(page, team.workspace, *preset_range(7))
    team.workspaces.remove(team.owner, team.workspace, reader.uid)
    time.sleep(ACCESS_CACHE_S + 0.5)  # past the bound a cached membership may stand (DESIGN §9)
    page.reload()
    wait_drawn(page, reader.uid, *preset_range(7))
    expect(page.get_by_test_id("workspace-select").locator("option")).to_have_text(
        ["Personal · owner"]
    )
    expect(page.get_by_test_id("total-spend").locator("dd")).to_have_text("$0.00")
    expect(page.get_by_test_id("error-banner")).to_be_hidden()
    assert page.evaluate(f"localStorage.getItem('apex.workspace.{reader.uid}')") is None
    # The team's calls made before the list came back were refused (404), as they must be;
    # Chromium logs each refused call. Nothing else went wrong.
    refused = [e for e in watch.errors if "status of 404" in e]
    watch.errors = [e for e in watch.errors if e not in refused]
    assert_clean(page, watch)


def test_the_dashboard_fits_a_phone(
    relay_stack: RunningStack, team: Team, reader: ChatUser, browser: Browser
) -> None:
    ctx, watch = offline_context(browser, viewport=PHONE)
    try:
        page = watched_page(ctx, watch)
        page.goto(f"{relay_stack.relay}/dashboard?days=30")
        sign_in(page, reader)
        page.get_by_test_id("workspace-select").select_option(team.workspace)
        wait_drawn(page, team.workspace, *preset_range(30))
        width = page.evaluate("document.documentElement.scrollWidth")
        wide = page.evaluate(
            """(limit) => [...document.querySelectorAll("body *")]
              .filter((e) => e.getBoundingClientRect().right > limit)
              .slice(0, 5).map((e) => `${e.tagName}.${e.className}#${e.id}`)""",
            PHONE["width"],
        )
        assert width <= PHONE["width"], f"the dashboard is {width} px wide: {wide}"
        for control in ("workspace-select", "period-90", "sign-out", "nav-chat"):
            box = page.get_by_test_id(control).bounding_box()
            assert box is not None, control
            assert 0 <= box["x"] <= box["x"] + box["width"] <= PHONE["width"], (control, box)
        full_screenshot(page, "dashboard-phone.png")
        watch.assert_clean()
    finally:
        ctx.close()


def test_the_relay_serves_the_dashboard_and_its_chart_library(relay_stack: RunningStack) -> None:
    with httpx.Client(base_url=relay_stack.relay, timeout=10) as client:
        page = client.get("/dashboard")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert page.text == (STATIC_DIR / "dashboard.html").read_text()
        parts = _PageParts()
        parts.feed(page.text)
        assert parts.title == "Apex · Dashboard"
        assert parts.forms == {
            "signin-form": ["email", "password"],
            "period-form": ["radio", "radio", "radio", "radio", "date", "date"],
        }
        # The module, then Chart.js as a classic script (deferred: it runs after the module).
        assert parts.scripts == [
            {"type": "module", "src": "/static/dashboard.js"},
            {"defer": None, "id": "chart-js", "src": "/static/vendor/chart.js/chart.umd.min.js"},
        ]
        # /config.json is preloaded (fetched as the page's script fetches it); the rest are
        # the relay's static files, served as built.
        fetched = [link for link in parts.links if link["rel"] == "preload"]
        assert fetched == [
            {"rel": "preload", "href": "/config.json", "as": "fetch", "crossorigin": "anonymous"}
        ]
        refs = [s["src"] for s in parts.scripts]
        refs += [link["href"] for link in parts.links if link["rel"] != "preload"]
        for ref in refs:
            assert ref is not None
            _served_as_built(client, ref)
        modules, pending = set(), ["/static/dashboard.js"]
        while pending:
            module = pending.pop()
            modules.add(module)
            for spec in _IMPORT.findall(_served_as_built(client, module)):
                assert spec.startswith("./"), (module, spec)
                resolved = str(httpx.URL(f"http://relay{module}").join(spec).path)
                if resolved not in modules:
                    pending.append(resolved)
        # The chat page's own sign-in and workspace code: one module, shared, not a copy. The
        # page preloads exactly the modules dashboard.js imports, so none waits for another.
        preloaded = {link["href"] for link in parts.links if link["rel"] == "modulepreload"}
        assert preloaded == modules - {"/static/dashboard.js"}
        assert modules == {
            "/static/dashboard.js",
            "/static/common.js",
            "/static/vendor/firebase/firebase-app.js",
            "/static/vendor/firebase/firebase-auth.js",
        }
        # The page may call the two agents functions it reads (and nothing else new).
        policy = page.headers["content-security-policy"]
        connect = next(d for d in policy.split(";") if d.strip().startswith("connect-src"))
        for function in ("agents_data", "agents_optimization"):
            assert relay_stack.functions[function].rstrip("/") in connect.split()
        config = client.get("/config.json").json()
        assert config["agentsDataUrl"] == relay_stack.functions["agents_data"]
        assert config["agentsOptimizationUrl"] == relay_stack.functions["agents_optimization"]


def test_the_vendored_chart_js_is_the_pinned_npm_package() -> None:
    lock = json.loads((ROOT / "relay" / "package-lock.json").read_text())
    version = lock["packages"]["node_modules/chart.js"]["version"]
    package = json.loads((ROOT / "relay" / "package.json").read_text())
    assert package["dependencies"]["chart.js"] == version, "chart.js must be pinned exactly"
    vendored = (STATIC_DIR / "vendor" / "chart.js" / "chart.umd.min.js").read_text()
    assert vendored.startswith(f"// chart.js@{version} dist/chart.umd.min.js")
    assert f"Chart.js v{version}" in vendored[:300]
    assert "sourceMappingURL" not in vendored
    check = subprocess.run(
        ["node", str(ROOT / "relay" / "copy-vendor.mjs"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr


# --- alerts (issue 16 item 4): pushed to the chat page, listed unread on the dashboard ---------

ALERT_RECORDS = 6


def spend_today(stack: RunningStack, user: ChatUser, db: firestore.Client) -> None:
    """A few gpt-4o calls of the last minutes, through ``usage_ingest``, applied."""
    now = datetime.now(UTC)
    raw = [
        {
            "id": f"alert-{i}",
            "model": "gpt-4o",
            "provider": "openai",
            "input_tokens": 20_000,
            "output_tokens": 2_000,
            # Today (UTC), however close to midnight the test runs.
            "ts": max(now - timedelta(minutes=i + 1), now.replace(hour=0, minute=0)).isoformat(),
            "feature": "summarize",
        }
        for i in range(ALERT_RECORDS)
    ]
    response = httpx.post(
        stack.functions["usage_ingest"],
        json=raw,
        headers={"Authorization": f"Bearer {user.id_token}", "X-Apex-Workspace": user.workspace},
        timeout=60,
    )
    assert response.status_code == 202, response.text
    store = FirestoreUsageStore(db)
    deadline = time.monotonic() + 60
    while store.catalogue(user.workspace).records < ALERT_RECORDS:
        assert time.monotonic() < deadline, "the aggregator did not apply the records"
        time.sleep(0.25)


def tick(stack: RunningStack, workspace: str) -> None:
    """The tick for one workspace, as the fan-out of the scheduler's tick publishes it."""
    message = BudgetTick(workspace_id=workspace)
    publisher = PublisherClient()
    topic = publisher.topic_path(stack.project, TICK_TOPIC)
    publisher.publish(topic, message.model_dump_json().encode(), **message.attributes()).result(
        timeout=30
    )


def test_an_alert_shows_live_on_the_chat_page_and_unread_on_the_dashboard_until_read(
    relay_stack: RunningStack, context: tuple[BrowserContext, PageWatch]
) -> None:
    """Spend crosses 50% and 80% of a budget; the tick fires both. The chat page, open and
    connected, shows each as it is pushed on its socket, with the unread count; the dashboard
    lists both unread; "Mark all as read" marks them read for this reader (the server's
    mark), so neither page shows them again."""
    with AuthEmulator(relay_stack.hosts.auth, relay_stack.project) as auth:
        user = verified_chat_user(auth)
    api = Workspaces(relay_stack.functions["workspaces"])
    db = firestore.Client(project=relay_stack.project)
    try:
        spend_today(relay_stack, user, db)
    finally:
        db.close()
    ctx, watch = context
    chat = watched_page(ctx, watch)
    chat.goto(f"{relay_stack.relay}/")
    sign_in_chat(chat, user)
    expect(chat.get_by_test_id("alerts-link")).to_be_hidden()  # nothing unread yet

    # Made far above the spend (nothing fires), then set to 85% spent: 50% and 80% crossed.
    budgets = f"/{user.workspace}/budgets"
    made = api.call(user, "POST", budgets, {"name": "Prod", "monthly_usd": 1_000_000}, 201)
    assert made["spend_usd"] > 0, made
    monthly = round(made["spend_usd"] / 0.85, 2)
    api.call(user, "PATCH", f"{budgets}/{made['budget_id']}", {"monthly_usd": monthly})
    tick(relay_stack, user.workspace)
    listed = wait_for_alerts(api, user, 2)
    texts = [n["text"] for n in listed["notifications"]]
    assert all(t.startswith("Budget “Prod” crossed ") for t in texts), texts

    # Live, on the open chat page: the newest one pushed, and both counted unread.
    live = chat.get_by_test_id("live-alert")
    expect(live).to_be_visible(timeout=30_000)
    expect(chat.get_by_test_id("live-alert-kind")).to_have_text("Budget alert")
    either = re.compile("|".join(f"^{re.escape(t)}$" for t in texts))
    expect(chat.get_by_test_id("live-alert-text")).to_have_text(either)
    expect(chat.get_by_test_id("alerts-count")).to_have_text("2")
    expect(chat.get_by_test_id("alerts-link")).to_have_accessible_name(
        "2 unread alerts: see them on the dashboard"
    )
    # A reload counts them from GET /{ws}/notifications (the frames are gone).
    chat.reload()
    expect(chat.get_by_test_id("connection-status")).to_have_text("Connected")
    expect(chat.get_by_test_id("alerts-count")).to_have_text("2")

    # The dashboard lists them, newest first, unread.
    chat.get_by_test_id("alerts-link").click()
    wait_drawn(chat, user.workspace, *preset_range(30))
    alerts = chat.get_by_test_id("alert")
    expect(alerts).to_have_count(2)
    expect(alerts.get_by_test_id("alert-text")).to_have_text(texts)
    expect(chat.get_by_test_id("alerts-unread")).to_have_text("2")
    full_screenshot(chat, "dashboard-alerts.png")
    # On a phone, too, the list and its button fit the screen.
    chat.set_viewport_size(PHONE)
    # (The chart redraws for the new width on its resize observer, a moment later.)
    deadline = time.monotonic() + 10
    while (wide := chat.evaluate("document.documentElement.scrollWidth")) > PHONE["width"]:
        assert time.monotonic() < deadline, f"the dashboard is {wide} px wide on a phone"
        chat.wait_for_timeout(100)
    for element in (alerts.first, chat.get_by_test_id("alerts-read")):
        box = element.bounding_box()
        assert box is not None
        assert 0 <= box["x"] <= box["x"] + box["width"] <= PHONE["width"], box
    chat.set_viewport_size(DESKTOP)
    read = chat.get_by_test_id("alerts-read")
    read.click()
    expect(chat.get_by_test_id("alerts-empty")).to_have_text("No unread alerts.")
    expect(read).to_be_hidden()
    # The keyboard is not lost with the button: it goes to the section's heading.
    expect(chat.get_by_role("heading", name="Unread alerts")).to_be_focused()
    assert api.call(user, "GET", f"/{user.workspace}/notifications")["unread"] == 0
    chat.reload()
    wait_drawn(chat, user.workspace, *preset_range(30))
    expect(chat.get_by_test_id("alerts-empty")).to_be_visible()
    chat.get_by_test_id("nav-chat").click()
    expect(chat.get_by_test_id("connection-status")).to_have_text("Connected")
    expect(chat.get_by_test_id("alerts-link")).to_be_hidden()
    assert_clean(chat, watch)


def sign_in_chat(page: Page, user: ChatUser) -> None:
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(user.password)
    page.get_by_test_id("signin-submit").click()
    expect(page.get_by_test_id("connection-status")).to_have_text("Connected")


def wait_for_alerts(api: Workspaces, user: ChatUser, count: int) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        listed: dict[str, Any] = api.call(user, "GET", f"/{user.workspace}/notifications")
        if len(listed["notifications"]) >= count:
            assert len(listed["notifications"]) == count, listed
            assert listed["unread"] == count, listed
            return listed
        assert time.monotonic() < deadline, f"the tick fired {listed}"
        time.sleep(0.5)
