"""The DESIGN §3.6 event grammar, as a checker the pipeline, function and relay tests share."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def check_sequence(events: Sequence[dict[str, Any]], agents: Sequence[str]) -> None:
    """Assert ``events`` (wire frames) are exactly the §3.6 sequence for ``agents``.

    run_started; per agent: agent_started, >=1 agent_thinking, tool_executing/tool_completed
    pairs (same tool and execution id), agent_completed; then message and run_completed.
    Seq runs 1, 2, 3, ... with no gap.
    """
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1)), "seq not consecutive"
    names = [e["event"] for e in events]
    assert names[0] == "run_started", names
    run_id = events[0]["run_id"]
    assert all(e["run_id"] == run_id for e in events)
    assert all(e["type"] == "event" for e in events)
    at = 1
    for agent in agents:
        assert names[at] == "agent_started", (at, names)
        assert events[at]["agent"] == agent
        assert events[at]["data"]["agent_name"] == agent
        at += 1
        assert names[at] == "agent_thinking", (at, names)
        while names[at] == "agent_thinking":
            assert events[at]["data"]["reasoning"]
            at += 1
        tools = 0
        while names[at] == "tool_executing":
            start, done = events[at], events[at + 1]
            assert done["event"] == "tool_completed", (at, names)
            assert start["data"]["tool_name"] == done["data"]["tool_name"]
            assert start["data"]["execution_id"] == done["data"]["execution_id"]
            assert done["data"]["success"] is True
            assert done["data"]["execution_time_ms"] >= 0
            assert start["agent"] == done["agent"] == agent
            tools += 1
            at += 2
        assert tools >= 1, f"{agent} called no tool"
        assert names[at] == "agent_completed", (at, names)
        assert events[at]["agent"] == agent
        assert events[at]["data"]["status"] == "completed"
        at += 1
    assert names[at:] == ["message", "run_completed"], names[at:]
    assert "agent" not in events[at]
    assert "agent" not in events[at + 1]
    assert events[-1]["data"]["status"] == "completed"
