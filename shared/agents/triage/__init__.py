"""The triage agent: what a question asks, whether the workspace has data to answer it, and
the route through the other agents (DESIGN §3.4, §8; docs/triage.md).

- ``agent.py``: the step (``triage``), its tool calls and events;
- ``intent.py``: the lexicon engine (``analyze``) and the route (``decide_route``);
- ``entities.py``: models, providers, features, savings targets, breakdowns named;
- ``periods.py``: the period phrases ("last week", "in March").
"""

from shared.agents.triage.agent import triage

__all__ = ["triage"]
