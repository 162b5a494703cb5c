"""A token that expires while its socket is open (docs/relay.md): refreshed in time, the
socket stays; not refreshed, it is closed with 1008 at the token's ``exp``."""

from __future__ import annotations

import time
from collections.abc import Callable

from devstack.stack import RunningStack
from tests.support.relay import ChatUser
from tests.support.wsclient import chat, ws_url

LIFETIME_S = 3


def test_a_socket_refreshed_before_exp_stays_open(
    relay_stack: RunningStack, new_chat_user: Callable[[], ChatUser]
) -> None:
    user = new_chat_user()
    exp = int(time.time()) + LIFETIME_S
    with chat(ws_url(relay_stack.relay)) as c:
        assert c.auth(user.token_expiring_at(exp))["expires_at"] == exp
        refreshed = c.auth(user.id_token)  # the fresh token, well before exp
        assert refreshed["uid"] == user.uid
        assert refreshed["expires_at"] > exp
        time.sleep(max(0.0, exp + 1.5 - time.time()))
        assert c.is_open()


def test_a_socket_not_refreshed_is_closed_with_1008_at_exp(
    relay_stack: RunningStack, new_chat_user: Callable[[], ChatUser]
) -> None:
    user = new_chat_user()
    exp = int(time.time()) + LIFETIME_S
    with chat(ws_url(relay_stack.relay)) as c:
        c.auth(user.token_expiring_at(exp))
        assert c.is_open()
        code, reason = c.closed_with(timeout=LIFETIME_S + 10)
        closed_at = time.time()
    assert (code, reason) == (1008, "the ID token expired; send a fresh one before it does")
    assert exp - 0.5 <= closed_at < exp + 3


def test_a_refresh_with_an_expired_token_closes_with_1008(
    relay_stack: RunningStack, new_chat_user: Callable[[], ChatUser]
) -> None:
    user = new_chat_user()
    with chat(ws_url(relay_stack.relay)) as c:
        c.auth(user.id_token)
        c.send({"type": "auth", "token": user.token_expiring_at(int(time.time()) - 5)})
        assert c.closed_with() == (1008, "the ID token has expired; sign in again")
