"""Conversations (DESIGN §13, issue 15) through the functions in-process: ``agents_execute``
with ``thread_id``, each step delivered to its worker as push would, over a planted
workspace. A follow-up answers for the scope it inherits (the numbers equal those of a fresh
question stating that scope in full), a question about an earlier answer is answered from
its stored findings with no agent, and a message without a thread stands alone."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from google.cloud import firestore

from devstack.synthetic import SyntheticWorkspace, generate
from shared.agents.triage.intent import analyze
from shared.models.triage import TriageResponse
from shared.store.usage import FirestoreUsageStore
from tests.support.event_sequence import check_sequence
from tests.support.functions import Captured, User, envelope

Fn = Callable[[str], FlaskClient]
# The planted workspace ends yesterday: every "last N days" below holds usage, and its
# anomaly (8 days before the end) lies in the last 30 days.
DAYS = 40


@dataclass(frozen=True)
class Turn:
    run_id: str
    thread_id: str
    events: list[dict[str, Any]]

    def agent(self, name: str) -> dict[str, Any]:
        """The agent's ``agent_completed`` result."""
        [done] = [
            e for e in self.events if e.get("agent") == name and e["event"] == "agent_completed"
        ]
        result: dict[str, Any] = done["data"]["result"]
        return result

    @property
    def triage(self) -> TriageResponse:
        return TriageResponse.model_validate(self.agent("triage"))

    @property
    def agents(self) -> list[str]:
        return [e["agent"] for e in self.events if e["event"] == "agent_started"]

    @property
    def message(self) -> dict[str, Any]:
        [message] = [e for e in self.events if e["event"] == "message"]
        data: dict[str, Any] = message["data"]
        return data

    @property
    def text(self) -> str:
        return str(self.message["text"])

    def tool(self, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """The tool's (``tool_executing``, ``tool_completed``) data."""
        [start] = [
            e["data"]
            for e in self.events
            if e["event"] == "tool_executing" and e["data"]["tool_name"] == name
        ]
        [done] = [
            e["data"]
            for e in self.events
            if e["event"] == "tool_completed" and e["data"]["execution_id"] == start["execution_id"]
        ]
        return start, done


def ask(
    function: Fn,
    topics: dict[str, Captured],
    db: firestore.Client,
    user: User,
    message: str,
    thread_id: str | None = None,
) -> Turn:
    """Send ``message`` (in ``thread_id``) and deliver each step of its run until it ends."""
    body: dict[str, Any] = {"message": message, "wait": False}
    if thread_id is not None:
        body["thread_id"] = thread_id
    response = function("agents_execute").post("/", headers=user.headers, json=body)
    assert response.status_code == 202, response.get_data(as_text=True)
    accepted = response.get_json()
    run = db.collection("runs").document(accepted["run_id"])
    for worker, topic in (
        ("triage_worker", "apex-triage"),
        ("data_worker", "apex-data"),
        ("optimization_worker", "apex-optimization"),
    ):
        if run.get().get("status") in ("completed", "failed"):
            break
        [step] = topics[topic].pull(1)
        delivered = function(worker).post("/", json=envelope(step))
        assert delivered.status_code == 204, delivered.get_data(as_text=True)
    got = function("runs_get").get(f"/?run_id={accepted['run_id']}", headers=user.headers)
    assert got.status_code == 200
    body = got.get_json()
    assert body["run"]["status"] == "completed", body["run"]
    return Turn(accepted["run_id"], accepted["thread_id"], body["events"])


@pytest.fixture
def planted(user: User, firestore_client: firestore.Client) -> SyntheticWorkspace:
    end = datetime.now(UTC).date() - timedelta(days=1)
    workspace = generate(end=end, days=DAYS)
    FirestoreUsageStore(firestore_client).apply(user.workspace, workspace.records)
    return workspace


@pytest.fixture
def chat(
    function: Fn, topics: dict[str, Captured], firestore_client: firestore.Client, user: User
) -> Callable[..., Turn]:
    def send(message: str, thread_id: str | None = None) -> Turn:
        return ask(function, topics, firestore_client, user, message, thread_id)

    return send


def measured(turn: Turn) -> dict[str, Any]:
    """The data agent's report without its period bounds (two runs resolve "the last 7
    days" a few seconds apart; the days they cover are the same)."""
    report = dict(turn.agent("data"))
    report.pop("period")
    report["trend"] = {k: v for k, v in report["trend"].items() if k != "previous_period"}
    return report


def test_the_golden_follow_up_answers_for_the_last_7_days_with_the_same_intents(
    chat: Callable[..., Turn], planted: SyntheticWorkspace
) -> None:
    first = chat("What did we spend last month, and where can we save?")
    assert first.triage.entities.intents == ["cost_analysis", "optimization"]
    assert first.triage.entities.inherited == []
    read, found = first.tool("read_thread_context")
    assert read["tool_args"] == {"thread_id": first.thread_id}
    assert found["results"] == {"found": False}

    follow = chat("and what about just the last 7 days?", first.thread_id)
    check_sequence(follow.events, ["triage", "data", "optimization"])
    triaged = follow.triage
    assert triaged.intent == first.triage.intent
    assert triaged.entities.intents == ["cost_analysis", "optimization"]
    assert triaged.entities.period is not None
    assert triaged.entities.period.token == "last_7d"
    assert "intent" in triaged.entities.inherited
    assert "period" not in triaged.entities.inherited  # it was replaced
    assert triaged.route.agents == ["data", "optimization"]
    # The stream shows the context it read: the first run, its question and findings.
    read, found = follow.tool("read_thread_context")
    assert read["tool_args"] == {"thread_id": first.thread_id}
    assert found["success"] is True
    results = found["results"]
    assert (results["found"], results["run_id"]) == (True, first.run_id)
    assert results["question"] == "What did we spend last month, and where can we save?"
    assert results["intents"] == ["cost_analysis", "optimization"]
    assert results["recommendations"] == [
        r["title"] for r in first.agent("optimization")["recommendations"]
    ]
    classify, _ = follow.tool("classify_message")
    assert classify["tool_args"]["thread_context"] == first.run_id

    # The same numbers as a fresh question that states the scope in full.
    fresh = chat("What did we spend in the last 7 days, and where can we save?")
    assert fresh.triage.entities.inherited == []
    assert measured(follow) == measured(fresh)
    assert (
        follow.agent("optimization")["recommendations"]
        == fresh.agent("optimization")["recommendations"]
    )
    totals = follow.agent("data")["totals"]
    assert follow.text.startswith("**Spend for ")
    assert f"${totals['cost_usd']:,.2f}**" in follow.text.splitlines()[0]
    assert totals["requests"] < first.agent("data")["totals"]["requests"]


def test_why_after_an_anomaly_answers_from_its_driver_and_that_day(
    chat: Callable[..., Turn], planted: SyntheticWorkspace
) -> None:
    first = chat("Why did our costs spike in the last 30 days?")
    assert first.agents == ["triage", "data"]
    anomalies = first.agent("data")["anomalies"]
    planted_day = planted.manifest.anomaly
    [anomaly] = [a for a in anomalies if a["day"] == planted_day.day]

    why = chat("why?", first.thread_id)
    # Answered from the stored findings: triage alone, no agent measures again.
    check_sequence(why.events, ["triage"])
    triaged = why.triage
    assert triaged.route.answer == "reference"
    assert triaged.route.agents == []
    reference = triaged.entities.reference
    assert reference is not None
    assert (reference.kind, reference.asks) == ("anomaly", "why")
    assert reference.ranks == [anomalies.index(anomaly) + 1]
    driver = anomaly["driver"]
    first_sentence = why.text.split("**")[1]
    assert first_sentence.startswith(f"Spend on {planted_day.day} was ${anomaly['cost_usd']:,.2f}")
    assert f"`{driver['model']}` ({driver['provider']}) in feature `{driver['feature']}`" in (
        first_sentence
    )
    assert f"(+${driver['increase_usd']:,.2f})" in first_sentence
    # The driver's calls that day, counted from the planted records.
    calls = [
        r
        for r in planted.records
        if r.day == planted_day.day
        and (r.provider, r.model, r.feature)
        == (driver["provider"], driver["model"], driver["feature"])
    ]
    assert f"made {len(calls):,} calls" in why.text
    input_per_call = round(sum(r.input_tokens for r in calls) / len(calls), 1)
    assert f"of {input_per_call:,} input tokens" in why.text

    again = chat("what caused it?", first.thread_id)
    assert again.triage.entities.reference == reference.model_copy(
        update={"phrase": "what caused it?"}
    )
    assert again.text.split("\n")[0] == why.text.split("\n")[0]


def test_tell_me_more_about_2_answers_from_recommendation_2(
    chat: Callable[..., Turn], planted: SyntheticWorkspace
) -> None:
    first = chat("Where can we save in the last 30 days?")
    recommendations = first.agent("optimization")["recommendations"]
    second = recommendations[1]

    more = chat("tell me more about #2", first.thread_id)
    check_sequence(more.events, ["triage"])
    reference = more.triage.entities.reference
    assert reference is not None
    assert (reference.kind, reference.ranks, reference.listed) == (
        "recommendation",
        [2],
        len(recommendations),
    )
    assert more.text.startswith(
        f"**#2 of {len(recommendations)}, {second['title']}, saves "
        f"${second['monthly_savings_usd']:,.2f}/month**"
    )
    assert second["detail"] in more.text
    for step in second["steps"]:
        assert step in more.text
    assert more.message["recommendations"] == [second]

    how = chat("how?", first.thread_id)
    assert how.triage.entities.reference is not None
    assert how.triage.entities.reference.ranks == [2]  # the one in focus
    assert how.text.startswith(f"**To act on #2 of {len(recommendations)}, {second['title']}**")
    assert how.text.split("\n")[1] == f"1. {second['steps'][0]}"

    missing = chat(f"and #{len(recommendations) + 1}?", first.thread_id)
    assert missing.triage.route.answer == "reference"
    assert missing.text.startswith(f"The earlier answer listed {len(recommendations)} ")


@pytest.mark.parametrize(
    ("follow_ups", "inherited"),
    [
        (
            [
                ("what about gpt-4o?", "What did we spend on gpt-4o in the last 30 days?"),
                ("and last week?", "What did we spend on gpt-4o last week?"),
                ("same for gpt-4.1", "What did we spend on gpt-4.1 last week?"),
                ("How many tokens?", "How many tokens did gpt-4.1 use last week?"),
            ],
            [
                ["intent", "period"],
                ["intent", "models"],
                ["intent", "period"],
                ["period", "models"],
            ],
        ),
        (
            [
                ("only anthropic", "What did we spend on anthropic in the last 30 days?"),
                (
                    "the research agent instead",
                    "What did we spend on anthropic for research_agent in the last 30 days?",
                ),
                (
                    "claude-haiku-4-5?",
                    "What did we spend on claude-haiku-4-5 from anthropic for research_agent "
                    "in the last 30 days?",
                ),
            ],
            [
                ["intent", "period"],
                ["intent", "period", "providers"],
                ["intent", "period", "features", "providers"],
            ],
        ),
    ],
    ids=["model-period-model-intent", "provider-feature-bare"],
)
def test_each_follow_up_kind_answers_for_the_inherited_scope(
    chat: Callable[..., Turn],
    planted: SyntheticWorkspace,
    follow_ups: list[tuple[str, str]],
    inherited: list[list[str]],
) -> None:
    thread = chat("What did we spend in the last 30 days?").thread_id
    for (message, stated), carried in zip(follow_ups, inherited, strict=True):
        follow = chat(message, thread)
        fresh = chat(stated)
        assert follow.triage.entities.inherited[: len(carried)] == carried, message
        scope = ("period", "models", "features", "providers")
        got = {k: follow.triage.entities.model_dump(mode="json")[k] for k in scope}
        want = {k: fresh.triage.entities.model_dump(mode="json")[k] for k in scope}
        for kind in ("models", "features", "providers"):
            got[kind] = sorted(m["name"] for m in got[kind])
            want[kind] = sorted(m["name"] for m in want[kind])
        for period in (got["period"], want["period"]):
            period.pop("phrase")
        if follow.triage.entities.period and follow.triage.entities.period.token:
            got.pop("period")  # a relative token resolves again at each run's own time
            want.pop("period")
        assert got == want, message
        assert follow.agents == fresh.agents, message
        assert measured(follow) == measured(fresh), message


def test_a_message_without_a_thread_stands_alone(
    chat: Callable[..., Turn], planted: SyntheticWorkspace
) -> None:
    message = "and what about just the last 7 days?"
    alone = chat(message)
    _, found = alone.tool("read_thread_context")
    assert found["results"] == {"found": False}
    triaged = alone.triage
    assert triaged.entities.inherited == []
    # Exactly what the message says by itself (agents_triage gives the same).
    now = datetime.now(UTC)
    standalone = analyze(message, now=now)
    assert triaged.intent == standalone.intent
    assert triaged.route.answer == "clarify"
    assert triaged.entities.intents == standalone.entities.intents
    assert alone.text.startswith(
        "I'm not sure what you mean. Did you mean what you spent last 7 days"
    )
    assert json.loads(json.dumps(alone.message["recommendations"])) == []
