"""Alert frames on the WebSocket (DESIGN §3.8, §11): an alert published on ``apex-events``
(as ``budget_worker`` publishes it, ``shared.budgets.tick.messages_of``) reaches every
socket of its workspace on every relay instance, as ``{"type":"notification",
"notification":{...}}``, once each; a socket of another workspace gets nothing, and a socket
that switched away from the workspace stops getting them."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

from devstack.stack import RunningStack
from shared.budgets.tick import messages_of
from shared.bus import Bus
from shared.models.budgets import NotificationDoc, Period
from tests.support.relay import ChatUser, OwnRelay
from tests.support.wsclient import Chat, chat, ws_url


def alert(workspace_id: str, notification_id: str) -> NotificationDoc:
    return NotificationDoc(
        notification_id=notification_id,
        workspace_id=workspace_id,
        kind="budget",
        text="Budget “Prod” crossed 80% of $100.00 for 2026-12: $81.00 spent so far.",
        created_at=datetime.now(UTC),
        period=Period(start="2026-12-01", end="2026-12-31"),
        spend_usd=81.0,
        budget_id="0123456789abcdef",
        budget_name="Prod",
        threshold=0.8,
        crossed_by="actual",
        forecast_usd=120.0,
        monthly_usd=100.0,
    )


def publish(stack: RunningStack, doc: NotificationDoc) -> None:
    # Only the frame: no webhook, so no delivery request goes with it.
    Bus(Bus.publisher(), stack.project).publish_all(messages_of(doc))


def nothing_but_pong(c: Chat) -> None:
    """No frame is waiting: a ping's pong is the next frame."""
    c.send({"type": "ping"})
    assert c.recv(timeout=10)["type"] == "pong"


def test_every_socket_of_the_workspace_on_every_relay_gets_the_alert_once(
    relay_stack: RunningStack,
    new_chat_user: Callable[[], ChatUser],
    start_relay: Callable[..., OwnRelay],
) -> None:
    owner, other = new_chat_user(), new_chat_user()
    second = start_relay()
    with (
        chat(ws_url(relay_stack.relay)) as here,
        chat(ws_url(second.url)) as there,
        chat(ws_url(relay_stack.relay)) as outsider,
    ):
        here.auth(owner.id_token)
        there.auth(owner.id_token)
        outsider.auth(other.id_token)
        doc = alert(owner.workspace, "b_0123456789abcdef_202612_8000")
        publish(relay_stack, doc)
        for socket in (here, there):
            frame = socket.expect("notification", timeout=20)
            assert set(frame) == {"type", "notification"}
            got = frame["notification"]
            assert got["notification_id"] == doc.notification_id
            assert (got["kind"], got["threshold"], got["crossed_by"]) == ("budget", 0.8, "actual")
            assert got["text"] == doc.text
            assert got["unread"] is True
            assert "workspace_id" not in json.dumps(frame)
            nothing_but_pong(socket)  # once
        nothing_but_pong(outsider)


def test_a_socket_that_switched_workspace_gets_the_new_ones_alerts_only(
    relay_stack: RunningStack, new_chat_user: Callable[[], ChatUser]
) -> None:
    import httpx

    user = new_chat_user()
    team = httpx.post(
        relay_stack.functions["workspaces"],
        json={"name": "Alerts"},
        headers={"Authorization": f"Bearer {user.id_token}"},
        timeout=30,
    ).json()["workspace_id"]
    with chat(ws_url(relay_stack.relay)) as c:
        c.auth(user.id_token)
        c.send({"type": "auth", "token": user.id_token, "workspace_id": team})
        c.expect("auth.ok")
        publish(relay_stack, alert(user.workspace, "a_20261201"))
        publish(relay_stack, alert(team, "a_20261130"))
        frame = c.expect("notification", timeout=20)
        assert frame["notification"]["notification_id"] == "a_20261130"
        nothing_but_pong(c)
