// OpenTelemetry tracing. Until a tracer provider is installed (tracing-sdk.ts:
// OTLP when configured, or a test's in-memory exporter) `tracingEnabled()` is
// false, every caller skips its spans outright (tracing off costs a test per
// call) and no OpenTelemetry module is even loaded.
//
// Context crosses processes as W3C trace context (traceparent, tracestate):
// API call → outbox row (call_context) → queue message headers → worker
// task → runtime control calls (HTTP headers).
import type * as OtelApi from "@opentelemetry/api";
import type { Context, Span, SpanKind as OtelSpanKind, SpanStatusCode as OtelSpanStatusCode, TextMapGetter } from "@opentelemetry/api";

export type { Context, Span } from "@opentelemetry/api";

/** The API package, once a provider is installed; not even loaded before (idle memory). */
let api: typeof OtelApi | undefined;

export function tracingEnabled(): boolean {
  return api !== undefined;
}

/** Set by whoever installs (the API package) or removes (undefined) the tracer provider. */
export function setTracingApi(loaded: typeof OtelApi | undefined): void {
  api = loaded;
}

// The API's enums, by value (the spec fixes them), so that callers need not load the package.
export const SpanKind = {
  SERVER: 1 as OtelSpanKind.SERVER,
  CLIENT: 2 as OtelSpanKind.CLIENT,
  PRODUCER: 3 as OtelSpanKind.PRODUCER,
  CONSUMER: 4 as OtelSpanKind.CONSUMER,
};
export const SpanStatusCode = { ERROR: 2 as OtelSpanStatusCode.ERROR };

// Callable only while tracingEnabled().
export const otelContext = {
  active: (): Context => api!.context.active(),
  with: <T>(ctx: Context, f: () => T): T => api!.context.with(ctx, f),
};
export const otelTrace = {
  setSpan: (ctx: Context, span: Span): Context => api!.trace.setSpan(ctx, span),
  getSpan: (ctx: Context): Span | undefined => api!.trace.getSpan(ctx),
};

export function tracer() {
  return api!.trace.getTracer("modeldeploy");
}

/** W3C trace context headers: traceparent and, when there is one, tracestate. */
export type TraceCarrier = Record<string, string>;

/** The active span's context as headers, or null (tracing off, or no span). */
export function activeTraceCarrier(): TraceCarrier | null {
  if (api === undefined) return null;
  return carrierOf(api.context.active());
}

export function carrierOf(ctx: Context): TraceCarrier | null {
  const carrier: TraceCarrier = {};
  api!.propagation.inject(ctx, carrier);
  return carrier["traceparent"] === undefined ? null : carrier;
}

/** The remote parent the carrier names (ROOT_CONTEXT when it names none). */
export function contextFrom<C>(carrier: C, getter?: TextMapGetter<C>): Context {
  const { propagation, ROOT_CONTEXT } = api!;
  return getter === undefined ? propagation.extract(ROOT_CONTEXT, carrier) : propagation.extract(ROOT_CONTEXT, carrier, getter);
}

/** Marks a span failed with the error's message. */
export function spanFailed(span: Span, err: unknown): void {
  span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
}
