// The wire probes against the real all-in-one process (the API in its own
// process, on real Postgres and NATS): while a steady client in its own
// process keeps calling GetDeployment on both ports, garbage, truncated and
// oversized frames, huge headers, deep and large JSON, floods of reset
// streams and many idle connections must not disturb it. Low limits
// (connections, idle, resets) so that each cap is reached, and the process
// must still be running at the end.
import { create, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DeploymentService, GetDeploymentRequestSchema, WatchDeploymentRequestSchema } from "../../src/gen/modeldeploy/v1/deployment_service_pb.js";
import { createTestDatabase, NATS_URL, type TestDatabase } from "../helpers/services.js";
import { startSteadyClient, type SteadyClient } from "../helpers/steady-client.js";
import { startSystem, type RunningSystem } from "../helpers/system.js";
import {
  deepJson,
  freshGrpcHealthCheck,
  grpcFrame,
  holdConnections,
  httpRequest,
  hugeHeadersH2,
  hugeHeadersHttp1,
  largeJson,
  malformedGrpcMessage,
  malformedProto,
  oversizedGrpcFrame,
  sendGarbage,
  sendJson,
  streamFlood,
  truncatedGrpcFrame,
} from "../helpers/wire-probes.js";

const getPath = "/modeldeploy.v1.DeploymentService/GetDeployment";
const watchPath = "/modeldeploy.v1.DeploymentService/WatchDeployment";
const maxConnections = 64;

let tdb: TestDatabase;
let sys: RunningSystem;
let steady: SteadyClient;
let deployment: string;
let auth: Record<string, string>;

beforeAll(async () => {
  tdb = await createTestDatabase({ migrate: false });
  sys = await startSystem({
    databaseUrl: tdb.url,
    natsUrl: NATS_URL,
    env: {
      MODELDEPLOY_MAX_CONNECTIONS: String(maxConnections),
      MODELDEPLOY_IDLE_CONNECTION_MS: "3000",
      MODELDEPLOY_KEEPALIVE_TIME_MS: "1000",
      MODELDEPLOY_KEEPALIVE_TIMEOUT_MS: "5000",
      MODELDEPLOY_MAX_STREAM_RESETS: "200",
    },
  });
  auth = { authorization: `Bearer ${sys.apiKey}` };
  const client = createClient(DeploymentService, createConnectTransport({ baseUrl: sys.httpUrl, httpVersion: "1.1" }));
  // Its weights do not exist (the deployment fails): the steady client only reads it.
  const created = await client.createDeployment({ model: { name: "acme/steady", uri: "file:///models/steady/model.onnx" } }, { headers: auth });
  deployment = created.deployment?.name ?? "";
  steady = await startSteadyClient({ grpcAddress: sys.grpcAddress, httpUrl: sys.httpUrl, apiKey: sys.apiKey, deployment });
});

afterAll(async () => {
  const report = await steady?.stop().catch(() => undefined);
  const output = sys?.output() ?? "";
  const code = await sys?.stop();
  await tdb?.drop();
  // Nothing the probes did took the process down, and it shut down cleanly.
  expect(output).not.toContain("unhandled");
  expect(code).toBe(0);
  expect(report?.grpc?.failed, JSON.stringify(report?.grpc?.errors)).toBe(0);
  expect(report?.http?.failed, JSON.stringify(report?.http?.errors)).toBe(0);
});

/** The steady client answered more calls on both ports, and none failed. */
async function stillServed(): Promise<void> {
  const report = await steady.progressed(5);
  expect(report.grpc?.failed, JSON.stringify(report.grpc?.errors)).toBe(0);
  expect(report.http?.failed, JSON.stringify(report.http?.errors)).toBe(0);
}

const getRequest = () => Buffer.from(toBinary(GetDeploymentRequestSchema, create(GetDeploymentRequestSchema, { name: deployment })));
const watchRequest = () => Buffer.from(toBinary(WatchDeploymentRequestSchema, create(WatchDeploymentRequestSchema, { name: deployment })));

describe("wire probes against the API process", () => {
  it("garbage bytes on both ports", async () => {
    for (const target of [sys.httpUrl, sys.grpcAddress]) {
      const raw = await sendGarbage(target, { connections: 20 });
      expect(raw.closedByServer, target).toBe(20);
      const afterPreface = await sendGarbage(target, { connections: 5, afterPreface: true, timeoutMs: 60_000 });
      expect(afterPreface.goawayCodes, target).toContain(6);
      expect(afterPreface.closedByServer, target).toBe(5);
    }
    await stillServed();
  });

  it("truncated, oversized and malformed gRPC frames on both ports", async () => {
    for (const target of [sys.httpUrl, sys.grpcAddress]) {
      expect((await truncatedGrpcFrame(target, getPath)).grpcStatus, target).not.toBe(grpc.status.OK);
      const oversized = await oversizedGrpcFrame(target, getPath);
      expect(oversized.grpcStatus, target).toBe(grpc.status.RESOURCE_EXHAUSTED);
      const malformed = await malformedGrpcMessage(target, getPath);
      expect(malformed.grpcStatus, target).toBe(grpc.status.INVALID_ARGUMENT);
      expect(malformed.grpcMessage, target).toBe("malformed modeldeploy.v1.GetDeploymentRequest message");
    }
    const connectProto = await httpRequest(sys.httpUrl, { path: getPath, headers: { "content-type": "application/proto", ...auth }, body: malformedProto });
    expect(connectProto.status).toBe(400);
    expect(connectProto.code).toBe("invalid_argument");
    await stillServed();
  });

  it("huge headers on both ports", async () => {
    expect((await hugeHeadersHttp1(sys.httpUrl, getPath, 20_000, { "content-type": "application/json" })).status).toBe(429);
    expect((await hugeHeadersHttp1(sys.httpUrl, getPath, 200_000)).status).toBe(431);
    for (const target of [sys.httpUrl, sys.grpcAddress]) {
      const soft = await hugeHeadersH2(target, getPath, { bytes: 20_000, body: grpcFrame(getRequest()) });
      expect(soft.grpcStatus, target).toBe(grpc.status.RESOURCE_EXHAUSTED);
      expect(soft.grpcMessage, target).toMatch(/larger than the limit of 16384 bytes/);
      const hard = await hugeHeadersH2(target, getPath, { bytes: 100_000, body: grpcFrame(getRequest()), afterSettings: true });
      expect(hard.rstCode, target).toBe(11);
    }
    await stillServed();
  });

  it("deep and large JSON: ten 3.8 MB nested arrays at once, deep, gzip bombs", async () => {
    const issueBody = `[${"[".repeat(1_900_000)}${"]".repeat(1_900_000)}]`;
    const ten = await Promise.all(Array.from({ length: 10 }, () => sendJson(sys.httpUrl, getPath, issueBody, { headers: auth })));
    for (const out of ten) {
      expect(out.code).toBe("resource_exhausted");
      expect(out.message).toMatch(/JSON request message of \d+ bytes is larger than the limit of 262144 bytes/);
    }
    for (const via of ["connect", "connect-get", "grpc-web", "connect-stream"] as const) {
      const out = await sendJson(sys.httpUrl, via === "connect-stream" ? watchPath : getPath, deepJson(10_000 >> (via === "connect-get" ? 3 : 0)), {
        via,
        headers: auth,
      });
      expect(out.code, via).toBe("invalid_argument");
      expect(out.message, via).toBe("JSON request nests deeper than the limit of 64 levels");
    }
    expect((await sendJson(sys.httpUrl, getPath, largeJson(1024 * 1024), { headers: auth })).code).toBe("resource_exhausted");
    expect((await sendJson(sys.httpUrl, getPath, "[".repeat(8 * 1024 * 1024), { gzip: true, headers: auth })).code).toBe("resource_exhausted");
    await stillServed();
  });

  it("thousands of streams opened and reset at once on both ports", async () => {
    for (const [target, headers, body] of [
      [sys.grpcAddress, { "content-type": "application/grpc", ...auth }, grpcFrame(getRequest())],
      [sys.httpUrl, { "content-type": "application/proto", ...auth }, getRequest()],
      [sys.httpUrl, { "content-type": "application/grpc", ...auth }, grpcFrame(getRequest())],
    ] as const) {
      const flood = await streamFlood(target, { streams: 3000, path: getPath, headers, body });
      expect(flood.requested).toBe(3000);
      // The Connect port counts every stream reset before its answer; grpc-js
      // only lets us count calls reset while their handler ran (these are
      // quick), so there the budget may not be reached.
      if (target === sys.httpUrl) expect(flood.closedByServer, headers["content-type"]).toBe(true);
      await stillServed();
    }
  });

  it("connections past the cap get RESOURCE_EXHAUSTED 'too many connections'; idle and silent ones are closed", async () => {
    const watch = () => ({
      path: watchPath,
      headers: { "content-type": "application/grpc", te: "trailers", ...auth },
      body: grpcFrame(watchRequest()),
    });
    // Each held connection keeps a watch open, so the idle limit leaves it alone.
    const busy = await Promise.all([sys.grpcAddress, sys.httpUrl].map((t) => holdConnections(t, { count: maxConnections - 1, mode: "h2", stream: watch() })));
    try {
      const refused = await freshGrpcHealthCheck(sys.grpcAddress);
      expect(refused.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
      expect(refused.details).toBe(`too many connections (limit ${maxConnections}), retry later`);
      const h1 = await httpRequest(sys.httpUrl, { path: "/healthz" });
      expect(h1.status).toBe(429);
      expect(h1.message).toBe(`too many connections (limit ${maxConnections}), retry later`);
      await stillServed();
    } finally {
      for (const h of busy) h.release();
    }
    // Idle and silent connections go at the idle limit (3 s), on both ports;
    // past the cap they are refused and closed at once.
    const idle = await Promise.all(
      [sys.grpcAddress, sys.httpUrl].flatMap((t) => [holdConnections(t, { count: 100, mode: "silent" }), holdConnections(t, { count: 40, mode: "h2" })]),
    );
    try {
      await Promise.all(idle.map((h) => h.waitClosed(h.opened, 60_000)));
      await stillServed();
    } finally {
      for (const h of idle) h.release();
    }
    expect((await freshGrpcHealthCheck(sys.grpcAddress)).code).toBe(grpc.status.OK);
    expect((await httpRequest(sys.httpUrl, { path: "/healthz" })).status).toBe(200);
  });
});
