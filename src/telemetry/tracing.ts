// OpenTelemetry tracing through the API package only. Until a tracer
// provider is installed (tracing-sdk.ts: OTLP when configured, or a test's
// in-memory exporter) `tracingEnabled()` is false and every caller skips its
// spans outright: tracing off costs a boolean test per call.
//
// Context crosses processes as W3C trace context (traceparent, tracestate):
// API call → outbox row (call_context) → queue message headers → worker
// task → runtime control calls (HTTP headers).
import { context, propagation, ROOT_CONTEXT, SpanStatusCode, trace, type Context, type Span, type TextMapGetter } from "@opentelemetry/api";

export { SpanKind, SpanStatusCode, context as otelContext, trace as otelTrace, type Context, type Span } from "@opentelemetry/api";

let enabled = false;

export function tracingEnabled(): boolean {
  return enabled;
}

/** Set by whoever installs (true) or removes (false) the tracer provider. */
export function setTracingEnabled(on: boolean): void {
  enabled = on;
}

export function tracer() {
  return trace.getTracer("modeldeploy");
}

/** W3C trace context headers: traceparent and, when there is one, tracestate. */
export type TraceCarrier = Record<string, string>;

/** The active span's context as headers, or null (tracing off, or no span). */
export function activeTraceCarrier(): TraceCarrier | null {
  if (!enabled) return null;
  return carrierOf(context.active());
}

export function carrierOf(ctx: Context): TraceCarrier | null {
  const carrier: TraceCarrier = {};
  propagation.inject(ctx, carrier);
  return carrier["traceparent"] === undefined ? null : carrier;
}

/** The remote parent the carrier names (ROOT_CONTEXT when it names none). */
export function contextFrom<C>(carrier: C, getter?: TextMapGetter<C>): Context {
  return getter === undefined ? propagation.extract(ROOT_CONTEXT, carrier) : propagation.extract(ROOT_CONTEXT, carrier, getter);
}

/** Marks a span failed with the error's message. */
export function spanFailed(span: Span, err: unknown): void {
  span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
}
