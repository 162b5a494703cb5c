"""A fleet exporting into one workspace (issue 13): 100 exporter processes' worth of traffic
from one load generator, for 60 s, through ``usage_ingest`` → Pub/Sub → push →
``usage_aggregator`` on the local stack (``run_stack``: emulators and every function).

    .venv/bin/python -m bench.fleet [--exporters 100] [--seconds 60] [--spans 30]

Each exporter sends a batch of ``--spans`` spans every 5 s (the OpenTelemetry batch span
processor's default schedule), at its own offset, with the workspace's ingest key; 2% of
exports are sent again a second later (an exporter retrying). Measured:

- every span counted exactly once: the workspace's record count and the day's rollups
  against the distinct spans sent;
- the hottest document's writes a second over the run, from the Firestore emulator's write
  log (devstack/firestore_writes.py); for scale, the aggregator's commits a second (each
  wrote the same rollup and workspace documents in the earlier layout);
- export → visible in ``agents_data``: one span a second carries a feature of its own; a
  poller asks ``agents_data`` for those features (period ``today``) as fast as it answers,
  and the latency is first seen - sent. Baseline, same run: export → ``usage_ingest``'s
  202 (the export accepted). p50/p99 over the run, and the median of 10 s rounds' p50 with
  their range.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import random
import statistics
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from google.cloud import firestore

from bench.common import percentile, report
from bench.ingest import stack_cpu_s
from bench.relay_capacity import sign_up
from devstack.firestore_writes import WriteLog
from devstack.stack import DevConfig, run_stack
from shared.store.usage import FirestoreUsageStore

EXPORT_EVERY_S = 5.0
RETRIED = 0.02
WORKSPACE = "demo"  # made by the stack (no demo data), with its ingest key
TARGET = (
    "every span counted once; hottest document <= 1 write/s averaged over the run; "
    "export -> visible in agents_data p50/p99 reported"
)
MODELS = ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini")
# One key for 100 processes' exports: its per-caller limit out of the way (the workspace's
# own limit, 6,000 calls a minute, stays).
LIMITS = {"APEX_FUNCTION_CALLS_PER_MINUTE": "1000000"}


def faults(log: Path) -> list[str]:
    """The warnings and errors a function logged (structured JSON lines)."""
    found = []
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("severity") in ("WARNING", "ERROR"):
            found.append(str(entry.get("message", ""))[:200])
    return found


@dataclass
class Fleet:
    spans: int
    rng: random.Random = field(default_factory=lambda: random.Random(11))
    sent: set[str] = field(default_factory=set)
    exports: int = 0
    retries: int = 0
    acked_s: list[tuple[float, float]] = field(default_factory=list)  # (sent at, latency)
    probes: dict[str, float] = field(default_factory=dict)  # feature -> sent at
    seen: dict[str, float] = field(default_factory=dict)  # feature -> first seen at
    probe_acked: dict[str, float] = field(default_factory=dict)  # feature -> 202 at
    lock: threading.Lock = field(default_factory=threading.Lock)

    def batch(self, exporter: int, probe: str | None) -> list[dict[str, Any]]:
        now = datetime.now(UTC)
        with self.lock:
            spans = [
                {
                    "id": f"{uuid.uuid4().hex}-{exporter:03d}",
                    "model": self.rng.choice(MODELS),
                    "provider": "openai",
                    "input_tokens": self.rng.randrange(200, 4000),
                    "output_tokens": self.rng.randrange(10, 800),
                    "latency_ms": self.rng.randrange(100, 8000),
                    "ts": now.isoformat(),
                    "feature": f"service-{exporter % 25:02d}",
                    "user": f"user-{self.rng.randrange(200):03d}",
                }
                for _ in range(self.spans)
            ]
            if probe is not None:
                spans[0]["feature"] = probe
            self.sent.update(str(s["id"]) for s in spans)
        return spans


def export(
    fleet: Fleet, http: httpx.Client, url: str, key: str, body: list[Any], probe: str | None
) -> None:
    started = time.monotonic()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    response = http.post(url, content=json.dumps(body), headers=headers)
    if response.status_code != 202 or response.json()["rejected"]:
        raise RuntimeError(f"usage_ingest: {response.status_code} {response.text[:300]}")
    acked = time.monotonic()
    with fleet.lock:
        fleet.acked_s.append((started, acked - started))
        if probe is not None:
            fleet.probe_acked[probe] = acked


def poll_visible(
    fleet: Fleet, http: httpx.Client, url: str, token: str, stop: threading.Event
) -> list[float]:
    """Ask agents_data for the probes not seen yet, as fast as it answers, until ``stop``
    and every probe seen (or 30 s after ``stop``); returns the calls' durations."""
    headers = {"Authorization": f"Bearer {token}", "X-Apex-Workspace": WORKSPACE}
    calls: list[float] = []
    give_up = float("inf")
    while True:
        if stop.is_set():
            give_up = min(give_up, time.monotonic() + 30)
        with fleet.lock:
            pending = [p for p in fleet.probes if p not in fleet.seen][:50]
        if not pending:
            if stop.is_set():
                return calls
            time.sleep(0.01)
            continue
        if time.monotonic() > give_up:
            return calls
        started = time.monotonic()
        response = http.post(
            url,
            headers=headers,
            json={"period": "today", "group_by": ["feature"], "filters": {"features": pending}},
        )
        answered = time.monotonic()
        calls.append(answered - started)
        if response.status_code != 200:
            raise RuntimeError(f"agents_data: {response.status_code} {response.text[:300]}")
        found = {row["key"] for row in response.json()["breakdown"]["feature"] if row["requests"]}
        with fleet.lock:
            for probe in found & set(pending):
                fleet.seen.setdefault(probe, answered)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--exporters", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--spans", type=int, default=30)
    args = parser.parse_args()
    project = f"demo-bench{uuid.uuid4().hex[:6]}"
    with (
        tempfile.TemporaryDirectory() as state,
        run_stack(
            DevConfig.with_os_ports(project, Path(state)),
            {**os.environ, "GOOGLE_CLOUD_PROJECT": project, **LIMITS},
            demo_data=False,
        ) as running,
    ):
        os.environ.update(running.env)
        db = firestore.Client(project=running.project)
        store = FirestoreUsageStore(db)
        _, token = sign_up(running, WORKSPACE)
        key = running.demo_ingest_key
        ingest_url = running.functions["usage_ingest"]
        data_url = running.functions["agents_data"]
        fleet = Fleet(args.spans)
        rng = random.Random(3)
        # (time, sequence, exporter, body of a retry): every exporter every 5 s at its own
        # offset.
        started = time.monotonic() + 1.0
        sequence = iter(range(10**9))
        events: list[tuple[float, int, int, list[Any] | None]] = [
            (started + rng.uniform(0, EXPORT_EVERY_S), next(sequence), n, None)
            for n in range(args.exporters)
        ]
        heapq.heapify(events)
        end = started + args.seconds
        next_probe = started
        probe_n = 0
        stop = threading.Event()
        cpu_before = stack_cpu_s()
        with (
            WriteLog(running.hosts.firestore) as writes,
            writes.logging(running.project) as log,
            httpx.Client(timeout=60, limits=httpx.Limits(max_connections=64)) as http,
            ThreadPoolExecutor(32) as pool,
        ):
            poller = pool.submit(poll_visible, fleet, http, data_url, token, stop)
            try:
                pending = []
                while events and events[0][0] < end:
                    at, _, exporter, body = heapq.heappop(events)
                    time.sleep(max(0.0, at - time.monotonic()))
                    probe = None
                    if body is None:
                        if time.monotonic() >= next_probe:
                            probe, probe_n = f"probe-{probe_n:04d}", probe_n + 1
                            next_probe += 1
                        body = fleet.batch(exporter, probe)
                        if probe is not None:
                            with fleet.lock:
                                fleet.probes[probe] = time.monotonic()
                        heapq.heappush(
                            events, (at + EXPORT_EVERY_S, next(sequence), exporter, None)
                        )
                        if rng.random() < RETRIED:
                            heapq.heappush(events, (at + 1.0, next(sequence), exporter, body))
                        fleet.exports += 1
                    else:
                        fleet.retries += 1
                    pending.append(pool.submit(export, fleet, http, ingest_url, key, body, probe))
                for future in pending:
                    future.result()
                sent_all = time.monotonic()
                # Every span counted: the aggregator drains what Pub/Sub still holds.
                deadline = time.monotonic() + 180
                while store.catalogue(WORKSPACE).records < len(fleet.sent):
                    if time.monotonic() > deadline:
                        raise TimeoutError("not every span was counted in 180 s")
                    time.sleep(0.25)
                drained = time.monotonic()
            finally:
                stop.set()  # the poller ends, whatever happened
            poll_calls = poller.result()
            stats = log.stats(top=8)
        cpu_after = stack_cpu_s()
        today = datetime.now(UTC).date().isoformat()
        rows_today = store.daily(WORKSPACE, today, today)
        counted = store.catalogue(WORKSPACE).records
        requests_today = sum(r.requests for r in rows_today)
        aggregator_faults = faults(Path(state) / "logs" / "usage_aggregator.log")
        ingest_faults = faults(Path(state) / "logs" / "usage_ingest.log")
        parts_left = sum(
            1
            for snap in db.collection(f"workspaces/{WORKSPACE}/usage_daily").stream()
            if (snap.to_dict() or {}).get("kind") == "part"
        )
    run_s = (stats.last_ms - stats.first_ms) / 1000 if stats.first_ms and stats.last_ms else 0.0
    hottest = stats.hottest[0]
    visible = [fleet.seen[p] - fleet.probes[p] for p in fleet.probes if p in fleet.seen]
    after_ack = [fleet.seen[p] - fleet.probe_acked[p] for p in fleet.probes if p in fleet.seen]
    acked = [latency for _, latency in fleet.acked_s]
    rounds = []
    for r in range(int(args.seconds // 10)):
        lo, hi = started + 10 * r, started + 10 * (r + 1)
        vis = [
            fleet.seen[p] - t for p, t in fleet.probes.items() if lo <= t < hi and p in fleet.seen
        ]
        ack = [lat for t, lat in fleet.acked_s if lo <= t < hi]
        if vis and ack:
            rounds.append((percentile(vis, 0.5), percentile(ack, 0.5)))
    ratios = [v / a for v, a in rounds]
    cpu = {name: round(cpu_after[name] - cpu_before.get(name, 0.0), 1) for name in cpu_after}
    exact = len(fleet.sent) == counted == requests_today
    vis50, vis99 = percentile(visible, 0.5), percentile(visible, 0.99)
    ack50, ack99 = percentile(acked, 0.5), percentile(acked, 0.99)
    rows = [
        ["exports (spans each), retried", f"{fleet.exports:,} ({args.spans}), {fleet.retries}", ""],
        [
            "distinct spans sent / counted / rollup requests",
            f"{len(fleet.sent):,} / {counted:,} / {requests_today:,}",
            "exact" if exact else "MISMATCH",
        ],
        ["spans/s sent (over the run)", round(len(fleet.sent) / args.seconds), ""],
        ["last export -> every span counted, s", round(drained - sent_all, 2), ""],
        [
            "documents written, writes (logged span, s)",
            f"{stats.documents:,}, {stats.writes:,} ({run_s:.1f} s)",
            "",
        ],
        ["hottest document: writes/s over the run", f"{hottest.writes / run_s:.3f}", hottest.path],
        ["hottest document: most writes in one second", hottest.max_in_1s, ""],
        [
            "aggregator deliveries/s (each wrote the same documents in the earlier layout)",
            f"{(fleet.exports + fleet.retries) / args.seconds:.1f}",
            "",
        ],
        [
            "export -> 202 p50 / p99 ms (baseline)",
            f"{ack50 * 1000:.0f} / {ack99 * 1000:.0f}",
            "1.00x",
        ],
        [
            "export -> visible in agents_data p50 / p99 ms",
            f"{vis50 * 1000:.0f} / {vis99 * 1000:.0f}",
            f"{vis50 / ack50:.1f}x",
        ],
        [
            "202 -> visible in agents_data p50 / p99 ms (the aggregator and the read)",
            f"{percentile(after_ack, 0.5) * 1000:.0f} / {percentile(after_ack, 0.99) * 1000:.0f}",
            "",
        ],
        [
            "visible / 202 p50: median of 10 s rounds (range)",
            "",
            f"{statistics.median(ratios):.1f}x ({min(ratios):.1f}-{max(ratios):.1f}x)"
            if ratios
            else "",
        ],
        [
            "agents_data polls, p50 ms",
            f"{len(poll_calls)}, {percentile(poll_calls, 0.5) * 1000:.0f}",
            "",
        ],
        ["probes seen / sent", f"{len(visible)} / {len(fleet.probes)}", ""],
        [
            "warnings and errors logged: usage_ingest, usage_aggregator",
            f"{len(ingest_faults)}, {len(aggregator_faults)}",
            "",
        ],
    ]
    report(
        "fleet",
        ["measure", "value", "note"],
        rows,
        {
            "target": TARGET,
            "exporters": args.exporters,
            "seconds": args.seconds,
            "spans_per_export": args.spans,
            "hottest": [h.model_dump() for h in stats.hottest],
            "visible_s": sorted(visible),
            "after_ack_s": sorted(after_ack),
            "rounds_visible_acked_p50_s": rounds,
            "cpu_s": cpu,
            "parts_left": parts_left,
            "faults": {
                "usage_ingest": ingest_faults[:20],
                "usage_aggregator": aggregator_faults[:20],
            },
            "load_avg": os.getloadavg(),
        },
    )


if __name__ == "__main__":
    main()
