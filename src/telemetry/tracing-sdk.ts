// Installs the OpenTelemetry SDK: loaded (import()) only when tracing is
// configured, so a process without it never reads these modules.
import { context, propagation, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BasicTracerProvider, BatchSpanProcessor, type SpanProcessor } from "@opentelemetry/sdk-trace-base";
import { setTracingEnabled } from "./tracing.js";

export interface InstalledTracing {
  /** Sends what is buffered and uninstalls the provider. */
  shutdown(): Promise<void>;
}

/** The global tracer provider, context manager (AsyncLocalStorage) and W3C propagator, around `processor`. */
export function installTracing(processor: SpanProcessor, serviceName: string): InstalledTracing {
  const provider = new BasicTracerProvider({ resource: resourceFromAttributes({ "service.name": serviceName }), spanProcessors: [processor] });
  const contextManager = new AsyncLocalStorageContextManager().enable();
  trace.setGlobalTracerProvider(provider);
  context.setGlobalContextManager(contextManager);
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  setTracingEnabled(true);
  return {
    async shutdown() {
      setTracingEnabled(false);
      await provider.shutdown();
      trace.disable();
      context.disable();
      propagation.disable();
    },
  };
}

/** Spans exported over OTLP/HTTP (protobuf or JSON per OTEL_EXPORTER_OTLP_* variables, read by the exporter). */
export async function installOtlpTracing(serviceName: string): Promise<InstalledTracing> {
  const { OTLPTraceExporter } = await import("@opentelemetry/exporter-trace-otlp-http");
  return installTracing(new BatchSpanProcessor(new OTLPTraceExporter()), serviceName);
}
