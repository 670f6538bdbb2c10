// A small HTTP server for a process that has no other (the worker): GET
// /metrics and GET /healthz, nothing else.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { serveMetrics, type MetricsRegistry } from "./metrics.js";

export interface MetricsServer {
  readonly url: string;
  close(): Promise<void>;
}

export async function startMetricsServer(registry: MetricsRegistry, host: string, port: number): Promise<MetricsServer> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? "/").split("?", 1)[0];
    if (path === "/metrics") return serveMetrics(registry, req, res);
    if (path === "/healthz" && (req.method === "GET" || req.method === "HEAD")) {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(req.method === "HEAD" ? "" : '{"status":"ok"}');
      return;
    }
    res.writeHead(404, { "content-type": "text/plain" });
    res.end("not found: this port serves /metrics and /healthz\n");
  });
  // A scraper's kept-alive connection must not hold up a shutdown.
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const bound = (server.address() as AddressInfo).port;
  return {
    url: `http://${host.includes(":") ? `[${host}]` : host}:${bound}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
