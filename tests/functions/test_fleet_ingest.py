"""A fleet's exports into one workspace through the functions (in-process): ``usage_ingest``
with an ingest key, well above one export a second for several seconds, some exports
retried whole and some batches delivered twice to ``usage_aggregator``. Every record counts
once, and no document is written more than once a second on average over the run (the
emulator's write log): not the rollups, the rate-limit counts, nor the key's
``last_used_at`` (written at most once a minute, DESIGN §9)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from google.cloud import firestore

from devstack.emulators import EmulatorHosts
from devstack.firestore_writes import WriteLog
from shared.models.usage import UsageRecord, parse_usage_record
from shared.store.usage import FirestoreUsageStore
from tests.support.functions import Captured, User, envelope

Fn = Callable[[str], FlaskClient]
RUN_S = 6.0
SPANS = 25


@pytest.fixture
def ingest_key(function: Fn, user: User) -> str:
    made = function("workspaces").post(
        f"/{user.workspace}/keys", json={"name": "fleet", "scope": "ingest"}, headers=user.headers
    )
    assert made.status_code == 201, made.get_json()
    return str(made.get_json()["secret"])


def export(n: int, rng: random.Random, now: datetime) -> list[dict[str, Any]]:
    """One exporter's batch: spans of one process, a few features, models and users."""
    return [
        {
            "id": f"trace{n:06d}-span{i:03d}",
            "model": rng.choice(["gpt-4o", "gpt-4o-mini"]),
            "provider": "openai",
            "input_tokens": rng.randrange(200, 3000),
            "output_tokens": rng.randrange(10, 500),
            "latency_ms": rng.randrange(100, 5000),
            "ts": (now - timedelta(seconds=rng.randrange(600))).isoformat(),
            "feature": f"feature-{rng.randrange(6)}",
            "user": f"user-{rng.randrange(20)}",
        }
        for i in range(SPANS)
    ]


def test_a_fleet_s_exports_count_once_and_no_document_passes_one_write_a_second(
    function: Fn,
    user: User,
    ingest_key: str,
    topics: dict[str, Captured],
    firestore_client: firestore.Client,
    emulators: EmulatorHosts,
    project_id: str,
) -> None:
    rng = random.Random(5)
    ingest, aggregator = function("usage_ingest"), function("usage_aggregator")
    headers = {"Authorization": f"Bearer {ingest_key}"}
    now = datetime.now(UTC)
    exported: list[list[dict[str, Any]]] = []
    exports = deliveries = 0
    with WriteLog(emulators.firestore) as client, client.logging(project_id) as log:
        started = time.monotonic()
        while time.monotonic() - started < RUN_S:
            # 1 in 5 exports is a retry of an earlier one (the exporter saw no answer).
            retried = exported and rng.random() < 0.2
            body = rng.choice(exported) if retried else export(len(exported), rng, now)
            if not retried:
                exported.append(body)
            response = ingest.post("/", json=body, headers=headers)
            assert response.status_code == 202, response.get_json()
            exports += 1
            [batch] = topics["apex-usage"].pull(1)
            for _ in range(2 if rng.random() < 0.25 else 1):  # Pub/Sub delivers again
                assert aggregator.post("/", json=envelope(batch)).status_code == 204
                deliveries += 1
        elapsed = time.monotonic() - started
        stats = log.stats(top=5)
        keys = log.stats(prefix="api_keys/")

    assert exports / elapsed >= 3, f"{exports} exports in {elapsed:.1f} s"
    assert stats.hottest[0].writes / elapsed <= 1.0, stats.hottest
    assert [k.writes for k in keys.hottest] == [1]  # last_used_at, once
    sent: dict[str, UsageRecord] = {}
    for body in exported:
        for raw in body:
            record = parse_usage_record(raw, now=now)
            sent[record.record_id] = record
    store = FirestoreUsageStore(firestore_client)
    assert store.catalogue(user.workspace).records == len(sent)
    days = sorted({r.day for r in sent.values()})
    rows = store.daily(user.workspace, days[0], days[-1])
    for field in ("requests", "input_tokens", "output_tokens", "latency_ms_sum"):
        got = sum(getattr(r, field) for r in rows)
        assert got == sum(
            getattr(r, field) if field != "latency_ms_sum" else round(r.latency_ms or 0)
            for r in sent.values()
        ), field
    per_user = store.users(user.workspace, days[0], days[-1])
    assert sum(u.requests for u in per_user) == len(sent)
