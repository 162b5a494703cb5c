"""Ten users chatting at once through one relay: each socket sees only its own run's events
(issue 4), each run's events complete and in order."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

from google.cloud import firestore
from websockets.asyncio.client import connect

from devstack.stack import RunningStack
from tests.support.relay import ChatUser
from tests.support.wsclient import TERMINAL, ws_url

USERS = 10
QUIET_AFTER_S = 1.5


async def _converse(url: str, user: ChatUser, barrier: asyncio.Barrier) -> list[dict[str, Any]]:
    """Sign in, ask, read until the terminal event, then keep listening until every user is
    done (so a stray event of another user's run would be caught)."""
    frames: list[dict[str, Any]] = []
    async with connect(url, max_size=None) as ws:
        await ws.send(json.dumps({"type": "auth", "token": user.id_token}))
        frames.append(json.loads(await asyncio.wait_for(ws.recv(), 30)))
        await ws.send(
            json.dumps(
                {
                    "type": "chat.send",
                    "client_msg_id": str(uuid.uuid4()),
                    "content": f"What did we spend on gpt-4o last week? ({user.uid})",
                }
            )
        )
        while frames[-1].get("event") not in TERMINAL:
            frames.append(json.loads(await asyncio.wait_for(ws.recv(), 90)))
        await asyncio.wait_for(barrier.wait(), 120)
        try:
            while True:
                frames.append(json.loads(await asyncio.wait_for(ws.recv(), QUIET_AFTER_S)))
        except TimeoutError:
            pass
    return frames


async def _everyone(url: str, users: list[ChatUser]) -> list[list[dict[str, Any]]]:
    barrier = asyncio.Barrier(len(users))
    return await asyncio.gather(*(_converse(url, u, barrier) for u in users))


def test_ten_users_at_once_each_see_only_their_own_events(
    relay_stack: RunningStack,
    new_chat_user: Callable[[], ChatUser],
    relay_db: firestore.Client,
) -> None:
    users = [new_chat_user() for _ in range(USERS)]
    conversations = asyncio.run(_everyone(ws_url(relay_stack.relay), users))
    runs_seen = set()
    for user, frames in zip(users, conversations, strict=True):
        assert frames[0]["type"] == "auth.ok"
        assert frames[0]["uid"] == user.uid
        assert frames[1]["type"] == "chat.accepted", frames[1]
        run_id = frames[1]["run_id"]
        events = frames[2:]
        assert all(f["type"] == "event" for f in events), events
        # Only this user's run, every event once and in order, to its end.
        assert {e["run_id"] for e in events} == {run_id}
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        assert events[-1]["event"] == "run_completed"
        run = relay_db.collection("runs").document(run_id).get().to_dict()
        assert run is not None
        assert (run["uid"], run["workspace_id"]) == (user.uid, user.workspace)
        runs_seen.add(run_id)
    assert len(runs_seen) == USERS
