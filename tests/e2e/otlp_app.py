"""A Python app's tracing as users set it up (docs/otlp.md), run as its own process by
tests/e2e/test_otlp.py: the OpenTelemetry SDK with the OTLP/HTTP (protobuf) exporter,
configured only by the standard variables (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or
OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_HEADERS, OTEL_EXPORTER_OTLP_COMPRESSION,
OTEL_SERVICE_NAME), opentelemetry-instrumentation-openai-v2 around the official `openai`
client, and apex.feature from baggage through the BaggageSpanProcessor.

APEX_CALLS is a JSON list of ``{"model", "prompt", "feature"?}``: one chat completion each
against OPENAI_BASE_URL (a call the server refuses is an error span, as in production). APEX_MANUAL,
if set, is a JSON object of attributes for one hand-made span (a call no instrumentation
covers). It prints one JSON line per finished span: ``{"id", "name"}`` (``id`` is
``{traceId}-{spanId}``, the record id Apex gives it)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence

import openai
from opentelemetry import baggage, context, trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
from opentelemetry.processor.baggage import BaggageSpanProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)


class PrintIds(SpanExporter):
    """Tells the test which spans the app made (an app would not need this)."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        for span in spans:
            ctx = span.get_span_context()
            assert ctx is not None
            span_id = f"{ctx.trace_id:032x}-{ctx.span_id:016x}"
            sys.stdout.write(json.dumps({"id": span_id, "name": span.name}) + "\n")
        return SpanExportResult.SUCCESS


def main() -> int:
    provider = TracerProvider(resource=Resource.create())  # OTEL_SERVICE_NAME
    provider.add_span_processor(BaggageSpanProcessor(lambda key: key == "apex.feature"))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))  # OTEL_EXPORTER_OTLP_*
    provider.add_span_processor(SimpleSpanProcessor(PrintIds()))
    trace.set_tracer_provider(provider)
    OpenAIInstrumentor().instrument()  # type: ignore[no-untyped-call]

    client = openai.OpenAI(base_url=os.environ["OPENAI_BASE_URL"], api_key="sk-test", max_retries=0)
    for call in json.loads(os.environ["APEX_CALLS"]):
        feature = call.get("feature")
        token = context.attach(baggage.set_baggage("apex.feature", feature)) if feature else None
        try:
            client.chat.completions.create(
                model=call["model"], messages=[{"role": "user", "content": call["prompt"]}]
            )
        except openai.APIStatusError as e:
            sys.stderr.write(f"the call failed as the test wants: {e.status_code}\n")
        finally:
            if token is not None:
                context.detach(token)
    manual = os.environ.get("APEX_MANUAL")
    if manual:
        tracer = trace.get_tracer("apex-otlp-app")
        with tracer.start_as_current_span("chat claude", kind=trace.SpanKind.CLIENT) as span:
            span.set_attributes(json.loads(manual))
    # Flushes the batch: the export (and any retry) happens before the process ends.
    provider.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
