"""The triage agent: what is asked, whether the workspace has data to answer it, the route."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from shared.agents.trace import AgentTrace
from shared.agents.triage.context import shown
from shared.agents.triage.intent import analyze, decide_route
from shared.models.context import ThreadContext
from shared.models.triage import TriageResponse, TriageResult
from shared.store.documents import Catalogue


def triage(
    trace: AgentTrace,
    question: str,
    catalogue: Catalogue,
    now: datetime,
    *,
    thread: tuple[str, Callable[[], ThreadContext | None]] | None = None,
) -> TriageResponse:
    """Triage ``question``. ``thread`` is the chat's (its id and the reader of its context):
    the message is then read as a possible follow-up of the thread's previous run; without
    it (``agents_triage``), the message stands alone."""
    trace.think(
        "Classify the question with the lexicon engine, match what it names against the "
        "workspace's own models and features, then route on whether usage data exists."
        + (
            " Read the thread's previous question and findings first: a follow-up inherits "
            "what it does not say, and a question about an earlier answer is answered from it."
            if thread is not None
            else ""
        )
    )
    context = None
    if thread is not None:
        thread_id, read = thread
        context = trace.tool("read_thread_context", {"thread_id": thread_id}, read, shown)
    result: TriageResult = trace.tool(
        "classify_message",
        {
            "message_chars": len(question),
            "known_models": len(catalogue.models),
            "thread_context": context.run_id if context is not None else None,
        },
        lambda: analyze(
            question,
            now=now,
            known_models=catalogue.models,
            known_features=catalogue.features,
            known_providers=catalogue.providers,
            context=context,
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
