"""The WebSocket in a workspace (DESIGN §3.2, §9): `workspace_id` in the `auth` frame,
`auth.ok` with the workspace and the role, a later `auth` frame that switches workspace, and
the closes: not a member, an API key as a credential (1008)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from devstack.stack import RunningStack
from tests.support.relay import ChatUser
from tests.support.wsclient import chat, ws_url


def _workspaces(stack: RunningStack, user: ChatUser, method: str, path: str, body: Any) -> Any:
    response = httpx.request(
        method,
        stack.functions["workspaces"] + path,
        json=body,
        headers={"Authorization": f"Bearer {user.id_token}"},
        timeout=30,
    )
    assert response.status_code < 300, response.text
    return response.json()


def test_auth_ok_names_the_workspace_and_the_role_and_a_later_auth_switches(
    relay_stack: RunningStack, new_chat_user: Callable[[], ChatUser]
) -> None:
    user = new_chat_user()
    team = _workspaces(relay_stack, user, "POST", "/", {"name": "Frames"})["workspace_id"]
    with chat(ws_url(relay_stack.relay)) as c:
        personal = c.auth(user.id_token)
        assert (personal["workspace_id"], personal["role"]) == (user.uid, "owner")
        c.send({"type": "auth", "token": user.id_token, "workspace_id": team})
        switched = c.expect("auth.ok")
        assert (switched["workspace_id"], switched["role"]) == (team, "owner")
        assert switched["session_id"] == personal["session_id"]
        # A refresh without workspace_id keeps the socket where it is.
        assert c.auth(user.id_token)["workspace_id"] == team
        # A chat message now lands in the team workspace's thread list, not the personal one.
        accepted = c.ask("what did we spend last week?")
    listed = httpx.get(
        relay_stack.functions["threads_get"],
        headers={"Authorization": f"Bearer {user.id_token}", "X-Apex-Workspace": team},
        timeout=30,
    ).json()["threads"]
    assert [t["thread_id"] for t in listed] == [accepted["thread_id"]]
    personal_threads = httpx.get(
        relay_stack.functions["threads_get"],
        headers={"Authorization": f"Bearer {user.id_token}"},
        timeout=30,
    ).json()["threads"]
    assert personal_threads == []


def test_a_workspace_the_user_is_not_in_closes_the_socket_with_1008(
    relay_stack: RunningStack, new_chat_user: Callable[[], ChatUser]
) -> None:
    owner, outsider = new_chat_user(), new_chat_user()
    team = _workspaces(relay_stack, owner, "POST", "/", {"name": "Closed"})["workspace_id"]
    for workspace in (team, "no-such-workspace"):
        with chat(ws_url(relay_stack.relay)) as c:
            c.send({"type": "auth", "token": outsider.id_token, "workspace_id": workspace})
            code, reason = c.closed_with()
        assert code == 1008
        assert reason == f"no workspace {workspace}"
    # Switching into it on a signed-in socket closes it the same way.
    with chat(ws_url(relay_stack.relay)) as c:
        c.auth(outsider.id_token)
        c.send({"type": "auth", "token": outsider.id_token, "workspace_id": team})
        assert c.closed_with()[0] == 1008


def test_an_api_key_is_not_a_websocket_credential(
    relay_stack: RunningStack, new_chat_user: Callable[[], ChatUser]
) -> None:
    user = new_chat_user()
    key = _workspaces(
        relay_stack, user, "POST", f"/{user.uid}/keys", {"name": "ci", "scope": "read"}
    )["secret"]
    with chat(ws_url(relay_stack.relay)) as c:
        c.send({"type": "auth", "token": key})
        code, reason = c.closed_with()
    assert code == 1008
    assert "API key" in reason
    # On the upgrade's Authorization header too.
    with chat(
        ws_url(relay_stack.relay), additional_headers={"Authorization": f"Bearer {key}"}
    ) as c:
        assert c.closed_with()[0] == 1008
