// Prometheus metrics: one registry per role (api, worker, runtime), so each
// /metrics shows what that part of the system does, whether the roles run in
// one process (`start`) or apart. The metrics themselves are fast-metrics.ts;
// prom-client renders them, loaded at the first scrape (with Node's process
// series, for the registries a command serves), so an unscraped process never
// carries it.
import type { Registry as PromRegistry } from "prom-client";

/** Latency buckets (seconds) of calls and requests: a millisecond to ten seconds. */
export const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export interface Sample {
  metricName?: string;
  labels: Record<string, string | number>;
  value: number;
}

/** What prom-client's Registry reads from a metric on a scrape. */
export interface MetricSnapshot {
  name: string;
  help: string;
  type: "counter" | "gauge" | "histogram";
  values: Sample[];
  aggregator: "sum";
}

export interface RegisteredMetric {
  readonly name: string;
  get(): Promise<MetricSnapshot>;
}

export class MetricsRegistry {
  private readonly metrics: RegisteredMetric[] = [];
  private prom: Promise<PromRegistry> | undefined;
  private rendered = 0;

  constructor(private readonly processMetrics: boolean) {}

  register(metric: RegisteredMetric): void {
    if (this.metrics.some((m) => m.name === metric.name)) throw new Error(`metric ${metric.name} is registered already`);
    this.metrics.push(metric);
  }

  /** The text exposition of every metric, and its content type. */
  async render(): Promise<{ contentType: string; text: string }> {
    this.prom ??= import("prom-client").then((p) => {
      const r = new p.Registry();
      // From here on: process_cpu_seconds_total and the like count from the process's start, GC and lag from now.
      if (this.processMetrics) p.collectDefaultMetrics({ register: r });
      return r;
    });
    const r = await this.prom;
    for (; this.rendered < this.metrics.length; this.rendered++) r.registerMetric(this.metrics[this.rendered] as never);
    return { contentType: r.contentType, text: await r.metrics() };
  }
}

/** `processMetrics`: with Node's process_* and nodejs_* series (for the registries a command serves). */
export function createRegistry(o: { processMetrics?: boolean } = {}): MetricsRegistry {
  return new MetricsRegistry(o.processMetrics === true);
}

/** What node:http and node:http2 responses both offer. */
export interface MetricsResponse {
  writeHead(status: number, headers: Record<string, string | number>): unknown;
  end(body: string): unknown;
}

/** Answers GET/HEAD /metrics with the registry's series (text exposition format). */
export function serveMetrics(registry: MetricsRegistry, req: { method?: string | undefined }, res: MetricsResponse): void {
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain" });
    res.end("method not allowed\n");
    return;
  }
  registry.render().then(
    ({ contentType, text }) => {
      res.writeHead(200, { "content-type": contentType, "content-length": Buffer.byteLength(text), "cache-control": "no-store" });
      res.end(req.method === "HEAD" ? "" : text);
    },
    (err: unknown) => {
      res.writeHead(500, { "content-type": "text/plain" });
      res.end(`cannot collect metrics: ${(err as Error).message}\n`);
    },
  );
}
