"""The chat's golden path through the relay, and a relay killed in the middle of a run
(issue 4 acceptance): a real WebSocket client against the stack as ``make dev`` runs it."""

from __future__ import annotations

import os
import signal
from typing import Any

import httpx
import pytest
from google.cloud import firestore
from google.cloud.pubsub_v1 import SubscriberClient
from websockets.exceptions import ConnectionClosed

from devstack.stack import RunningStack
from shared.topology import load_topology
from tests.support.event_sequence import check_sequence
from tests.support.relay import OwnRelay, PlantedUser
from tests.support.wsclient import chat, ws_url

QUESTION = "What did we spend last month, and where can we save?"
AGENTS = ["triage", "data", "optimization"]


def _get(url: str, token: str, **params: str) -> dict[str, Any]:
    response = httpx.get(
        url, params=params, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_cost_question_streams_every_event_and_the_planted_savings(
    relay_stack: RunningStack, planted_chat_user: PlantedUser
) -> None:
    user, planted = planted_chat_user.user, planted_chat_user.planted
    with chat(ws_url(relay_stack.relay)) as c:
        ok = c.auth(user.id_token)
        assert (ok["uid"], ok["workspace_id"], ok["role"]) == (user.uid, user.workspace, "owner")
        assert ok["session_id"]
        assert ok["expires_at"] > 0
        c.send(
            {
                "type": "chat.send",
                "client_msg_id": "3f1c2a1e-5d7b-4c53-9d7e-0a6f1b2c3d4e",
                "content": QUESTION,
            }
        )
        accepted = c.expect("chat.accepted")
        events = c.events_until_terminal()
    assert accepted["client_msg_id"] == "3f1c2a1e-5d7b-4c53-9d7e-0a6f1b2c3d4e"
    assert {e["run_id"] for e in events} == {accepted["run_id"]}
    # Every DESIGN §3.6 event, in order, seq 1, 2, 3, ... with no gap and none twice.
    check_sequence(events, AGENTS)
    started = events[0]["data"]
    assert (started["thread_id"], started["message_id"]) == (
        accepted["thread_id"],
        accepted["message_id"],
    )

    # The answer names the planted savings, priced as planted.
    message = events[-2]["data"]
    found = {(r["kind"], r["model"], r["feature"]): r for r in message["recommendations"]}
    assert len(found) == len(planted.manifest.inefficiencies)
    for plant in planted.manifest.inefficiencies:
        rec = found[(plant.kind, plant.model, plant.feature)]
        assert rec["monthly_savings_usd"] == pytest.approx(plant.monthly_savings_usd, rel=0.05)
    top = max(message["recommendations"], key=lambda r: r["monthly_savings_usd"])
    assert f"${top['monthly_savings_usd']:,.2f}" in message["text"]
    assert planted.manifest.anomaly.day in message["text"]

    # The thread is persisted with both messages; the stored events are the ones streamed.
    thread = _get(
        relay_stack.functions["threads_get"], user.id_token, thread_id=accepted["thread_id"]
    )
    assert [m["role"] for m in thread["messages"]] == ["user", "assistant"]
    assert thread["messages"][0]["text"] == QUESTION
    assert thread["messages"][0]["message_id"] == accepted["message_id"]
    assert thread["messages"][1]["text"] == message["text"]
    run = _get(relay_stack.functions["runs_get"], user.id_token, run_id=accepted["run_id"])
    assert run["events"] == events


def test_the_same_client_msg_id_again_is_the_same_message_and_run(
    relay_stack: RunningStack, planted_chat_user: PlantedUser
) -> None:
    user = planted_chat_user.user
    frame = {
        "type": "chat.send",
        "client_msg_id": "0d9e6c38-2f6a-4e0b-8a57-4cf1b0e3a001",
        "content": "Which model costs us the most?",
    }
    with chat(ws_url(relay_stack.relay)) as c:
        c.auth(user.id_token)
        c.send(frame)
        first = c.expect("chat.accepted")
        c.events_until_terminal()
    with chat(ws_url(relay_stack.relay)) as c:  # a retry after a reconnect
        c.auth(user.id_token)
        c.send(frame)
        again = c.expect("chat.accepted")
        replay = c.events_until_terminal()  # its events again, from the store
    assert again == first
    assert [e["seq"] for e in replay] == list(range(1, len(replay) + 1))
    thread = _get(relay_stack.functions["threads_get"], user.id_token, thread_id=first["thread_id"])
    assert [m["role"] for m in thread["messages"]] == ["user", "assistant"]


def test_a_relay_killed_mid_run_loses_nothing_when_the_client_resumes_on_another(
    relay_stack: RunningStack,
    planted_chat_user: PlantedUser,
    start_relay: Any,
    relay_db: firestore.Client,
) -> None:
    user = planted_chat_user.user
    first: OwnRelay = start_relay()
    second: OwnRelay = start_relay()  # up already, so the client resumes within milliseconds
    got: list[dict[str, Any]] = []
    with chat(first.ws_url) as c:
        c.auth(user.id_token)
        accepted = c.ask(QUESTION)
        got.append(c.expect("event"))
        os.kill(first.process.pid, signal.SIGKILL)  # no shutdown, no 1012: a crash
        try:
            while True:
                frame = c.recv(10)
                assert frame["type"] == "event", frame
                got.append(frame)
        except ConnectionClosed:
            pass
    assert first.process.popen is not None
    assert first.process.popen.wait(timeout=10) == -signal.SIGKILL

    with chat(second.ws_url) as c:
        c.auth(user.id_token)
        c.send({"type": "run.resume", "run_id": accepted["run_id"], "after_seq": got[-1]["seq"]})
        resumed = c.expect("run.resumed")
        rest = c.events_until_terminal()
    assert resumed["run_id"] == accepted["run_id"]
    events = got + rest
    assert rest, "the run had ended before the kill; nothing was resumed"
    # Every event exactly once, in order, across the two relays.
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    check_sequence(events, AGENTS)
    if resumed["status"] not in ("completed", "failed", "cancelled"):
        # Resumed while running: its live events were moved to the second relay.
        run = relay_db.collection("runs").document(accepted["run_id"]).get()
        assert run.get("relay") == second.relay_id
    # The dead relay's subscription outlives it until its expiration policy removes it.
    subscriber = SubscriberClient()
    try:
        name = load_topology().relay_subscription_name(first.relay_id)
        sub = subscriber.get_subscription(
            subscription=f"projects/{relay_stack.project}/subscriptions/{name}"
        )
    finally:
        subscriber.close()
    ttl = load_topology().relay_subscriptions.expiration_ttl_seconds
    assert sub.expiration_policy.ttl.total_seconds() == ttl
    # This instance's run events, and every alert (DESIGN §3.8: each instance sends an
    # alert to its own sockets of the alert's workspace).
    assert sub.filter == (
        f'attributes.relay = "{first.relay_id}" OR attributes.kind = "notification"'
    )


def test_resuming_a_finished_run_replays_it_and_stops(
    relay_stack: RunningStack, planted_chat_user: PlantedUser
) -> None:
    user = planted_chat_user.user
    with chat(ws_url(relay_stack.relay)) as c:
        c.auth(user.id_token)
        accepted = c.ask("How many tokens did we use last month?")
        events = c.events_until_terminal()
    with chat(ws_url(relay_stack.relay)) as c:
        c.auth(user.id_token)
        for after in (0, 3, len(events)):
            c.send({"type": "run.resume", "run_id": accepted["run_id"], "after_seq": after})
            assert c.expect("run.resumed")["status"] == "completed"
            replay = c.events_until_terminal() if after < len(events) else []
            assert replay == events[after:]
        # Nothing more comes for it; the socket answers as before.
        assert c.is_open()
        c.send({"type": "run.cancel", "run_id": accepted["run_id"]})
        assert c.expect("run.cancel.ok") == {
            "type": "run.cancel.ok",
            "run_id": accepted["run_id"],
            "status": "completed",
        }
