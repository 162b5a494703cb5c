"""The chat page in a real browser (issue 4 acceptance): Debian's headless Chromium, driven
by Playwright, against the stack with its relay (``relay_stack``), fully offline.

A user in their personal workspace gets the planted synthetic usage through
``usage_ingest``; they sign in through the page's form, ask about last month's spend, and
the page must show the three agents' live timeline, the answer and a recommendations table
whose rows are the ``message`` event's recommendations (and so the planted savings). After
a reload the thread and its history come back from ``threads_get``. A socket dropped in the
middle of a run is reconnected and resumed with no event shown twice or lost.

Every request the page makes must stay on loopback: the Firebase SDK is served by the relay
(relay/static/vendor/), never by a CDN. Screenshots land in ``test-artifacts/``.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    WebSocketRoute,
    expect,
)

from devstack.stack import RunningStack
from shared.budgets.tick import messages_of
from shared.bus import Bus
from shared.models.budgets import NotificationDoc, Period
from tests.data.score import score
from tests.support.browser import ARTIFACTS, PHONE, ROOT, PageWatch, offline_context
from tests.support.browser import open_page as support_open_page
from tests.support.event_sequence import check_sequence
from tests.support.relay import PlantedUser, auth_default_project

QUESTION = "What did we spend last month, and where can we save?"
RUN_TIMEOUT_MS = 90_000
BASIS_LABELS = {"measured": "Measured", "upper_bound": "Upper bound"}  # common.js


@pytest.fixture(scope="module")
def shopper(relay_stack: RunningStack, planted_chat_user: PlantedUser) -> PlantedUser:
    """The signed-up user whose workspace holds last month's planted usage (conftest)."""
    served = auth_default_project(relay_stack.hosts.auth)
    assert relay_stack.project == served, (
        f"relay_stack runs on project {relay_stack.project!r}, but the Auth emulator serves "
        f"the browser SDK's sign-in for {served!r} only: the page could not sign in"
    )
    return planted_chat_user


def open_page(context: BrowserContext, watch: PageWatch, relay: str) -> Page:
    return support_open_page(context, watch, f"{relay}/")


def runs_get(stack: RunningStack, shopper: PlantedUser, run_id: str) -> dict[str, Any]:
    response = httpx.get(
        stack.functions["runs_get"],
        params={"run_id": run_id},
        headers={"Authorization": f"Bearer {shopper.user.id_token}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def sign_in(page: Page, shopper: PlantedUser) -> None:
    expect(page.get_by_test_id("signin-view")).to_be_visible()
    # On the Auth emulator the page offers no Google popup (there is none to offer).
    expect(page.get_by_test_id("signin-google")).to_be_hidden()
    page.get_by_label("Email").fill(shopper.user.email)
    page.get_by_label("Password").fill(shopper.user.password)
    page.get_by_test_id("signin-submit").click()
    wait_connected(page, shopper)


def wait_connected(page: Page, shopper: PlantedUser) -> None:
    expect(page.get_by_test_id("connection-status")).to_have_text("Connected")
    expect(page.get_by_test_id("workspace")).to_have_text(f"workspace {shopper.user.workspace}")


def ask(page: Page, question: str) -> str:
    """Send ``question`` from the composer; the run's id once its timeline appears."""
    runs_before = page.get_by_test_id("run").count()
    page.get_by_label("Message").fill(question)
    page.get_by_test_id("send").click()
    run = page.get_by_test_id("run").nth(runs_before)
    expect(run).to_be_attached()
    run_id = run.get_attribute("data-run-id")
    assert run_id
    return run_id


def wait_done(page: Page, run_id: str) -> None:
    run = page.locator(f'[data-testid="run"][data-run-id="{run_id}"]')
    expect(run).to_have_attribute("data-done", "done", timeout=RUN_TIMEOUT_MS)


def rendered_seqs(page: Page, run_id: str) -> list[int]:
    """Every seq the run's timeline shows (a tool row also carries its completion's seq)."""
    seqs: list[int] = page.eval_on_selector_all(
        f'[data-run-id="{run_id}"] [data-testid="timeline-row"]',
        "rows => rows.flatMap(r => [r.dataset.seq, r.dataset.completedSeq]"
        ".filter(Boolean).map(Number))",
    )
    return seqs


def js_round(value: float) -> int:
    """``Math.round``: halves go up (Python's ``round`` takes them to even)."""
    return math.floor(value + 0.5)


def money(amount: float) -> str:
    return f"${amount:,.2f}"


def check_timeline(page: Page, run_id: str, events: list[dict[str, Any]]) -> None:
    """The timeline shows each event once, in order: agents, thinking, tools with results."""
    assert rendered_seqs(page, run_id) == [e["seq"] for e in events]
    run = page.locator(f'[data-run-id="{run_id}"]')
    rows = run.get_by_test_id("timeline-row")
    shown = [e for e in events if e["event"] != "tool_completed"]
    assert rows.count() == len(shown)
    for index, event in enumerate(shown):
        row = rows.nth(index)
        expect(row).to_have_attribute("data-seq", str(event["seq"]))
        expect(row).to_have_attribute("data-event", event["event"])
        if "agent" in event:
            expect(row).to_have_attribute("data-agent", event["agent"])
    started = run.locator('[data-event="agent_started"]')
    expect(started).to_have_count(3)
    for index, agent in enumerate(["triage", "data", "optimization"]):
        expect(started.nth(index)).to_have_attribute("data-agent", agent)
    thinking = [e for e in events if e["event"] == "agent_thinking"]
    for event in thinking:
        expect(run.locator(f'[data-seq="{event["seq"]}"]')).to_contain_text(
            event["data"]["reasoning"]
        )
    completed = {e["data"]["execution_id"]: e for e in events if e["event"] == "tool_completed"}
    for event in (e for e in events if e["event"] == "tool_executing"):
        done = completed[event["data"]["execution_id"]]
        row = run.locator(f'[data-seq="{event["seq"]}"]')
        expect(row).to_have_attribute("data-tool", event["data"]["tool_name"])
        expect(row).to_have_attribute("data-completed-seq", str(done["seq"]))
        # One decimal; JS rounds a tie up where Python rounds it to even, so compare numbers.
        timing = row.get_by_test_id("tool-ms").text_content() or ""
        assert timing.endswith(" ms"), timing
        assert abs(float(timing[:-3]) - done["data"]["execution_time_ms"]) <= 0.05 + 1e-9
        # Arguments and results are the events' own JSON, behind a disclosure.
        args = row.get_by_test_id("tool-args").locator("code").text_content()
        results = row.get_by_test_id("tool-results").locator("code").text_content()
        assert json.loads(args or "") == event["data"]["tool_args"]
        assert json.loads(results or "") == done["data"]["results"]


def check_recommendations(table_scope: Any, recommendations: list[dict[str, Any]]) -> None:
    """The table's rows are ``recommendations``, in order, with their savings and total."""
    rows = table_scope.get_by_test_id("recommendation-row")
    expect(rows).to_have_count(len(recommendations))
    for index, rec in enumerate(recommendations):
        row = rows.nth(index)
        expect(row).to_have_attribute("data-kind", rec["kind"])
        # Inline `code` in a title is rendered as code, without its backticks.
        expect(row.get_by_test_id("rec-title").locator(".rec-title")).to_have_text(
            rec["title"].replace("`", "")
        )
        expect(row.get_by_test_id("rec-savings")).to_have_text(money(rec["monthly_savings_usd"]))
        expect(row.get_by_test_id("rec-confidence")).to_have_text(
            f"{js_round(rec['confidence'] * 100)}%"
        )
        # What the saving rests on (issue 14): measured, or an upper bound.
        basis = row.get_by_test_id("rec-basis")
        expect(basis).to_have_text(BASIS_LABELS[rec["basis"]] if rec.get("basis") else "Not stated")
        expect(basis.locator("[data-basis]")).to_have_attribute(
            "data-basis", rec.get("basis") or ""
        )
        model = rec["model"] + (f" → {rec['target_model']}" if rec.get("target_model") else "")
        # The second model proposed, priced on its own.
        for other in rec.get("targets", [])[1:]:
            model += f" or {other['model']} ({money(other['monthly_savings_usd'])}/mo)"
        expect(row.get_by_test_id("rec-model")).to_have_text(model)
        expect(row.get_by_test_id("rec-feature")).to_have_text(rec["feature"] or "all")
    total = sum(js_round(r["monthly_savings_usd"] * 100) for r in recommendations) / 100
    expect(table_scope.get_by_test_id("recommendations-total")).to_have_text(money(total))


def screenshot(page: Page, name: str) -> Path:
    """The whole conversation in one picture: grow the viewport to its height, then restore."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    size = page.viewport_size or {"width": 1440, "height": 1000}
    overflow = page.get_by_test_id("conversation").evaluate("c => c.scrollHeight - c.clientHeight")
    page.set_viewport_size({"width": size["width"], "height": size["height"] + int(overflow)})
    page.screenshot(path=str(path))
    page.set_viewport_size(size)
    return path


def test_chat_page_answers_with_a_live_timeline_and_the_planted_savings(
    relay_stack: RunningStack,
    shopper: PlantedUser,
    context: tuple[BrowserContext, PageWatch],
) -> None:
    browser_context, watch = context
    page = open_page(browser_context, watch, relay_stack.relay)
    sign_in(page, shopper)
    expect(page.get_by_test_id("emulator-badge")).to_be_visible()

    run_id = ask(page, QUESTION)
    run = page.locator(f'[data-testid="run"][data-run-id="{run_id}"]')
    # The timeline is live: rows appear while the run is still going, well before the answer.
    expect(run.locator('[data-event="agent_started"][data-agent="triage"]')).to_be_attached()
    wait_done(page, run_id)

    body = runs_get(relay_stack, shopper, run_id)
    assert body["run"]["status"] == "completed"
    events = body["events"]
    check_sequence(events, ["triage", "data", "optimization"])
    check_timeline(page, run_id, events)

    message = next(e for e in events if e["event"] == "message")["data"]
    recommendations = message["recommendations"]
    check_recommendations(run, recommendations)
    # ... and those are the planted inefficiencies, priced within 5 % of what was planted.
    found = {(r["kind"], r["model"], r["feature"]): r for r in recommendations}
    planted = shopper.planted.manifest.inefficiencies
    assert len(found) == len(planted) == len(recommendations)
    for plant in planted:
        rec = found[(plant.kind, plant.model, plant.feature)]
        assert rec["monthly_savings_usd"] == pytest.approx(plant.monthly_savings_usd, rel=0.05)
    # The answer text is rendered (markdown-ish, as text: no markup from the answer survives).
    answer = run.get_by_test_id("answer")
    top = max(recommendations, key=lambda r: r["monthly_savings_usd"])
    expect(answer).to_contain_text(f"{money(top['monthly_savings_usd'])}/month")
    expect(answer.locator("strong").first).to_be_visible()
    assert "**" not in (answer.locator(".prose").text_content() or "")

    # The picture a person would check: expand the steps, show the whole conversation.
    run.locator(".run-details > summary").click()
    expect(run.locator(".run-details")).to_have_attribute("open", "")
    screenshot(page, "chat.png")

    # A reload signs back in from the SDK's persistence; the thread is listed with its history.
    thread_id = events[0]["data"]["thread_id"]
    page.reload()
    wait_connected(page, shopper)
    item = page.locator(f'[data-testid="thread-item"][data-thread-id="{thread_id}"]')
    expect(item).to_contain_text(QUESTION)
    item.click()
    expect(item).to_have_attribute("aria-current", "page")
    expect(page.get_by_test_id("message-user")).to_have_text([QUESTION])
    assistant = page.get_by_test_id("message-assistant")
    expect(assistant).to_have_count(1)
    expect(assistant).to_contain_text(f"{money(top['monthly_savings_usd'])}/month")
    check_recommendations(assistant, recommendations)
    screenshot(page, "chat-reloaded.png")
    watch.assert_clean()


def test_a_dropped_socket_is_resumed_without_repeating_or_losing_an_event(
    relay_stack: RunningStack,
    shopper: PlantedUser,
    context: tuple[BrowserContext, PageWatch],
) -> None:
    """A refreshed token is sent on the open socket. Then the relay's socket dies mid-run
    (1012, as on a deploy): the page reconnects, signs in again, sends ``run.resume`` with the
    last seq it saw, and shows every event once."""
    browser_context, watch = context
    sockets: list[list[dict[str, Any]]] = []  # per connection: frames the page sent
    answers: list[list[str]] = []  # per connection: types of the frames the page was given
    delivered: list[list[int]] = []  # per connection: event seqs the page was given

    def proxy(ws: WebSocketRoute) -> None:
        sent: list[dict[str, Any]] = []
        got: list[str] = []
        seqs: list[int] = []
        sockets.append(sent)
        answers.append(got)
        delivered.append(seqs)
        first = len(sockets) == 1
        server = ws.connect_to_server()
        state = {"dropped": False}

        def to_server(message: str | bytes) -> None:
            sent.append(json.loads(message))
            server.send(message)

        def to_page(message: str | bytes) -> None:
            if state["dropped"]:
                return
            frame = json.loads(message)
            ws.send(message)
            got.append(frame["type"])
            if frame["type"] != "event":
                return
            seqs.append(frame["seq"])
            # Cut the first connection once the run is under way (after triage's first tool).
            if first and frame["event"] == "tool_executing":
                state["dropped"] = True
                ws.close(code=1012, reason="restarting")
                server.close()

        ws.on_message(to_server)
        server.on_message(to_page)

    page = browser_context.new_page()
    page.on("pageerror", lambda e: watch.errors.append(f"pageerror: {e}"))
    page.route_web_socket(re.compile(r"/ws$"), proxy)
    page.goto(f"{relay_stack.relay}/")
    sign_in(page, shopper)

    # The SDK refreshes tokens before exp (forced here, on the page's own Auth instance):
    # the fresh token goes to the relay on the same socket and is answered by auth.ok. The
    # emulator's unsigned tokens differ only by iat, in seconds: a refresh within the second
    # of sign-in would be the same token, which the SDK does not announce.
    page.wait_for_timeout(1100)
    page.evaluate(
        """async () => {
            const { getAuth } = await import("/static/vendor/firebase/firebase-auth.js");
            await getAuth().currentUser.getIdToken(true);
        }"""
    )
    deadline = time.monotonic() + 10
    while answers[0].count("auth.ok") < 2:
        assert time.monotonic() < deadline, f"no second auth.ok: sent {sockets[0]}"
        page.wait_for_timeout(100)  # lets Playwright run the proxy's handlers
    assert [f["type"] for f in sockets[0]] == ["auth", "auth"]
    assert len(sockets) == 1
    expect(page.get_by_test_id("connection-status")).to_have_text("Connected")

    page.get_by_test_id("new-chat").click()
    run_id = ask(page, "Where can we save on gpt-4o last month?")
    wait_done(page, run_id)

    assert len(sockets) >= 2, "the page did not reconnect"
    before = delivered[0]
    assert before == list(range(1, len(before) + 1))
    second = sockets[1]
    assert second[0]["type"] == "auth", "the new socket's first frame is not auth"
    resume = [f for f in second if f["type"] == "run.resume"]
    assert resume == [{"type": "run.resume", "run_id": run_id, "after_seq": before[-1]}]

    events = runs_get(relay_stack, shopper, run_id)["events"]
    assert events[-1]["event"] == "run_completed"
    # Every seq on screen exactly once, none missing, in the order of the run.
    assert rendered_seqs(page, run_id) == [e["seq"] for e in events]
    check_timeline(page, run_id, events)
    watch.assert_clean()


def test_vendored_firebase_sdk_is_the_pinned_npm_package() -> None:
    """relay/static/vendor/ is what relay/copy-vendor.mjs makes from the locked npm package."""
    lock = json.loads((ROOT / "relay" / "package-lock.json").read_text())
    version = lock["packages"]["node_modules/firebase"]["version"]
    package = json.loads((ROOT / "relay" / "package.json").read_text())
    assert package["dependencies"]["firebase"] == version, "firebase must be pinned exactly"
    vendored = ROOT / "relay" / "static" / "vendor" / "firebase"
    for name in ("firebase-app.js", "firebase-auth.js"):
        text = (vendored / name).read_text()
        assert text.startswith(f"// firebase@{version} {name}")
        assert not re.search(r"""(\bfrom\s*|\bimport\s*\(?\s*)["']https?:""", text)
    check = subprocess.run(
        ["node", str(ROOT / "relay" / "copy-vendor.mjs"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr


# --- issue 15 item 5: the view follows, wide tables scroll in their box, follow-ups, phones --


def in_view(page: Page, testid_scope: Any) -> bool:
    """The top of ``testid_scope`` (a locator) is within the conversation's visible part."""
    inside: bool = testid_scope.evaluate(
        """(e) => {
            const c = document.querySelector('[data-testid="conversation"]')
              .getBoundingClientRect();
            const r = e.getBoundingClientRect();
            return r.top >= c.top - 1 && r.top < c.bottom - 20;
        }"""
    )
    return inside


def triage_result(stack: RunningStack, shopper: PlantedUser, run_id: str) -> dict[str, Any]:
    events = runs_get(stack, shopper, run_id)["events"]
    done = [e for e in events if e["event"] == "agent_completed" and e.get("agent") == "triage"]
    assert len(done) == 1, events
    result: dict[str, Any] = done[0]["data"]["result"]
    return result


def follow_up(page: Page, text: str) -> str:
    """Click the newest answer's suggestion ``text``; the run it starts."""
    runs_before = page.get_by_test_id("run").count()
    offered = page.get_by_test_id("run").last.get_by_test_id("followup")
    offered.filter(has_text=re.compile(f"^{re.escape(text)}$")).click()
    expect(page.get_by_test_id("message-user").last).to_have_text(text)
    run = page.get_by_test_id("run").nth(runs_before)
    expect(run).to_be_attached()
    run_id = run.get_attribute("data-run-id")
    assert run_id
    return run_id


def check_newest_in_view(page: Page, run_id: str) -> None:
    """The run just finished: its answer is on screen (the page followed it there), and the
    conversation is longer than the screen (so following was needed)."""
    run = page.locator(f'[data-testid="run"][data-run-id="{run_id}"]')
    expect(run).to_have_attribute("data-done", "done", timeout=RUN_TIMEOUT_MS)
    overflow = page.get_by_test_id("conversation").evaluate("c => c.scrollHeight - c.clientHeight")
    assert overflow > 0, "the conversation fits the screen: nothing to follow"
    # The page positions the answer once the run ends; give it its frame.
    deadline = time.monotonic() + 5
    while not in_view(page, run.get_by_test_id("answer")):
        assert time.monotonic() < deadline, "the newest answer is not in view"
        page.wait_for_timeout(100)


def test_the_view_follows_the_newest_answer_and_its_follow_ups_continue_the_thread(
    relay_stack: RunningStack, shopper: PlantedUser, browser: Browser
) -> None:
    """A screen shorter than the conversation: each question and answer comes into view as
    it arrives, however tall the one before. The suggestions after an answer are its natural
    follow-ups, each one the triage reads with the thread's context (a follow-up that
    inherits, or a reference to the answer's recommendation), and clicking one asks it."""
    context, watch = offline_context(browser, viewport={"width": 1280, "height": 720})
    try:
        page = open_page(context, watch, relay_stack.relay)
        sign_in(page, shopper)
        page.get_by_test_id("new-chat").click()

        first = ask(page, QUESTION)
        check_newest_in_view(page, first)
        # New messages are announced (a log), the steps' rows are not read out one by one.
        expect(page.get_by_test_id("conversation")).to_have_attribute("role", "log")
        timeline = page.locator(f'[data-run-id="{first}"]').get_by_test_id("timeline")
        expect(timeline).to_have_attribute("aria-live", "off")
        # A spend-and-savings answer for last month invites the month before, a breakdown,
        # and the recommendations' steps and evidence.
        offered = page.locator(f'[data-run-id="{first}"] [data-testid="followup"]')
        expect(offered).to_have_text(["And the month before?", "By feature", "How?", "#1 why?"])
        expect(page.get_by_test_id("followups")).to_have_count(1)

        # A breakdown alone: a follow-up that keeps last month and both questions.
        second = follow_up(page, "By feature")
        check_newest_in_view(page, second)
        triaged = triage_result(relay_stack, shopper, second)
        assert triaged["route"]["answer"] == "findings"
        assert {"intent", "period"} <= set(triaged["entities"]["inherited"]), triaged["entities"]
        assert triaged["entities"]["group_by"] == ["feature"]
        # Only the newest answer offers follow-ups.
        expect(page.get_by_test_id("followups")).to_have_count(1)
        newest = page.locator(f'[data-run-id="{second}"] [data-testid="followup"]')
        expect(newest).to_have_text(["And the month before?", "By model", "How?", "#1 why?"])

        # "How?": the steps of the recommendation the answer led with, from its findings.
        third = follow_up(page, "How?")
        check_newest_in_view(page, third)
        triaged = triage_result(relay_stack, shopper, third)
        assert triaged["route"]["answer"] == "reference"
        reference = triaged["entities"]["reference"]
        assert (reference["kind"], reference["ranks"], reference["asks"]) == (
            "recommendation",
            [1],
            "how",
        )
        answer = page.locator(f'[data-run-id="{third}"]').get_by_test_id("answer")
        expect(answer).to_contain_text("To act on #1")
        # ... and then the evidence of the same one, or the next one.
        expect(page.locator(f'[data-run-id="{third}"] [data-testid="followup"]')).to_have_text(
            ["#1 why?", "Tell me more about #2"]
        )

        screenshot(page, "chat-follow-ups.png")

        # A reader who scrolls back up to read, while a run goes on, stays where they are.
        fourth = ask(page, "and the week before?")
        conversation = page.get_by_test_id("conversation")
        conversation.evaluate("c => { c.scrollTop = 0; }")
        wait_done(page, fourth)
        page.wait_for_timeout(300)
        assert conversation.evaluate("c => c.scrollTop") == 0, "the view was pulled away"
        watch.assert_clean()
    finally:
        context.close()


def test_after_an_anomaly_the_page_offers_what_caused_it_and_answers_from_its_driver(
    relay_stack: RunningStack, shopper: PlantedUser, context: tuple[BrowserContext, PageWatch]
) -> None:
    browser_context, watch = context
    page = open_page(browser_context, watch, relay_stack.relay)
    sign_in(page, shopper)
    page.get_by_test_id("new-chat").click()
    first = ask(page, "Were there any spend anomalies last month?")
    wait_done(page, first)
    events = runs_get(relay_stack, shopper, first)["events"]
    measured = next(
        e for e in events if e["event"] == "agent_completed" and e.get("agent") == "data"
    )
    anomalies = measured["data"]["result"]["anomalies"]
    assert anomalies, "the planted month has a spend anomaly"
    offered = page.locator(f'[data-run-id="{first}"] [data-testid="followup"]')
    expect(offered).to_have_text(["What caused it?", "And the month before?"])
    second = follow_up(page, "What caused it?")
    wait_done(page, second)
    triaged = triage_result(relay_stack, shopper, second)
    assert triaged["route"]["answer"] == "reference"
    reference = triaged["entities"]["reference"]
    assert (reference["kind"], reference["ranks"]) == ("anomaly", [1]), reference
    # The answer is the anomaly's driver on its day, from the earlier findings.
    costliest = max(anomalies, key=lambda a: a["cost_usd"])
    answer = page.locator(f'[data-run-id="{second}"]').get_by_test_id("answer")
    expect(answer).to_contain_text(costliest["driver"]["model"])
    watch.assert_clean()


# The follow-ups the page offers (app.js ``followUps``), after the answer each follows, with
# what triage must make of it read with that answer's thread context (tests/data/score.py's
# checks; now = 2026-11-20 there). The browser tests above click three of them on the stack;
# this checks every one against the rule engine, so a change of wording on either side fails.
FOLLOW_UPS: tuple[tuple[str, str, str, str], ...] = (
    # (earlier question and its checks, follow-up, its intent, its checks)
    (
        "optimization | What did we spend last month, and where can we save? | period=last_month",
        "And the month before?",
        "optimization",
        "answer=findings; period=2026-09-01..2026-10-01; inherited=intent",
    ),
    (
        "cost_analysis | Which feature cost the most last week? | period=last_week",
        "And the week before?",
        "cost_analysis",
        "answer=findings; period=2026-11-02..2026-11-09; inherited=intent",
    ),
    (
        "cost_analysis | What did we spend this month? | period=this_month",
        "And last month?",
        "cost_analysis",
        "answer=findings; period=last_month; inherited=intent",
    ),
    (
        "optimization | What did we spend last month, and where can we save? | period=last_month",
        "By feature",
        "optimization",
        "answer=findings; period=last_month; inherited=intent,period",
    ),
    (
        "cost_analysis | Show me spend by feature last month | period=last_month",
        "By model",
        "cost_analysis",
        "answer=findings; period=last_month; inherited=intent,period",
    ),
    (
        "optimization | Where can we save last month? | period=last_month",
        "How?",
        "optimization",
        "answer=reference; ref=recommendation:1",
    ),
    (
        "optimization | Where can we save last month? | period=last_month",
        "#1 why?",
        "optimization",
        "answer=reference; ref=recommendation:1",
    ),
    (
        "optimization | Where can we save last month? | period=last_month",
        "Tell me more about #2",
        "optimization",
        "answer=reference; ref=recommendation:2",
    ),
    (
        "anomaly | Were there any spend anomalies in the last 30 days? | period=last_30d",
        "What caused it?",
        "anomaly",
        "answer=reference; ref=anomaly:1",
    ),
    (
        "anomaly | Were there any spend anomalies in the last 30 days? | period=last_30d",
        "And the month before?",
        "anomaly",
        "answer=findings; inherited=intent",
    ),
)


def test_every_follow_up_the_page_offers_is_one_triage_resolves(tmp_path: Path) -> None:
    script = (ROOT / "relay" / "static" / "app.js").read_text()
    lines = []
    for first, follow, intent, checks in FOLLOW_UPS:
        # Written as the page writes it ("#1 why?" and "Tell me more about #2" from templates).
        literal = follow.replace("#1 why?", "#${rank} why?").replace("#2", "#${rank + 1}")
        assert f'"{follow}"' in script or f"`{literal}`" in script, f"app.js offers no {follow!r}"
        lines += [f"== {follow}", first, f"> {intent} | {follow} | {checks}"]
    labelled = tmp_path / "follow_ups.txt"
    labelled.write_text("\n".join(lines) + "\n")
    report = score(labelled)
    wrong = [f"{s.turn.message!r}: {'; '.join(s.wrong)}" for s in report.scored if s.wrong]
    assert wrong == []
    assert len(report.follow_ups) == len(FOLLOW_UPS)


def publish_alert(stack: RunningStack, workspace: str) -> None:
    """An alert frame for ``workspace``'s sockets, on ``apex-events`` as ``budget_worker``
    publishes it (not stored: only the frame)."""
    doc = NotificationDoc(
        notification_id=f"a_{uuid.uuid4().hex[:16]}",
        workspace_id=workspace,
        kind="anomaly",
        text="Spend on 2026-12-01 was $41.20, 3.1 times the usual $13.29, driven by gpt-4o.",
        created_at=datetime.now(UTC),
        period=Period(start="2026-12-01", end="2026-12-01"),
        spend_usd=41.2,
    )
    Bus(Bus.publisher(), stack.project).publish_all(messages_of(doc))


# An element is itself at its centre: nothing covers it, so a tap or a click reaches it.
UNCOVERED = """(b) => { const r = b.getBoundingClientRect();
    return document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2) === b; }"""


def test_on_a_phone_the_top_bar_fits_and_a_wide_table_scrolls_in_its_box(
    relay_stack: RunningStack, shopper: PlantedUser, browser: Browser
) -> None:
    context, watch = offline_context(browser, viewport=PHONE)
    try:
        page = open_page(context, watch, relay_stack.relay)
        sign_in(page, shopper)
        width = PHONE["width"]
        # With an alert pushed (its unread count in the top bar), the bar is at its fullest.
        publish_alert(relay_stack, shopper.user.workspace)
        expect(page.get_by_test_id("live-alert")).to_be_visible(timeout=30_000)
        expect(page.get_by_test_id("alerts-count")).to_have_text(re.compile(r"^[1-9]\d*$"))
        # Nothing sticks out of the screen (what scrolls inside a box of its own aside).
        outside = """(limit) => [...document.querySelectorAll("body *")].filter((e) => {
                const r = e.getBoundingClientRect();
                if (!r.width || r.right <= limit + 0.5) return false;
                for (let p = e.parentElement; p && p !== document.body; p = p.parentElement) {
                  const s = getComputedStyle(p);
                  if (["auto", "scroll", "hidden"].includes(s.overflowX)
                      && p.getBoundingClientRect().right <= limit + 0.5) return false;
                }
                return true;
              }).map((e) => `${e.tagName}.${e.className}#${e.id}`
                + ` right=${e.getBoundingClientRect().right}`)"""
        assert page.evaluate(outside, width) == []
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        controls = ("sign-out", "nav-dashboard", "alerts-link", "connection-status")
        for control in (*controls, "workspace-select", "live-alert-close"):
            box = page.get_by_test_id(control).bounding_box()
            assert box is not None, control
            assert box["x"] >= 0, (control, box)
            assert box["x"] + box["width"] <= width, (control, box)
        # "Sign out" is itself at its centre: nothing covers it, so a tap reaches it.
        sign_out = page.get_by_test_id("sign-out")
        assert sign_out.evaluate(UNCOVERED)

        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "chat-phone-top.png"))
        # The widths between a phone and a desktop, where the bar does not wrap yet.
        for wider in (640, 820, 1024):
            page.set_viewport_size({"width": wider, "height": PHONE["height"]})
            assert page.evaluate(outside, wider) == [], wider
            assert page.evaluate("document.documentElement.scrollWidth") <= wider
            assert sign_out.evaluate(UNCOVERED), wider
        page.set_viewport_size(PHONE)
        page.get_by_test_id("new-chat").evaluate("b => b.click()")  # the sidebar is hidden here
        run_id = ask(page, QUESTION)
        wait_done(page, run_id)
        run = page.locator(f'[data-testid="run"][data-run-id="{run_id}"]')
        scroller = run.get_by_test_id("recommendations-scroll")
        sizes = scroller.evaluate("b => [b.scrollWidth, b.clientWidth]")
        assert sizes[0] > sizes[1], f"the table fits a phone ({sizes}): nothing to scroll"
        # Its last column is reached by scrolling the table's own box...
        last = run.locator('[data-testid="recommendations"] thead th').last
        expect(last).to_have_text("Feature")
        scroller.evaluate("b => { b.scrollLeft = b.scrollWidth; }")
        reach = last.evaluate(
            """(th) => { const b = th.closest('[data-testid="recommendations-scroll"]')
                .getBoundingClientRect(); const r = th.getBoundingClientRect();
                return [r.left >= b.left - 1, r.right <= b.right + 1]; }"""
        )
        assert reach == [True, True], "the last column is clipped"
        # ... which the keyboard scrolls too (the box takes the focus).
        scroller.evaluate("b => { b.scrollLeft = 0; }")
        scroller.focus()
        expect(scroller).to_be_focused()
        page.keyboard.press("ArrowRight")
        expect(scroller).not_to_have_js_property("scrollLeft", 0)
        # ... while the page and the conversation never scroll sideways.
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        conversation = page.get_by_test_id("conversation")
        assert conversation.evaluate("c => c.scrollWidth - c.clientWidth") <= 0
        assert page.evaluate(outside, width) == []
        screenshot(page, "chat-phone.png")

        sign_out.click()
        expect(page.get_by_test_id("signin-view")).to_be_visible()
        watch.assert_clean()
    finally:
        context.close()
