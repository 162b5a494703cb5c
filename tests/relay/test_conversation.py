"""A conversation through the relay (issue 15): one thread, a question, a question about
its answer ("tell me more about #2"), and a follow-up ("and what about just the last 7
days?") answered for the inherited scope with the numbers of a fresh question stating it in
full, every event streamed in order."""

from __future__ import annotations

from typing import Any

from devstack.stack import RunningStack
from shared.models.triage import TriageResponse
from tests.support.event_sequence import check_sequence
from tests.support.relay import PlantedUser
from tests.support.wsclient import chat, ws_url

QUESTION = "What did we spend last month, and where can we save?"


def _result(events: list[dict[str, Any]], agent: str) -> dict[str, Any]:
    [done] = [e for e in events if e.get("agent") == agent and e["event"] == "agent_completed"]
    result: dict[str, Any] = done["data"]["result"]
    return result


def _measured(events: list[dict[str, Any]]) -> dict[str, Any]:
    report = dict(_result(events, "data"))
    report.pop("period")
    report["trend"] = {k: v for k, v in report["trend"].items() if k != "previous_period"}
    return report


def test_a_thread_follows_up_and_refers_to_its_earlier_answer(
    relay_stack: RunningStack, planted_chat_user: PlantedUser
) -> None:
    user = planted_chat_user.user
    with chat(ws_url(relay_stack.relay)) as c:
        c.auth(user.id_token)
        first = c.ask(QUESTION)
        first_events = c.events_until_terminal()
        thread = first["thread_id"]
        more = c.ask("tell me more about #2", thread_id=thread)
        more_events = c.events_until_terminal()
        follow = c.ask("and what about just the last 7 days?", thread_id=thread)
        follow_events = c.events_until_terminal()
        fresh = c.ask("What did we spend in the last 7 days, and where can we save?")
        fresh_events = c.events_until_terminal()
    assert more["thread_id"] == follow["thread_id"] == thread
    assert fresh["thread_id"] != thread
    check_sequence(first_events, ["triage", "data", "optimization"])

    # "#2": answered from the first answer's recommendation 2, no agent measured again.
    check_sequence(more_events, ["triage"])
    second = _result(first_events, "optimization")["recommendations"][1]
    message = more_events[-2]["data"]
    assert message["text"].startswith("**#2 of ")
    assert second["title"] in message["text"].split("\n")[0]
    assert message["recommendations"] == [second]

    # The follow-up: the first question's intents, the last 7 days.
    check_sequence(follow_events, ["triage", "data", "optimization"])
    triaged = TriageResponse.model_validate(_result(follow_events, "triage"))
    assert triaged.entities.intents == ["cost_analysis", "optimization"]
    assert triaged.entities.period is not None
    assert triaged.entities.period.token == "last_7d"
    assert "intent" in triaged.entities.inherited
    [read] = [
        e["data"]
        for e in follow_events
        if e["event"] == "tool_completed" and e["data"]["tool_name"] == "read_thread_context"
    ]
    assert read["results"]["found"] is True
    assert read["results"]["question"] == QUESTION
    assert _measured(follow_events) == _measured(fresh_events)
    assert (
        _result(follow_events, "optimization")["recommendations"]
        == _result(fresh_events, "optimization")["recommendations"]
    )
