"""The triage agent: what is asked, whether the workspace has data to answer it, the route."""

from __future__ import annotations

from datetime import datetime

from shared.agents.trace import AgentTrace
from shared.agents.triage.intent import analyze, decide_route
from shared.models.triage import TriageResponse, TriageResult
from shared.store.documents import Catalogue


def triage(trace: AgentTrace, question: str, catalogue: Catalogue, now: datetime) -> TriageResponse:
    trace.think(
        "Classify the question with the lexicon engine, match what it names against the "
        "workspace's own models and features, then route on whether usage data exists."
    )
    result: TriageResult = trace.tool(
        "classify_message",
        {"message_chars": len(question), "known_models": len(catalogue.models)},
        lambda: analyze(
            question,
            now=now,
            known_models=catalogue.models,
            known_features=catalogue.features,
            known_providers=catalogue.providers,
        ),
    )
    trace.tool(
        "check_usage_data",
        {},
        lambda: {
            "has_data": catalogue.has_data,
            "records": catalogue.records,
            "first_day": catalogue.first_day,
            "last_day": catalogue.last_day,
        },
    )
    route = decide_route(result, has_usage_data=catalogue.has_data)
    response = TriageResponse.build(result, route)
    trace.completed(response)
    return response
