// Prometheus metrics: one registry per role (api, worker, runtime), so each
// /metrics shows what that part of the system does, whether the roles run in
// one process (`start`) or apart. A process's registries also have its
// default series (CPU, memory, event loop lag, GC).
import { collectDefaultMetrics, Registry } from "prom-client";

export { Registry } from "prom-client";

/** Latency buckets (seconds) of calls and requests: a millisecond to ten seconds. */
export const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * `processMetrics`: with Node's process_* and nodejs_* series (they watch the
 * event loop and GC for good: for the registries a command serves, not for
 * each role a test starts).
 */
export function createRegistry(o: { processMetrics?: boolean } = {}): Registry {
  const registry = new Registry();
  if (o.processMetrics === true) collectDefaultMetrics({ register: registry });
  return registry;
}

/** What node:http and node:http2 responses both offer. */
export interface MetricsResponse {
  writeHead(status: number, headers: Record<string, string | number>): unknown;
  end(body: string): unknown;
}

/** Answers GET/HEAD /metrics with the registry's series (text exposition format). */
export function serveMetrics(registry: Registry, req: { method?: string | undefined }, res: MetricsResponse): void {
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain" });
    res.end("method not allowed\n");
    return;
  }
  registry.metrics().then(
    (text) => {
      res.writeHead(200, { "content-type": registry.contentType, "content-length": Buffer.byteLength(text), "cache-control": "no-store" });
      res.end(req.method === "HEAD" ? "" : text);
    },
    (err: unknown) => {
      res.writeHead(500, { "content-type": "text/plain" });
      res.end(`cannot collect metrics: ${(err as Error).message}\n`);
    },
  );
}
