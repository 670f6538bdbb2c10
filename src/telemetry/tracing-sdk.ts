// Installs the OpenTelemetry SDK: loaded (import()) only when tracing is
// configured, so a process without it never reads these modules.
import * as api from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BasicTracerProvider, BatchSpanProcessor, type SpanProcessor } from "@opentelemetry/sdk-trace-base";
import { setTracingApi } from "./tracing.js";

export interface InstalledTracing {
  /** Sends what is buffered and uninstalls the provider. */
  shutdown(): Promise<void>;
}

/** The global tracer provider, context manager (AsyncLocalStorage) and W3C propagator, around `processor`. */
export function installTracing(processor: SpanProcessor, serviceName: string): InstalledTracing {
  const provider = new BasicTracerProvider({ resource: resourceFromAttributes({ "service.name": serviceName }), spanProcessors: [processor] });
  const contextManager = new AsyncLocalStorageContextManager().enable();
  api.trace.setGlobalTracerProvider(provider);
  api.context.setGlobalContextManager(contextManager);
  api.propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  setTracingApi(api);
  return {
    async shutdown() {
      setTracingApi(undefined);
      await provider.shutdown();
      api.trace.disable();
      api.context.disable();
      api.propagation.disable();
    },
  };
}

/** Spans exported over OTLP/HTTP (protobuf or JSON per OTEL_EXPORTER_OTLP_* variables, read by the exporter). */
export async function installOtlpTracing(serviceName: string): Promise<InstalledTracing> {
  const { OTLPTraceExporter } = await import("@opentelemetry/exporter-trace-otlp-http");
  return installTracing(new BatchSpanProcessor(new OTLPTraceExporter()), serviceName);
}
