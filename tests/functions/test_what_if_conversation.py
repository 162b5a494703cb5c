"""A what-if in a conversation (issue 14 item 7, DESIGN §13) through ``agents_execute`` with
``thread_id`` and each step's worker: a follow-up after a what-if ("and on gpt-4o-mini?")
inherits it, the new model as the target, the feature and period carried, and its numbers
equal those of a fresh what-if question stating that scope in full."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from google.cloud import firestore

from shared.store.usage import FirestoreUsageStore
from tests.functions.test_conversation import Turn, ask
from tests.functions.test_what_if_chat import QUESTION, _records
from tests.support.functions import Captured, User

Fn = Callable[[str], FlaskClient]


@pytest.fixture
def chat(
    function: Fn, topics: dict[str, Captured], firestore_client: firestore.Client, user: User
) -> Callable[..., Turn]:
    FirestoreUsageStore(firestore_client).apply(user.workspace, _records())

    def send(message: str, thread_id: str | None = None) -> Turn:
        return ask(function, topics, firestore_client, user, message, thread_id)

    return send


def _what_if(turn: Turn) -> dict[str, Any]:
    found: dict[str, Any] = turn.agent("optimization")["what_if"]
    assert found is not None
    return found


def test_a_follow_up_after_a_what_if_answers_the_what_if_for_the_new_target(
    chat: Callable[..., Turn],
) -> None:
    first = chat(QUESTION)
    thread = first.thread_id
    assert _what_if(first)["model"] == "claude-3-5-haiku-latest"
    for message, stated, target in (
        (
            "and on gpt-4o-mini?",
            "what would summarize have cost on gpt-4o-mini last month?",
            "gpt-4o-mini",
        ),
        (
            "what if we had used gpt-4.1 instead?",
            "what would happen if we moved summarize to gpt-4.1 last month?",
            "gpt-4.1",
        ),
    ):
        follow = chat(message, thread)
        fresh = chat(stated)
        entities = follow.triage.entities
        assert entities.what_if is not None, message
        assert (entities.what_if.model, entities.what_if.feature) == (target, "summarize")
        assert "what_if" in entities.inherited, message
        assert entities.period == fresh.triage.entities.period, message
        assert follow.agents == fresh.agents == ["triage", "data", "optimization"], message
        got, want = _what_if(follow), _what_if(fresh)
        assert got["model"].startswith(target), got
        assert got == want, message
        # A what-if of the feature, not the workspace: the other feature's calls are out.
        assert got["requests"] == len([r for r in _records() if r.feature == "summarize"])
        # The answer leads with the same numbers.
        assert follow.text.split("\n\n")[0] == fresh.text.split("\n\n")[0], message
