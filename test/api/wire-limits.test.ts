// The API's two ports against hostile and careless clients: request bodies
// refused before anything parses them (size, JSON depth, malformed
// protobuf), header limits, the connection cap, idle and keepalive limits,
// stream caps and floods of reset streams — each while a well-behaved client
// in its own process keeps calling and must be served throughout. The
// servers run in this process with a small in-test implementation; the same
// probes against the real API process are in test/e2e/wire-probes.test.ts.
import * as http2 from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { compressionGzip, createConnectTransport, createGrpcWebTransport, Http2SessionManager } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createConnectServer, type ConnectServer } from "../../src/api/connect-server.js";
import { createGrpcServer, grpcServiceDefinition, type GrpcServer } from "../../src/api/grpc-server.js";
import type { WireLimits } from "../../src/api/wire-limits.js";
import { DeploymentService, GetDeploymentRequestSchema } from "../../src/gen/modeldeploy/v1/deployment_service_pb.js";
import { EventType } from "../../src/gen/modeldeploy/v1/resources_pb.js";
import { silentLogger } from "../../src/log.js";
import { waitFor } from "../helpers/services.js";
import { startSteadyClient, type SteadyClient } from "../helpers/steady-client.js";
import {
  deepJson,
  freshGrpcHealthCheck,
  grpcFrame,
  h2Request,
  holdConnections,
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
  httpRequest,
  httpBase,
} from "../helpers/wire-probes.js";

// ---------------------------------------------------------------------------
// In-test implementation: counts the calls that started and the ones whose
// ctx.signal aborted, per name prefix.

const started = new Map<string, number>();
const aborted = new Map<string, number>();
const bump = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);
const count = (m: Map<string, number>, k: string) => m.get(k) ?? 0;

function untilAborted(ctx: HandlerContext, tag: string): Promise<void> {
  bump(started, tag);
  return new Promise((resolve) => {
    const done = () => {
      bump(aborted, tag);
      resolve();
    };
    if (ctx.signal.aborted) done();
    else ctx.signal.addEventListener("abort", done, { once: true });
  });
}

const impl: Partial<ServiceImpl<typeof DeploymentService>> = {
  async getDeployment(req, ctx) {
    if (req.name.startsWith("hold-")) {
      await untilAborted(ctx, req.name);
      throw new ConnectError("aborted", Code.Canceled);
    }
    return { name: req.name };
  },
  async *watchDeployment(req, ctx) {
    yield { sequence: 1n, type: EventType.SNAPSHOT, deployment: { name: req.name } };
    if (req.name.startsWith("hold-")) await untilAborted(ctx, req.name);
  },
};
const services = [{ service: DeploymentService, impl }];

const getPath = "/modeldeploy.v1.DeploymentService/GetDeployment";
const watchPath = "/modeldeploy.v1.DeploymentService/WatchDeployment";
const getRequest = (name: string) => Buffer.from(toBinary(GetDeploymentRequestSchema, create(GetDeploymentRequestSchema, { name })));

interface Ports {
  grpc: GrpcServer;
  connect: ConnectServer;
  grpcAddress: string;
  httpUrl: string;
  steady: SteadyClient;
  stop(): Promise<void>;
}

/** Both servers with these limits, and a steady client calling GetDeployment on both. */
async function startPorts(limits: Partial<WireLimits> = {}, extra: { maxJsonBytes?: number } = {}): Promise<Ports> {
  const grpcServer = createGrpcServer({ services, logger: silentLogger, limits });
  const connect = createConnectServer({ services, logger: silentLogger, limits, ...extra });
  const grpcAddress = `127.0.0.1:${await grpcServer.listen("127.0.0.1", 0)}`;
  const httpUrl = `http://127.0.0.1:${await connect.listen("127.0.0.1", 0)}`;
  let steady: SteadyClient | undefined;
  const stop = async () => {
    await steady?.stop().catch(() => undefined);
    await Promise.all([grpcServer.shutdown(2000), connect.close(2000)]);
  };
  try {
    steady = await startSteadyClient({ grpcAddress, httpUrl, apiKey: "unused", deployment: "steady" });
  } catch (e) {
    await stop();
    throw e;
  }
  return { grpc: grpcServer, connect, grpcAddress, httpUrl, steady, stop };
}

/** The steady client answered more calls on both ports, and none failed. */
async function stillServed(steady: SteadyClient): Promise<void> {
  const report = await steady.progressed(5);
  expect(report.grpc?.failed, JSON.stringify(report.grpc?.errors)).toBe(0);
  expect(report.http?.failed, JSON.stringify(report.http?.errors)).toBe(0);
}

// ---------------------------------------------------------------------------

describe("request bodies are checked before they are parsed", () => {
  let p: Ports;
  beforeAll(async () => {
    p = await startPorts();
  });
  afterAll(async () => {
    await p?.stop();
  });

  it("refuses JSON nested deeper than 64 levels with INVALID_ARGUMENT and the limit, over every Connect path", async () => {
    const deep = deepJson(100);
    for (const via of ["connect", "connect-get", "grpc-web"] as const) {
      const out = await sendJson(p.httpUrl, getPath, deep, { via, headers: { "x-request-id": `deep-${via}` } });
      expect(out.code, via).toBe("invalid_argument");
      expect(out.message, via).toBe("JSON request nests deeper than the limit of 64 levels");
      expect(out.requestId, via).toBe(`deep-${via}`);
    }
    const stream = await sendJson(p.httpUrl, watchPath, deep, { via: "connect-stream" });
    expect(stream.code).toBe("invalid_argument");
    expect(stream.message).toMatch(/nests deeper than the limit of 64/);
    // 64 levels pass the guard (and fail later: "name" is a string).
    const ok = await sendJson(p.httpUrl, getPath, deepJson(63));
    expect(ok.code).toBe("invalid_argument");
    expect(ok.message).not.toMatch(/nests deeper/);
    await stillServed(p.steady);
  });

  it("refuses a deep body after its first chunks, without waiting for the rest", async () => {
    // 1 MB of "[" is above the JSON limit too: no content-length, so only the scan can stop it early.
    const http = await import("node:http");
    const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request(`${p.httpUrl}${getPath}`, { method: "POST", headers: { "content-type": "application/json" }, agent: false });
      req.on("response", (r) => {
        let body = "";
        r.on("data", (d: Buffer) => (body += d.toString()));
        r.on("end", () => resolve({ status: r.statusCode ?? 0, body }));
      });
      req.on("error", reject);
      req.write(`{"name":${"[".repeat(1000)}`); // and never ends
    });
    expect(res.status).toBe(400);
    expect(res.body).toContain("nests deeper than the limit of 64 levels");
  });

  it("refuses large JSON with RESOURCE_EXHAUSTED and the limit, compressed or not", async () => {
    const big = largeJson(300 * 1024);
    const post = await sendJson(p.httpUrl, getPath, big);
    expect(post.status).toBe(429);
    expect(post.code).toBe("resource_exhausted");
    expect(post.message).toMatch(/^JSON request message of \d+ bytes is larger than the limit of 262144 bytes$/);
    expect(post.requestId).toBeTruthy();
    const web = await sendJson(p.httpUrl, getPath, big, { via: "grpc-web" });
    expect(web.code).toBe("resource_exhausted");
    // A gzip bomb: 4 MB of brackets in a few KB.
    const bomb = "[".repeat(4 * 1024 * 1024);
    for (const via of ["connect", "grpc-web", "connect-get"] as const) {
      const out = await sendJson(p.httpUrl, getPath, bomb, { via, gzip: true });
      expect(out.code, via).toBe("resource_exhausted");
      expect(out.message, via).toMatch(/larger than the limit of 262144 bytes/);
    }
    // Deep but small, compressed: found after decompression.
    const deepGz = await sendJson(p.httpUrl, getPath, deepJson(200), { gzip: true });
    expect(deepGz.message).toMatch(/nests deeper/);
    await stillServed(p.steady);
  });

  it("still serves compressed requests and JSON within the limits", async () => {
    const sm = new Http2SessionManager(p.httpUrl);
    try {
      for (const transport of [
        createConnectTransport({ baseUrl: p.httpUrl, httpVersion: "1.1", useBinaryFormat: false, sendCompression: compressionGzip, compressMinBytes: 0 }),
        createConnectTransport({ baseUrl: p.httpUrl, httpVersion: "2", sessionManager: sm, sendCompression: compressionGzip, compressMinBytes: 0 }),
        createGrpcWebTransport({ baseUrl: p.httpUrl, httpVersion: "1.1", sendCompression: compressionGzip, compressMinBytes: 0 }),
      ]) {
        const client = createClient(DeploymentService, transport);
        expect((await client.getDeployment({ name: "gz" })).name).toBe("gz");
        const events = [];
        for await (const ev of client.watchDeployment({ name: "gzw" })) events.push(ev.sequence);
        expect(events).toEqual([1n]);
      }
    } finally {
      sm.abort();
    }
    const within = await sendJson(p.httpUrl, getPath, largeJson(200 * 1024));
    expect(within.status).toBe(200);
  });

  it("answers malformed protobuf with INVALID_ARGUMENT on both ports, in every protocol", async () => {
    const expected = "malformed modeldeploy.v1.GetDeploymentRequest message";
    const connectProto = await httpRequest(p.httpUrl, { path: getPath, headers: { "content-type": "application/proto" }, body: malformedProto });
    expect(connectProto.status).toBe(400);
    expect(connectProto.code).toBe("invalid_argument");
    expect(connectProto.message).toBe(expected);
    expect(connectProto.requestId).toBeTruthy();
    const grpcWeb = await httpRequest(p.httpUrl, {
      path: getPath,
      headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" },
      body: grpcFrame(malformedProto),
    });
    expect(grpcWeb.code).toBe("invalid_argument");
    expect(grpcWeb.message).toBe(expected);
    for (const target of [p.httpUrl, p.grpcAddress]) {
      const out = await malformedGrpcMessage(target, getPath);
      expect(out.grpcStatus, target).toBe(grpc.status.INVALID_ARGUMENT);
      expect(out.grpcMessage, target).toBe(expected);
      const stream = await malformedGrpcMessage(target, watchPath);
      expect(stream.grpcStatus, target).toBe(grpc.status.INVALID_ARGUMENT);
    }
    await stillServed(p.steady);
  });

  it("answers truncated and oversized gRPC frames on both ports", async () => {
    for (const target of [p.httpUrl, p.grpcAddress]) {
      const truncated = await truncatedGrpcFrame(target, getPath);
      expect(truncated.grpcStatus, target).not.toBe(grpc.status.OK);
      expect(truncated.grpcStatus, target).not.toBeUndefined();
      // Refused from its length prefix: the server does not wait for 2 GiB.
      const oversized = await oversizedGrpcFrame(target, getPath);
      expect(oversized.timedOut, target).toBe(false);
      expect(oversized.grpcStatus, target).toBe(grpc.status.RESOURCE_EXHAUSTED);
      // The Connect port resets the rest of the request; grpc-js leaves the
      // stream half open until the client ends it (one of its stream slots).
      if (target === p.httpUrl) expect(oversized.leftOpen).toBe(false);
    }
    await stillServed(p.steady);
  });

  it("survives garbage bytes on both ports", async () => {
    for (const target of [p.httpUrl, p.grpcAddress]) {
      const raw = await sendGarbage(target, { connections: 20 });
      expect(raw.closedByServer, target).toBe(20);
      // After a valid preface, an invalid frame: a GOAWAY at once (the connection
      // itself goes at the keepalive or idle limit, checked below).
      const afterPreface = await sendGarbage(target, { connections: 5, afterPreface: true, timeoutMs: 1000 });
      expect(afterPreface.goawayCodes, target).toContain(6); // FRAME_SIZE_ERROR
    }
    await stillServed(p.steady);
  });
});

describe("header limits", () => {
  let p: Ports;
  beforeAll(async () => {
    p = await startPorts({ maxHeaderBytes: 4096 });
  });
  afterAll(async () => {
    await p?.stop();
  });

  it("answers headers above the limit with RESOURCE_EXHAUSTED and the limit, and far above it at the HTTP layer", async () => {
    const h1 = await hugeHeadersHttp1(p.httpUrl, getPath, 6000, { "content-type": "application/json", "x-request-id": "big-headers" });
    expect(h1.status).toBe(429);
    expect(h1.code).toBe("resource_exhausted");
    expect(h1.message).toMatch(/^request headers of \d+ bytes are larger than the limit of 4096 bytes$/);
    expect(h1.requestId).toBe("big-headers");
    const h1Huge = await hugeHeadersHttp1(p.httpUrl, getPath, 40_000);
    expect(h1Huge.status).toBe(431);

    for (const target of [p.httpUrl, p.grpcAddress]) {
      const soft = await hugeHeadersH2(target, getPath, { bytes: 6000, body: grpcFrame(getRequest("h")) });
      expect(soft.grpcStatus, target).toBe(grpc.status.RESOURCE_EXHAUSTED);
      expect(soft.grpcMessage, target).toMatch(/larger than the limit of 4096 bytes/);
      // Once the client has our SETTINGS, the HTTP/2 layer resets such a stream itself.
      const hard = await hugeHeadersH2(target, getPath, { bytes: 40_000, body: grpcFrame(getRequest("h")), afterSettings: true });
      expect(hard.rstCode, target).toBe(11); // ENHANCE_YOUR_CALM
    }
    // A grpc-js client with too much metadata.
    const Client = grpc.makeGenericClientConstructor(grpcServiceDefinition(DeploymentService), "DeploymentService");
    const client = new Client(p.grpcAddress, grpc.credentials.createInsecure()) as unknown as Record<
      string,
      (req: unknown, md: grpc.Metadata, cb: (e: grpc.ServiceError | null) => void) => void
    > &
      grpc.Client;
    try {
      const md = new grpc.Metadata();
      md.set("x-big", "b".repeat(6000));
      const err = await new Promise<grpc.ServiceError | null>((resolve) => client["getDeployment"]!({ name: "x" }, md, resolve));
      expect(err?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
      expect(err?.details).toMatch(/request headers of \d+ bytes are larger than the limit of 4096 bytes/);
      expect(err?.metadata.get("x-request-id")).toHaveLength(1);
    } finally {
      client.close();
    }
    await stillServed(p.steady);
  });
});

describe("connection cap", () => {
  let p: Ports;
  beforeAll(async () => {
    p = await startPorts({ maxConnections: 8 });
  });
  afterAll(async () => {
    await p?.stop();
  });

  it("answers connections past the cap with RESOURCE_EXHAUSTED 'too many connections', and serves again once they go", async () => {
    // The steady client holds one connection per port; 7 more fill each port.
    const held = await Promise.all([holdConnections(p.grpcAddress, { count: 7, mode: "h2" }), holdConnections(p.httpUrl, { count: 7, mode: "h2" })]);
    try {
      const refused = await freshGrpcHealthCheck(p.grpcAddress);
      expect(refused.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
      expect(refused.details).toBe("too many connections (limit 8), retry later");
      const h1 = await httpRequest(p.httpUrl, { path: getPath, headers: { "content-type": "application/json" }, body: "{}" });
      expect(h1.status).toBe(429);
      expect(h1.code).toBe("resource_exhausted");
      expect(h1.message).toBe("too many connections (limit 8), retry later");
      const h2 = await h2Request(p.httpUrl, {
        path: getPath,
        headers: { "content-type": "application/grpc", te: "trailers" },
        body: grpcFrame(getRequest("x")),
      });
      expect(h2.grpcStatus).toBe(grpc.status.RESOURCE_EXHAUSTED);
      // A flood of connections past the cap: each is answered or dropped, none is kept.
      const flood = await Promise.all([sendGarbage(p.grpcAddress, { connections: 300, bytes: 16 }), sendGarbage(p.httpUrl, { connections: 300, bytes: 16 })]);
      for (const f of flood) expect(f.closedByServer).toBe(300);
      await stillServed(p.steady);
    } finally {
      for (const h of held) h.release();
    }
    await waitFor("a fresh connection served again", async () => (await freshGrpcHealthCheck(p.grpcAddress)).code === grpc.status.OK);
    await waitFor("a fresh HTTP connection served again", async () => (await httpRequest(p.httpUrl, { path: "/healthz" })).status === 200);
    await stillServed(p.steady);
  });
});

describe("idle limit", () => {
  let p: Ports;
  beforeAll(async () => {
    p = await startPorts({ idleConnectionMs: 500 });
  });
  afterAll(async () => {
    await p?.stop();
  });

  it("closes idle and silent connections on both ports, not those with a call open", async () => {
    // A watch that stays open on each port: its connection is never idle.
    const sm = new Http2SessionManager(p.httpUrl);
    const watchClient = createClient(DeploymentService, createConnectTransport({ baseUrl: p.httpUrl, httpVersion: "2", sessionManager: sm }));
    const watchAbort = new AbortController();
    const watchEvents: bigint[] = [];
    const watchDone = (async () => {
      try {
        for await (const ev of watchClient.watchDeployment({ name: "hold-idle-watch" }, { signal: watchAbort.signal })) watchEvents.push(ev.sequence);
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    await waitFor("the watch is open", () => count(started, "hold-idle-watch") === 1);
    const held = await Promise.all(
      [p.grpcAddress, p.httpUrl].flatMap((t) => [holdConnections(t, { count: 20, mode: "h2" }), holdConnections(t, { count: 20, mode: "silent" })]),
    );
    try {
      await Promise.all(held.map((h) => h.waitClosed(20, 60_000)));
      // Closed with a GOAWAY, as HTTP/2 asks, on both ports.
      expect(held[0]!.goaways()).toEqual(["0"]);
      expect(held[2]!.goaways()).toEqual(["0"]);
      // Still open and not cancelled: the watch's connection had a call open all along.
      expect(count(aborted, "hold-idle-watch")).toBe(0);
      await stillServed(p.steady);
    } finally {
      for (const h of held) h.release();
      watchAbort.abort();
      sm.abort();
    }
    expect(await watchDone).toBeInstanceOf(ConnectError);
    expect(watchEvents).toEqual([1n]);
  });
});

describe("keepalive", () => {
  let p: Ports;
  beforeAll(async () => {
    // Answering within 3 s, even on a busy machine, counts as answering.
    p = await startPorts({ keepaliveTimeMs: 200, keepaliveTimeoutMs: 3000 });
  });
  afterAll(async () => {
    await p?.stop();
  });

  it("closes connections that stop answering pings (and broken ones), keeps those that answer", async () => {
    const answering = await Promise.all([p.grpcAddress, p.httpUrl].map((t) => holdConnections(t, { count: 10, mode: "h2" })));
    const silent = await Promise.all([p.grpcAddress, p.httpUrl].map((t) => holdConnections(t, { count: 10, mode: "h2-unresponsive" })));
    try {
      await Promise.all(silent.map((h) => h.waitClosed(10, 60_000)));
      // A connection that sent a bad frame is pinged too, and goes.
      for (const target of [p.grpcAddress, p.httpUrl]) {
        const bad = await sendGarbage(target, { connections: 5, afterPreface: true, timeoutMs: 60_000 });
        expect(bad.closedByServer, target).toBe(5);
      }
      // Pinged just as often, and answering: still open.
      for (const h of answering) expect(h.closedByServer()).toBe(0);
      await stillServed(p.steady);
    } finally {
      for (const h of [...answering, ...silent]) h.release();
    }
  });
});

describe("streams", () => {
  let p: Ports;
  beforeAll(async () => {
    p = await startPorts({ maxStreamsPerConnection: 16 });
  });
  afterAll(async () => {
    await p?.stop();
  });

  it("opens at most maxStreamsPerConnection calls at once on one connection", async () => {
    for (const [target, tag] of [
      [p.grpcAddress, "hold-cap-grpc"],
      [p.httpUrl, "hold-cap-http"],
    ] as const) {
      // One connection, 40 watches: the server lets 16 run, the client queues the rest.
      const session = http2.connect(httpBase(target));
      session.on("error", () => {});
      try {
        const streams = Array.from({ length: 40 }, () => {
          const s = session.request({ ":method": "POST", ":path": watchPath, "content-type": "application/grpc", te: "trailers" });
          s.on("error", () => {});
          s.end(grpcFrame(getRequest(tag)));
          return s;
        });
        await waitFor(`${tag}: 16 watches running`, () => count(started, tag) === 16);
        // Give the server every chance to start more (it must not).
        await stillServed(p.steady);
        expect(count(started, tag)).toBe(16);
        for (const s of streams) s.close(http2.constants.NGHTTP2_CANCEL);
        await waitFor(`${tag}: the watches were cancelled`, () => count(aborted, tag) === count(started, tag));
      } finally {
        session.destroy();
      }
    }
  });
});

describe("streams reset at once", () => {
  let p: Ports;
  beforeAll(async () => {
    p = await startPorts({ maxStreamResets: 100 });
  });
  afterAll(async () => {
    await p?.stop();
  });

  it("does not count completed calls against the reset budget", async () => {
    const Client = grpc.makeGenericClientConstructor(grpcServiceDefinition(DeploymentService), "DeploymentService");
    const client = new Client(p.grpcAddress, grpc.credentials.createInsecure()) as unknown as Record<
      string,
      (req: unknown, cb: (e: grpc.ServiceError | null) => void) => void
    > &
      grpc.Client;
    const sm = new Http2SessionManager(p.httpUrl);
    const connect = createClient(DeploymentService, createConnectTransport({ baseUrl: p.httpUrl, httpVersion: "2", sessionManager: sm }));
    try {
      for (let round = 0; round < 5; round++) {
        const calls = Array.from({ length: 100 }, (_, i) =>
          Promise.all([
            new Promise<grpc.ServiceError | null>((resolve) => client["getDeployment"]!({ name: `ok-${i}` }, resolve)),
            connect.getDeployment({ name: `ok-${i}` }).then(() => null),
          ]),
        );
        for (const [g] of await Promise.all(calls)) expect(g).toBeNull();
      }
    } finally {
      client.close();
      sm.abort();
    }
  });

  it("thousands of streams opened and reset at once: every started call sees ctx.signal abort, the connection is closed past its budget", async () => {
    for (const [target, tag, headers, body] of [
      [p.grpcAddress, "hold-flood-grpc", { "content-type": "application/grpc" }, grpcFrame(getRequest("hold-flood-grpc"))],
      [p.httpUrl, "hold-flood-connect", { "content-type": "application/proto" }, getRequest("hold-flood-connect")],
      [p.httpUrl, "hold-flood-grpc-h", { "content-type": "application/grpc" }, grpcFrame(getRequest("hold-flood-grpc-h"))],
    ] as const) {
      const flood = await streamFlood(target, { streams: 2000, path: getPath, headers, body });
      expect(flood.requested).toBe(2000);
      // Past 100 abandoned streams the server closes the connection.
      expect(flood.closedByServer, tag).toBe(true);
      if (target === p.httpUrl) expect(flood.goaway, tag).toMatchObject({ code: 11, debug: expect.stringMatching(/too many streams reset \(limit 100/) });
      // Whatever got as far as a handler was told the client had gone.
      expect(count(started, tag), tag).toBeGreaterThan(0);
      await waitFor(`${tag}: every started call aborted`, () => count(aborted, tag) === count(started, tag), 60_000);
      await stillServed(p.steady);
    }
  });
});

describe("a client that goes away", () => {
  let p: Ports;
  beforeAll(async () => {
    p = await startPorts();
  });
  afterAll(async () => {
    await p?.stop();
  });

  it("aborts the call's ctx.signal on both ports, whatever the protocol", async () => {
    const http = await import("node:http");
    const cases: [string, () => () => void][] = [
      [
        "hold-gone-grpc-js",
        () => {
          const Client = grpc.makeGenericClientConstructor(grpcServiceDefinition(DeploymentService), "DeploymentService");
          const client = new Client(p.grpcAddress, grpc.credentials.createInsecure()) as unknown as Record<
            string,
            (req: unknown, cb: () => void) => grpc.ClientUnaryCall
          > &
            grpc.Client;
          const call = client["getDeployment"]!({ name: "hold-gone-grpc-js" }, () => {});
          return () => {
            call.cancel();
            client.close();
          };
        },
      ],
      ...(["application/json", "application/grpc-web+json"] as const).map((ct, i): [string, () => () => void] => {
        const tag = `hold-gone-h1-${i}`;
        return [
          tag,
          () => {
            const json = Buffer.from(JSON.stringify({ name: tag }));
            const req = http.request(`${p.httpUrl}${getPath}`, { method: "POST", headers: { "content-type": ct }, agent: false });
            req.on("error", () => {});
            req.end(ct === "application/json" ? json : grpcFrame(json));
            return () => req.destroy();
          },
        ];
      }),
      ...(["application/proto", "application/grpc"] as const).map((ct, i): [string, () => () => void] => {
        const tag = `hold-gone-h2-${i}`;
        return [
          tag,
          () => {
            const session = http2.connect(p.httpUrl);
            session.on("error", () => {});
            const s = session.request({ ":method": "POST", ":path": getPath, "content-type": ct, te: "trailers" });
            s.on("error", () => {});
            s.end(ct === "application/proto" ? getRequest(tag) : grpcFrame(getRequest(tag)));
            return () => {
              s.close(http2.constants.NGHTTP2_CANCEL);
              session.close();
            };
          },
        ];
      }),
    ];
    for (const [tag, start] of cases) {
      const goAway = start();
      await waitFor(`${tag}: the call started`, () => count(started, tag) === 1);
      goAway();
      await waitFor(`${tag}: ctx.signal aborted`, () => count(aborted, tag) === 1);
    }
    await stillServed(p.steady);
  });
});
