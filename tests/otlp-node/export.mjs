// A Node app's tracing as users set it up: the OpenTelemetry JS SDK with the OTLP/HTTP trace
// exporter (OTLP/JSON), configured only by the standard environment variables
// (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_HEADERS,
// OTEL_SERVICE_NAME). It records the spans APEX_SPANS describes (a JSON list of
// {name, attributes, error?, ageMs?, durationMs?}), exports them, and prints one JSON line per
// span ({traceId, spanId}) and the SDK's own warnings (a partial success is one) on stderr.
import { DiagConsoleLogger, DiagLogLevel, SpanKind, SpanStatusCode, diag } from "@opentelemetry/api";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { detectResources, envDetector } from "@opentelemetry/resources";
import { BasicTracerProvider, BatchSpanProcessor } from "@opentelemetry/sdk-trace-base";

diag.setLogger(new DiagConsoleLogger(), DiagLogLevel.WARN);

const exporter = new OTLPTraceExporter();
const provider = new BasicTracerProvider({
  resource: detectResources({ detectors: [envDetector] }),
  spanProcessors: [new BatchSpanProcessor(exporter)],
});
const tracer = provider.getTracer("apex-otlp-node-test");

const now = Date.now();
for (const spec of JSON.parse(process.env.APEX_SPANS)) {
  const start = now - (spec.ageMs ?? 60_000);
  const span = tracer.startSpan(spec.name, {
    kind: SpanKind.CLIENT,
    attributes: spec.attributes,
    startTime: start,
  });
  if (spec.error) {
    span.setStatus({ code: SpanStatusCode.ERROR, message: spec.error });
  }
  span.end(start + (spec.durationMs ?? 700));
  const { traceId, spanId } = span.spanContext();
  process.stdout.write(JSON.stringify({ traceId, spanId }) + "\n");
}

// The export's outcome: forceFlush resolves once the exporter has an answer; a failed export
// is reported by the SDK through diag (stderr) and by the missing records.
await provider.forceFlush();
await provider.shutdown();
