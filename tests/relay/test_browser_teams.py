"""The chat page's team views in a real browser (issue 12 item 5, DESIGN §9): Debian's
headless Chromium, driven by Playwright, against the stack with its relay (``relay_stack``)
and its real ``workspaces`` function, fully offline.

Each person has a browser context of their own. What the page shows is checked against what
the functions say (``tests.support.teams.Workspaces``, over HTTP), and the WebSocket frames
the page sends and gets are recorded: the socket's workspace is the relay's ``auth.ok``, not
the page's own idea of it. Controls a role cannot use must be absent from the page, not
disabled. Screenshots land in ``test-artifacts/``.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Locator,
    Page,
    Playwright,
    WebSocket,
    expect,
    sync_playwright,
)

from devstack.auth_emulator import AuthEmulator
from devstack.stack import RunningStack
from shared.workspaces.roles import Role
from tests.support.browser import (
    PHONE,
    PageWatch,
    launch,
    offline_context,
    open_page,
    screenshot,
    sign_in,
    watched_page,
)
from tests.support.relay import ChatUser, auth_default_project
from tests.support.teams import Workspaces, verified_chat_user

RUN_TIMEOUT_MS = 90_000
# The relay and the functions may answer from a membership or key check up to this old
# (DESIGN §9: at most 10 s), so a removal or a revocation shows within it.
ACCESS_CACHE_S = 10.0
# The team dialog moves the keyboard once the function calls its view needs have answered
# (the workspace list, members, invites or keys): on a loaded machine these can take longer
# than expect's 5 s default, so focus is awaited as long as any other step of a view.
FOCUS_TIMEOUT_MS = 20_000
NO_CONTROLS = (
    "invite-form",
    "invite-list",
    "invite-row",
    "invite-revoke",
    "member-role",
    "member-remove",
    "tab-keys",
    "key-form",
    "key-revoke",
)

Contexts = Callable[..., tuple[BrowserContext, PageWatch]]


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def browser(playwright: Playwright, relay_stack: RunningStack) -> Iterator[Browser]:
    served = auth_default_project(relay_stack.hosts.auth)
    assert relay_stack.project == served, (
        f"relay_stack runs on project {relay_stack.project!r}, but the Auth emulator serves "
        f"the browser SDK's sign-in for {served!r} only: the page could not sign in"
    )
    browser = launch(playwright)
    yield browser
    browser.close()


@pytest.fixture
def contexts(browser: Browser) -> Iterator[Contexts]:
    """Browser contexts, one per person (each its own signed-in user), closed after the test."""
    made: list[BrowserContext] = []

    def make(**kwargs: Any) -> tuple[BrowserContext, PageWatch]:
        context, watch = offline_context(browser, **kwargs)
        made.append(context)
        return context, watch

    yield make
    for context in made:
        context.close()


@pytest.fixture
def people(relay_stack: RunningStack) -> Iterator[Callable[[], ChatUser]]:
    """New users of the stack's Auth emulator, each with a verified email."""
    with AuthEmulator(relay_stack.hosts.auth, relay_stack.project) as auth:
        yield partial(verified_chat_user, auth)


@pytest.fixture
def api(relay_stack: RunningStack) -> Workspaces:
    assert "workspaces" in relay_stack.functions, "the stack serves no `workspaces` function"
    return Workspaces(relay_stack.functions["workspaces"])


@dataclass
class Sockets:
    """The page's relay sockets, each as the frames it sent and got (tokens blanked)."""

    sent: list[list[dict[str, Any]]] = field(default_factory=list)
    got: list[list[dict[str, Any]]] = field(default_factory=list)

    def watch(self, page: Page) -> None:
        page.on("websocket", self._opened)

    def _opened(self, ws: WebSocket) -> None:
        if not ws.url.endswith("/ws"):
            return
        sent: list[dict[str, Any]] = []
        got: list[dict[str, Any]] = []
        self.sent.append(sent)
        self.got.append(got)
        ws.on("framesent", lambda payload: sent.append(_frame(payload)))
        ws.on("framereceived", lambda payload: got.append(_frame(payload)))

    def auths(self, index: int) -> list[str | None]:
        """The workspace each auth frame of socket ``index`` asked for."""
        return [f.get("workspace_id") for f in self.sent[index] if f["type"] == "auth"]

    def auth_oks(self, index: int) -> list[tuple[str, str]]:
        """(workspace_id, role) of each auth.ok socket ``index`` got."""
        return [(f["workspace_id"], f["role"]) for f in self.got[index] if f["type"] == "auth.ok"]


def _frame(payload: str | bytes) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(payload)
    if "token" in frame:
        frame["token"] = "<token>"
    return frame


def until(check: Callable[[], bool], what: str, page: Page, timeout_s: float = 10.0) -> None:
    """Wait for ``check`` (recorded frames), letting Playwright run its event handlers."""
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        page.wait_for_timeout(50)


def switcher(page: Page) -> Locator:
    return page.get_by_label("Workspace", exact=True)


def in_workspace(page: Page, workspace: str, label: str) -> None:
    """The relay's auth.ok put the socket in ``workspace``; the switcher shows ``label``."""
    expect(page.get_by_test_id("connection-status")).to_have_text("Connected")
    expect(page.get_by_test_id("workspace")).to_have_text(f"workspace {workspace}")
    expect(switcher(page)).to_have_value(workspace)
    expect(switcher(page).locator("option:checked")).to_have_text(label)


def switch_to(page: Page, workspace: str, label: str) -> None:
    """Chosen in the switcher; the socket is then in ``workspace`` (``in_workspace``)."""
    switcher(page).select_option(workspace)
    in_workspace(page, workspace, label)


def signed_in(context: BrowserContext, watch: PageWatch, url: str, person: ChatUser) -> Page:
    """The page at ``url``, signed in as ``person``."""
    page = open_page(context, watch, url)
    sign_in(page, person.email, person.password)
    return page


@dataclass(frozen=True)
class TeamOf:
    """A team workspace its owner made, with one more person in it."""

    owner: ChatUser
    other: ChatUser
    workspace: str
    name: str


@pytest.fixture
def team_of(people: Callable[[], ChatUser], api: Workspaces) -> Callable[[str, Role], TeamOf]:
    """``make(prefix, role)``: a new owner's team named ``prefix`` and a few random
    characters, which a second new person joined as ``role`` (through the functions)."""

    def make(prefix: str, role: Role) -> TeamOf:
        owner, other = people(), people()
        name = f"{prefix} {uuid.uuid4().hex[:6]}"
        team = api.create(owner, name)
        api.join(owner, team, other, role)
        return TeamOf(owner, other, team, name)

    return make


def ask(page: Page, question: str) -> None:
    """Send ``question`` from the composer and wait for its run to complete."""
    runs_before = page.get_by_test_id("run").count()
    page.get_by_label("Message").fill(question)
    page.get_by_test_id("send").click()
    run = page.get_by_test_id("run").nth(runs_before)
    expect(run).to_have_attribute("data-done", "done", timeout=RUN_TIMEOUT_MS)


def accepted_threads(sockets: Sockets) -> list[str]:
    return [f["thread_id"] for got in sockets.got for f in got if f["type"] == "chat.accepted"]


def ingest_one(stack: RunningStack, credential: str) -> httpx.Response:
    """One usage record to ``usage_ingest`` with ``credential`` as the bearer."""
    record = {
        "model": "gpt-4o",
        "provider": "openai",
        "input_tokens": 100,
        "output_tokens": 20,
        "ts": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    return httpx.post(
        stack.functions["usage_ingest"],
        json=[record],
        headers={"Authorization": f"Bearer {credential}"},
        timeout=30,
    )


def open_team(page: Page, name: str) -> Locator:
    """The team dialog from the top bar's button, loaded (its member list shown)."""
    page.get_by_test_id("open-team").click()
    dialog = page.get_by_role("dialog", name=name)
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("tab", name="Members")).to_be_attached()
    return dialog


def close_dialog(page: Page, dialog: Locator, opener: Locator) -> None:
    """Escape closes it and gives the keyboard back to what opened it."""
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(opener).to_be_focused(timeout=FOCUS_TIMEOUT_MS)


def on_screen(element: Locator) -> None:
    """``element`` lies within the phone's width."""
    box = element.bounding_box()
    assert box is not None, "not rendered"
    assert box["x"] >= 0, box
    assert box["x"] + box["width"] <= PHONE["width"], box


def test_an_owner_builds_a_team_and_a_demoted_colleague_sees_no_controls(
    relay_stack: RunningStack, people: Callable[[], ChatUser], api: Workspaces, contexts: Contexts
) -> None:
    owner, colleague = people(), people()
    owner_context, owner_watch = contexts()
    page = signed_in(owner_context, owner_watch, f"{relay_stack.relay}/", owner)
    in_workspace(page, owner.uid, "Personal · owner")
    expect(switcher(page).locator("option")).to_have_text(["Personal · owner"])

    # A team workspace, made from the page: the page switches to it at once.
    name = f"Acme {uuid.uuid4().hex[:6]}"
    page.get_by_test_id("new-workspace").click()
    create = page.get_by_role("dialog", name="New workspace")
    expect(create).to_have_attribute("aria-modal", "true")
    expect(create.get_by_label("Name")).to_be_focused(timeout=FOCUS_TIMEOUT_MS)
    create.get_by_label("Name").fill(name)
    create.get_by_role("button", name="Create workspace").click()
    expect(create).to_be_hidden()
    mine = api.mine(owner)
    team = next(ws for ws in mine if ws != owner.uid)
    assert mine == {owner.uid: "owner", team: "owner"}
    in_workspace(page, team, f"{name} · owner")
    expect(switcher(page).locator("option")).to_have_text(["Personal · owner", f"{name} · owner"])

    # The owner invites a colleague as admin; the pending invite carries its link.
    dialog = open_team(page, name)
    members_tab = dialog.get_by_role("tab", name="Members")
    expect(members_tab).to_have_attribute("aria-selected", "true")
    expect(members_tab).to_be_focused(timeout=FOCUS_TIMEOUT_MS)
    expect(dialog.get_by_test_id("team-subtitle")).to_have_text("Your role: owner")
    rows = dialog.get_by_test_id("member-row")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-uid", owner.uid)
    expect(rows.first.get_by_test_id("member-remove")).to_have_count(0)  # not oneself
    role = dialog.get_by_label("Role", exact=True)
    expect(role.locator("option")).to_have_text(["owner", "admin", "member", "viewer"])
    dialog.get_by_label("Email").fill(colleague.email)
    role.select_option("admin")
    dialog.get_by_role("button", name="Invite", exact=True).click()
    invite_row = dialog.get_by_test_id("invite-row")
    expect(invite_row).to_have_count(1)
    expect(invite_row).to_have_attribute("data-email", colleague.email)
    invites = api.invites(owner, team)
    assert [(i["email"], i["role"]) for i in invites] == [(colleague.email, "admin")]
    link = f"{relay_stack.relay}/?invite={invites[0]['invite_id']}"
    expect(invite_row.get_by_test_id("invite-link")).to_have_text(link)
    expect(invite_row.get_by_test_id("invite-copy")).to_have_attribute("data-link", link)
    close_dialog(page, dialog, page.get_by_test_id("open-team"))

    # The colleague opens the link, signs in, accepts, and is in the team as admin.
    their_context, their_watch = contexts()
    other = open_page(their_context, their_watch, link)
    expect(other.get_by_test_id("signin-invite-note")).to_be_visible()
    sign_in(other, colleague.email, colleague.password)
    offer = other.get_by_role("dialog", name="Join a workspace")
    expect(offer).to_be_visible()
    accept = offer.get_by_role("button", name="Accept invitation")
    expect(accept).to_be_focused(timeout=FOCUS_TIMEOUT_MS)
    accept.click()
    expect(offer).to_be_hidden()
    in_workspace(other, team, f"{name} · admin")
    assert "invite=" not in other.url
    assert api.members(owner, team) == {owner.uid: "owner", colleague.uid: "admin"}
    assert api.invites(owner, team) == []

    # As admin they manage: invites (up to admin), keys; the owner's row is above them.
    theirs = open_team(other, name)
    expect(theirs.get_by_test_id("member-row")).to_have_count(2)
    expect(theirs.get_by_test_id("invite-form")).to_be_visible()
    expect(theirs.get_by_label("Role", exact=True).locator("option")).to_have_text(
        ["admin", "member", "viewer"]
    )
    expect(theirs.get_by_role("tab", name="API keys")).to_be_visible()
    expect(theirs.get_by_test_id("member-role")).to_have_count(0)
    close_dialog(other, theirs, other.get_by_test_id("open-team"))

    # The owner makes them a viewer, from the member list.
    dialog = open_team(page, name)
    row = dialog.locator(f'[data-testid="member-row"][data-uid="{colleague.uid}"]')
    select = row.get_by_label(f"Role of {colleague.email}")
    expect(select).to_have_value("admin")
    select.select_option("viewer")
    expect(row).to_have_attribute("data-role", "viewer")  # drawn again from the function
    expect(dialog.get_by_test_id("team-status")).to_have_text(f"{colleague.email} is now viewer.")
    assert api.members(owner, team)[colleague.uid] == "viewer"

    # The viewer's page: the member list, read-only, and no control of any kind.
    theirs = open_team(other, name)
    expect(theirs.get_by_test_id("team-subtitle")).to_have_text("Your role: viewer")
    expect(theirs.get_by_test_id("member-row")).to_have_count(2)
    expect(theirs.get_by_test_id("member-role-text")).to_have_text(["owner", "viewer"])
    expect(theirs.get_by_role("tab")).to_have_text(["Members"])
    for testid in NO_CONTROLS:
        expect(other.get_by_test_id(testid)).to_have_count(0)
    expect(other.locator("#team-panel select, #team-panel form")).to_have_count(0)
    expect(switcher(other).locator("option:checked")).to_have_text(f"{name} · viewer")
    screenshot(other, "teams-viewer.png")
    close_dialog(other, theirs, other.get_by_test_id("open-team"))
    owner_watch.assert_clean()
    their_watch.assert_clean()


def test_an_admin_creates_a_key_sees_it_once_copies_it_and_revokes_it(
    relay_stack: RunningStack,
    api: Workspaces,
    contexts: Contexts,
    team_of: Callable[[str, Role], TeamOf],
) -> None:
    made = team_of("Keys", "admin")
    admin, team, name = made.other, made.workspace, made.name
    context, watch = contexts()
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=relay_stack.relay)
    page = signed_in(context, watch, f"{relay_stack.relay}/", admin)
    in_workspace(page, admin.uid, "Personal · owner")
    switch_to(page, team, f"{name} · admin")

    # To the keys tab from the keyboard (the tabs follow the arrow keys).
    dialog = open_team(page, name)
    expect(dialog.get_by_role("tab", name="Members")).to_be_focused(timeout=FOCUS_TIMEOUT_MS)
    page.keyboard.press("ArrowRight")
    keys_tab = dialog.get_by_role("tab", name="API keys")
    expect(keys_tab).to_have_attribute("aria-selected", "true")
    expect(keys_tab).to_be_focused(timeout=FOCUS_TIMEOUT_MS)
    expect(dialog.get_by_text("No keys yet.")).to_be_visible()
    dialog.get_by_label("Name").fill("ci ingest")
    dialog.get_by_label("Scope").select_option("ingest")
    dialog.get_by_role("button", name="Create key").click()

    # The whole key, this once, with the warning and the copy button (which has the focus).
    box = dialog.get_by_test_id("key-secret-box")
    expect(box).to_be_visible()
    expect(box.get_by_test_id("key-secret-warning")).to_contain_text("you will not see it again")
    copy = box.get_by_test_id("key-secret-copy")
    expect(copy).to_have_accessible_name("Copy")
    expect(copy).to_be_focused(timeout=FOCUS_TIMEOUT_MS)
    secret = box.get_by_test_id("key-secret").input_value()
    keys = api.keys(admin, team)
    assert len(keys) == 1, keys
    key = keys[0]
    assert re.fullmatch(rf"apx_{key['key_id']}_[A-Za-z0-9_-]{{43}}", secret), "not a whole key"
    assert secret.startswith(key["prefix"])
    assert len(key["prefix"]) < len(secret)
    assert secret not in json.dumps(keys)
    copy.click()
    expect(copy).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == secret

    # The listing: prefix, scope, creator, never used, active.
    row = dialog.locator(f'[data-testid="key-row"][data-key-id="{key["key_id"]}"]')
    expect(row).to_have_attribute("data-status", "active")
    expect(row.get_by_test_id("key-prefix")).to_have_text(f"{key['prefix']}…")
    expect(row.get_by_test_id("key-scope-text")).to_have_text("ingest")
    expect(row.get_by_test_id("key-meta")).to_contain_text(f"created by {admin.email}")
    expect(row.get_by_test_id("key-meta")).to_contain_text("last used never")

    # "Done" takes the key off the page, and it never comes back.
    box.get_by_role("button", name=re.compile("^Done")).click()
    expect(box).to_have_count(0)
    expect(dialog.get_by_label("Name")).to_be_focused(timeout=FOCUS_TIMEOUT_MS)
    assert secret not in page.content()
    close_dialog(page, dialog, page.get_by_test_id("open-team"))

    # The key is a working ingest credential of the team...
    assert ingest_one(relay_stack, secret).status_code == 202
    dialog = open_team(page, name)
    dialog.get_by_role("tab", name="API keys").click()
    expect(row).to_have_attribute("data-status", "active")
    expect(row.get_by_test_id("key-meta")).not_to_contain_text("last used never")
    assert secret not in page.content()
    screenshot(page, "teams-keys.png")

    # ... until revoked. The confirmation starts on Cancel, and cancelling changes nothing.
    revoke = row.get_by_role("button", name="Revoke ci ingest")
    revoke.click()
    confirm = page.get_by_role("alertdialog", name="Revoke API key")
    expect(confirm).to_be_visible()
    expect(confirm).to_contain_text("ci ingest")
    expect(confirm.get_by_role("button", name="Cancel")).to_be_focused(timeout=FOCUS_TIMEOUT_MS)
    page.keyboard.press("Escape")
    expect(confirm).to_be_hidden()
    expect(revoke).to_be_focused(timeout=FOCUS_TIMEOUT_MS)
    assert api.keys(admin, team)[0]["revoked_at"] is None
    revoke.click()
    confirm.get_by_role("button", name="Revoke key").click()
    expect(row).to_have_attribute("data-status", "revoked")
    expect(row.get_by_test_id("key-revoke")).to_have_count(0)
    expect(dialog.get_by_test_id("team-status")).to_have_text("“ci ingest” was revoked.")
    assert api.keys(admin, team)[0]["revoked_at"] is not None
    deadline = time.monotonic() + ACCESS_CACHE_S + 2
    while (status := ingest_one(relay_stack, secret).status_code) != 401:
        assert status == 202, f"the revoked key answered {status}"
        assert time.monotonic() < deadline, "the revoked key still works past the cache bound"
        time.sleep(0.5)
    watch.assert_clean()


def test_switching_workspaces_changes_the_threads_and_the_sockets_workspace(
    relay_stack: RunningStack,
    api: Workspaces,
    contexts: Contexts,
    team_of: Callable[[str, Role], TeamOf],
) -> None:
    made = team_of("Switch", "member")
    owner, user, team, name = made.owner, made.other, made.workspace, made.name
    context, watch = contexts()
    page = watched_page(context, watch)
    sockets = Sockets()
    sockets.watch(page)
    asked_in: list[str | None] = []  # X-Apex-Workspace of each threads_get call

    def on_request(request: Any) -> None:
        if request.method == "GET" and request.url.startswith(relay_stack.functions["threads_get"]):
            asked_in.append(request.headers.get("x-apex-workspace"))

    page.on("request", on_request)
    page.goto(f"{relay_stack.relay}/")
    sign_in(page, user.email, user.password)
    in_workspace(page, user.uid, "Personal · owner")
    expect(switcher(page).locator("option")).to_have_text(["Personal · owner", f"{name} · member"])
    threads = page.get_by_test_id("thread-item")

    ask(page, "How do I send my usage to Apex?")
    expect(threads).to_have_count(1)
    personal_thread = accepted_threads(sockets)[-1]
    expect(threads.first).to_have_attribute("data-thread-id", personal_thread)

    # Into the team: the same socket re-authenticates, and the list is the team's (empty).
    switch_to(page, team, f"{name} · member")
    until(lambda: len(sockets.auth_oks(0)) == 2, "the switch's auth.ok", page)
    ask(page, "How do I send usage from our CI?")
    team_thread = accepted_threads(sockets)[-1]
    assert team_thread != personal_thread
    expect(threads).to_have_count(1)
    expect(threads.first).to_have_attribute("data-thread-id", team_thread)

    # And back: the personal thread alone again.
    switch_to(page, user.uid, "Personal · owner")
    expect(threads).to_have_count(1)
    expect(threads.first).to_have_attribute("data-thread-id", personal_thread)
    until(lambda: len(sockets.auth_oks(0)) == 3, "the second switch's auth.ok", page)
    assert len(sockets.sent) == 1, "a switch must not open another socket"
    assert sockets.auths(0) == [user.uid, team, user.uid]
    assert sockets.auth_oks(0) == [(user.uid, "owner"), (team, "member"), (user.uid, "owner")]
    assert set(asked_in) == {user.uid, team}, asked_in
    assert asked_in[-1] == user.uid

    # The page remembers the workspace across a reload...
    switch_to(page, team, f"{name} · member")
    page.reload()
    in_workspace(page, team, f"{name} · member")
    assert sockets.auths(len(sockets.sent) - 1)[0] == team
    expect(threads).to_have_count(1)
    expect(threads.first).to_have_attribute("data-thread-id", team_thread)

    # ... unless it is no longer a member: then it is back in the personal workspace.
    api.remove(owner, team, user.uid)
    page.reload()
    in_workspace(page, user.uid, "Personal · owner")
    expect(switcher(page).locator("option")).to_have_text(["Personal · owner"])
    remembered = page.evaluate(f"localStorage.getItem('apex.workspace.{user.uid}')")
    assert remembered is None
    assert sockets.auths(len(sockets.sent) - 1)[0] == user.uid
    watch.assert_clean()


def test_a_member_removed_while_signed_in_is_moved_to_their_personal_workspace(
    relay_stack: RunningStack,
    api: Workspaces,
    contexts: Contexts,
    team_of: Callable[[str, Role], TeamOf],
) -> None:
    """The relay re-checks membership on chat.send and closes a removed member's socket
    with 1008; the page then finds it is no longer a member, says so, and goes on in the
    personal workspace on a new socket."""
    made = team_of("Gone", "member")
    owner, user, team, name = made.owner, made.other, made.workspace, made.name
    context, watch = contexts()
    page = watched_page(context, watch)
    sockets = Sockets()
    sockets.watch(page)
    page.goto(f"{relay_stack.relay}/")
    sign_in(page, user.email, user.password)
    switch_to(page, team, f"{name} · member")

    api.remove(owner, team, user.uid)
    time.sleep(ACCESS_CACHE_S + 0.5)  # past the bound within which a cached "member" may stand
    page.get_by_label("Message").fill("Are we still in?")
    page.get_by_test_id("send").click()
    expect(page.get_by_test_id("error-banner")).to_contain_text("no longer a member")
    in_workspace(page, user.uid, "Personal · owner")
    expect(switcher(page).locator("option")).to_have_text(["Personal · owner"])
    assert len(sockets.sent) == 2
    assert sockets.auths(1) == [user.uid]
    watch.assert_clean()


def test_the_team_views_fit_a_phone_and_work_from_the_keyboard(
    relay_stack: RunningStack,
    api: Workspaces,
    contexts: Contexts,
    team_of: Callable[[str, Role], TeamOf],
) -> None:
    made = team_of("Phone team with a long name", "member")
    owner, team, name = made.owner, made.workspace, made.name
    api.invite(owner, team, f"someone-{uuid.uuid4().hex[:8]}@apex.test", "viewer")
    context, watch = contexts(viewport=PHONE)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=relay_stack.relay)
    page = signed_in(context, watch, f"{relay_stack.relay}/", owner)
    switch_to(page, team, f"{name} · owner")

    def fits(what: str) -> None:
        overflow = page.evaluate("document.documentElement.scrollWidth")
        assert overflow <= PHONE["width"], f"{what}: the page is {overflow} px wide"
        for control in (switcher(page), page.get_by_test_id("open-team")):
            on_screen(control)

    fits("the chat")
    screenshot(page, "teams-phone.png")

    # Keyboard only: to the Team button, Enter, and the dialog holds the keyboard.
    opener = page.get_by_test_id("open-team")
    opener.focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name=name)
    expect(dialog).to_be_visible()
    expect(dialog.get_by_test_id("invite-row")).to_have_count(1)
    expect(dialog.get_by_test_id("member-row")).to_have_count(2)
    on_screen(dialog)
    scroll = dialog.evaluate("d => d.scrollWidth - d.clientWidth")
    assert scroll == 0, f"the team dialog scrolls sideways by {scroll} px"
    fits("the members tab")
    screenshot(page, "teams-phone-members.png")
    # Tab goes round the dialog's controls (and the browser's own UI, shown as <body>), never
    # to the page behind it.
    visited: set[str] = set()
    for _ in range(16):
        page.keyboard.press("Tab")
        where = dialog.evaluate(
            "d => d.contains(document.activeElement) ? document.activeElement.dataset.testid"
            " || document.activeElement.id : document.activeElement === document.body"
            " ? 'browser' : 'behind: ' + document.activeElement.outerHTML.slice(0, 80)"
        )
        assert not where.startswith("behind"), f"focus left the dialog: {where}"
        visited.add(where)
    assert {
        "tab-members",
        "invite-email",
        "invite-role",
        "invite-submit",
        "member-role",
        "member-remove",
        "invite-copy",
        "invite-revoke",
    } <= visited, visited

    # The new key's box fits too.
    dialog.get_by_role("tab", name="API keys").click()
    dialog.get_by_label("Name").fill("phone")
    dialog.get_by_role("button", name="Create key").click()
    expect(dialog.get_by_test_id("key-secret-box")).to_be_visible()
    scroll = dialog.evaluate("d => d.scrollWidth - d.clientWidth")
    assert scroll == 0, f"the keys tab scrolls sideways by {scroll} px"
    fits("the keys tab")
    screenshot(page, "teams-phone-keys.png")
    close_dialog(page, dialog, opener)
    # Closing the dialog took the secret with it.
    expect(page.get_by_test_id("key-secret")).to_have_count(0)
    watch.assert_clean()


def test_an_invite_for_another_address_is_refused_in_the_dialog_and_changes_nothing(
    relay_stack: RunningStack, people: Callable[[], ChatUser], api: Workspaces, contexts: Contexts
) -> None:
    owner, invited, outsider = people(), people(), people()
    name = f"Closed {uuid.uuid4().hex[:6]}"
    team = api.create(owner, name)
    invite_id = api.invite(owner, team, invited.email, "member")
    context, watch = contexts()
    page = signed_in(context, watch, f"{relay_stack.relay}/?invite={invite_id}", outsider)
    offer = page.get_by_role("dialog", name="Join a workspace")
    offer.get_by_role("button", name="Accept invitation").click()
    expect(offer.get_by_test_id("invite-error")).to_contain_text("another email address")
    expect(offer).to_be_visible()
    close_dialog(page, offer, page.get_by_label("Message"))
    in_workspace(page, outsider.uid, "Personal · owner")
    expect(switcher(page).locator("option")).to_have_text(["Personal · owner"])
    assert api.members(owner, team) == {owner.uid: "owner"}
    assert [i["invite_id"] for i in api.invites(owner, team)] == [invite_id]
    # The function's 403 is the one error the browser logs.
    assert watch.offsite == []
    assert len(watch.errors) == 1, watch.errors
    assert re.search(r"status of 403", watch.errors[0]), watch.errors
