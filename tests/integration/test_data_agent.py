"""The data agent's tool calls over stored rollups give exactly the pure report."""

from __future__ import annotations

from datetime import UTC, date, datetime

from google.cloud import firestore

from devstack.synthetic import generate
from shared.agents.data import measure
from shared.agents.trace import EventLog
from shared.models.findings import UsageFilters
from shared.models.period import AbsolutePeriod
from shared.price_book import PriceBook
from shared.store.usage import FirestoreUsageStore
from shared.usage.report import build_data_report, days_needed


def test_the_tools_give_the_report(firestore_client: firestore.Client) -> None:
    workspace = generate(end=date(2026, 11, 20), days=20)
    store = FirestoreUsageStore(firestore_client)
    store.apply("ws", workspace.records)
    period = AbsolutePeriod(start=date(2026, 11, 10), end=date(2026, 11, 20)).resolve()
    log = EventLog(lambda: datetime(2026, 11, 21, tzinfo=UTC))
    got = measure(log.agent("data", "t"), store, "ws", period, book=PriceBook.LIST)
    days = days_needed(period)
    expected = build_data_report(
        store.daily("ws", days[0], days[-1]), store.users("ws", days[0], days[-1]), period
    )
    assert got == expected
    tools = [e.data["tool_name"] for e in log.events if e.event == "tool_completed"]
    assert tools == [
        "query_usage_rollups",
        "query_user_rollups",
        "usage_totals",
        "usage_breakdown",
        "usage_trend",
        "spend_anomalies",
    ]
    filtered = measure(
        EventLog().agent("data", "t"),
        store,
        "ws",
        period,
        filters=UsageFilters(models=["gpt-4o"]),
        book=PriceBook.LIST,
    )
    assert filtered.totals.requests == sum(
        r.requests
        for r in workspace.records
        if r.model == "gpt-4o" and "2026-11-10" <= r.day <= "2026-11-20"  # end date is inclusive
    )
