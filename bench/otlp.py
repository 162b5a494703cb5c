"""OTLP ingest throughput (issue 13): spans/s through ``otlp_ingest`` end to end, against
what the Firestore emulator takes for the same writes in the same run, and CPU per 1,000
spans.

    .venv/bin/python -m bench.otlp [--spans 20000] [--exporters 4] [--rounds 3]

On the local stack (``bench_stack``: emulators and every function as its own process).
Spans are made by the OpenTelemetry SDK (a tracer, GenAI attributes, explicit start and end
times) and sent by the SDK's own OTLP/HTTP exporter (protobuf, gzip) in exports of 512
spans (the batch span processor's default), ``--exporters`` at once, with the workspace's
ingest key. Each round, into a workspace of its own:

- baseline: the commits ``FirestoreUsageStore.apply`` makes for the very records those
  spans map to (``shared.ingest.otlp.map_spans`` of the exporter's own encoding), built
  ahead and committed back to back (``bench.ingest.prepared_commits``): the emulator taking
  the same writes, with no Apex work in the timing;
- end to end: from the first export until the workspace counts every span (exporter →
  ``otlp_ingest`` → Pub/Sub → push → ``usage_aggregator``).

Figures: spans/s of each, their ratio, and the stack's CPU seconds per 1,000 spans in the
end-to-end phase (per process and in total, from /proc); the median over the rounds with
their range.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from google.cloud import firestore
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExportResult

from bench.common import report
from bench.ingest import prepared_commits, replay, stack_cpu_s, until_counted
from bench.relay_capacity import bench_stack
from shared.ingest.otlp import map_spans
from shared.store.usage import FirestoreUsageStore

TARGET: Final = (
    "report spans/s through otlp_ingest end to end against the emulator taking the same "
    "writes (same run), and CPU per 1,000 spans"
)
EXPORT_SPANS: Final = 512  # BatchSpanProcessor's max_export_batch_size default
WORKSPACE: Final = "demo"  # made by the stack, with its ingest key
MODELS: Final = ("gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5", "gemini-2.5-flash")
PROVIDERS: Final = {"gpt": "openai", "cla": "anthropic", "gem": "gcp.gemini"}
# One key for every exporter: its per-caller limit out of the way (as bench.fleet does).
CALLS_PER_MINUTE: Final = "1000000"


class _Collect(SpanProcessor):
    """Keeps every ended span (the SDK's spans, exported by hand below)."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)


def make_spans(n: int, run: str, seed: int) -> list[ReadableSpan]:
    """``n`` GenAI client spans of a service, as instrumentation makes them."""
    collect = _Collect()
    provider = TracerProvider(resource=Resource.create({"service.name": f"bench-{run}"}))
    provider.add_span_processor(collect)
    tracer = provider.get_tracer("bench.otlp")
    rng = random.Random(seed)
    start = datetime.now(UTC) - timedelta(hours=1)
    for i in range(n):
        model = MODELS[i % len(MODELS)]
        began = start + timedelta(milliseconds=i * 7)
        span = tracer.start_span(f"chat {model}", start_time=_ns(began))
        span.set_attributes(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": PROVIDERS[model[:3]],
                "gen_ai.request.model": model,
                "gen_ai.usage.input_tokens": rng.randint(200, 4000),
                "gen_ai.usage.output_tokens": rng.randint(10, 800),
                "apex.feature": f"feature-{i % 20}",
                "enduser.id": f"user-{i % 50}",
            }
        )
        span.end(end_time=_ns(began + timedelta(milliseconds=rng.randint(300, 4000))))
    provider.shutdown()
    return collect.spans


def _ns(at: datetime) -> int:
    return int(at.timestamp() * 1e9)


def baseline(store: FirestoreUsageStore, workspace: str, spans: Sequence[ReadableSpan]) -> float:
    """Spans/s the emulator takes for the commits those spans' records make."""
    records = []
    for start in range(0, len(spans), EXPORT_SPANS):
        mapped = map_spans(encode_spans(spans[start : start + EXPORT_SPANS]), now=datetime.now(UTC))
        if mapped.rejected:
            raise RuntimeError(f"map_spans rejected {mapped.rejected}: {mapped.errors}")
        records.extend(mapped.records)
    batches, _ = prepared_commits(store, workspace, records)
    return len(spans) / replay(batches)


def end_to_end(
    url: str, key: str, store: FirestoreUsageStore, spans: Sequence[ReadableSpan], exporters: int
) -> float:
    """Spans/s from the first export until the workspace counts every span."""
    counted_before = store.catalogue(WORKSPACE).records
    batches = [spans[i : i + EXPORT_SPANS] for i in range(0, len(spans), EXPORT_SPANS)]

    def send(share: list[Sequence[ReadableSpan]]) -> None:
        exporter = OTLPSpanExporter(
            endpoint=url,
            headers={"Authorization": f"Bearer {key}"},
            compression=Compression.Gzip,
            timeout=60,
        )
        try:
            for batch in share:
                if exporter.export(batch) is not SpanExportResult.SUCCESS:
                    raise RuntimeError("the OTLP exporter reported a failed export")
        finally:
            exporter.shutdown()  # type: ignore[no-untyped-call]

    shares = [batches[n::exporters] for n in range(exporters)]
    started = time.perf_counter()
    with ThreadPoolExecutor(exporters) as pool:
        list(pool.map(send, shares))
    until_counted(store, WORKSPACE, counted_before + len(spans), timeout_s=600)
    return len(spans) / (time.perf_counter() - started)


def spread(values: Sequence[float], digits: int = 2) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spans", type=int, default=20_000)
    parser.add_argument("--exporters", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    per_round: list[dict[str, Any]] = []
    with bench_stack(APEX_FUNCTION_CALLS_PER_MINUTE=CALLS_PER_MINUTE) as running:
        os.environ.update(running.env)
        store = FirestoreUsageStore(firestore.Client(project=running.project))
        url = running.functions["otlp_ingest"].rstrip("/") + "/v1/traces"
        for n in range(args.rounds):
            run = uuid.uuid4().hex[:8]
            spans = make_spans(args.spans, run, seed=n)
            base = baseline(store, f"replay-{run}", spans)
            cpu_before = stack_cpu_s()
            e2e = end_to_end(url, running.demo_ingest_key, store, spans, args.exporters)
            cpu_after = stack_cpu_s()
            cpu = {
                name: round((cpu_after[name] - cpu_before.get(name, 0.0)) / args.spans * 1000, 3)
                for name in cpu_after
                if cpu_after[name] - cpu_before.get(name, 0.0) > 0.005
            }
            stack = {name: s for name, s in cpu.items() if name != "bench (this process)"}
            per_round.append(
                {
                    "baseline_spans_per_s": round(base),
                    "otlp_spans_per_s": round(e2e),
                    "ratio": round(e2e / base, 3),
                    "stack_cpu_s_per_1000_spans": round(sum(stack.values()), 3),
                    "cpu_s_per_1000_spans": dict(sorted(cpu.items(), key=lambda kv: -kv[1])),
                }
            )
            print(per_round[-1], flush=True)
    figures = {
        field: spread([r[field] for r in per_round], 3 if field == "ratio" else 2)
        for field in (
            "baseline_spans_per_s",
            "otlp_spans_per_s",
            "ratio",
            "stack_cpu_s_per_1000_spans",
        )
    }

    def fmt(s: dict[str, float]) -> str:
        return f"{s['median']} [{s['min']}, {s['max']}]"

    rows = [
        [
            "emulator taking the same writes (baseline), spans/s",
            fmt(figures["baseline_spans_per_s"]),
        ],
        ["exporter → otlp_ingest → counted, spans/s", fmt(figures["otlp_spans_per_s"])],
        ["ratio end to end / baseline", fmt(figures["ratio"])],
        ["stack CPU s per 1,000 spans", fmt(figures["stack_cpu_s_per_1000_spans"])],
    ]
    report(
        "otlp",
        ["measure (median [min, max] of rounds)", "value"],
        rows,
        {
            "target": TARGET,
            "spans": args.spans,
            "exporters": args.exporters,
            "rounds": per_round,
            **figures,
        },
    )


if __name__ == "__main__":
    main()
