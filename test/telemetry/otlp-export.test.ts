// With OTEL_EXPORTER_OTLP_ENDPOINT set, `modeldeploy start` sends its spans
// over OTLP/HTTP (JSON, to a stand-in collector here) and still stops cleanly.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DeploymentService } from "../../src/gen/modeldeploy/v1/deployment_service_pb.js";
import { createTestDatabase, NATS_URL, waitFor, type TestDatabase } from "../helpers/services.js";
import { startSystem, type RunningSystem } from "../helpers/system.js";

interface Export {
  path: string;
  contentType: string;
  body: string;
}

let tdb: TestDatabase;
let collector: http.Server;
const exports: Export[] = [];
let sys: RunningSystem | undefined;

beforeAll(async () => {
  tdb = await createTestDatabase({ migrate: false });
  collector = http.createServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => (body += d.toString()));
    req.on("end", () => {
      exports.push({ path: req.url ?? "", contentType: req.headers["content-type"] ?? "", body });
      res.writeHead(200, { "content-type": "application/json" });
      res.end("{}");
    });
  });
  await new Promise<void>((resolve) => collector.listen(0, "127.0.0.1", resolve));
});

afterAll(async () => {
  await sys?.stop();
  await new Promise((resolve) => collector.close(resolve));
  await tdb?.drop();
});

describe("OTLP export", () => {
  it("sends the API's spans to the configured collector", async () => {
    const port = (collector.address() as AddressInfo).port;
    sys = await startSystem({
      databaseUrl: tdb.url,
      natsUrl: NATS_URL,
      env: { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`, OTEL_BSP_SCHEDULE_DELAY: "100", OTEL_SERVICE_NAME: "md-otlp-test" },
    });
    const client = createClient(DeploymentService, createConnectTransport({ baseUrl: sys.httpUrl, httpVersion: "1.1" }));
    await client.listDeployments({}, { headers: { authorization: `Bearer ${sys.apiKey}` } });
    const sent = await waitFor("a span export", () => exports.find((e) => e.body.includes("ListDeployments")));
    expect(sent.path).toBe("/v1/traces");
    expect(sent.contentType).toContain("application/json");
    expect(sent.body).toContain("md-otlp-test");
    expect(await sys.stop()).toBe(0);
    sys = undefined;
  });
});
