// The unary Connect fast path (src/api/connect-unary-fast.ts) answers exactly
// as connect-node does: every request here goes to two Connect servers over
// the same real DeploymentService, database and bus, one with the fast path
// and one without, and the two responses (status, headers, body) must match.
import { request } from "node:http";
import { gunzipSync } from "node:zlib";
import { create, fromBinary, toBinary, toJsonString } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bindService } from "../../src/api/call-wrapper.js";
import { createConnectServer, type ConnectServer } from "../../src/api/connect-server.js";
import { FastCallContext } from "../../src/api/connect-unary-fast.js";
import { createDeploymentService } from "../../src/api/deployment-service.js";
import { createApiKey } from "../../src/db/api-keys.js";
import { watchAbort } from "../../src/db/call-scope.js";
import { DeploymentService, GetDeploymentRequestSchema } from "../../src/gen/modeldeploy/v1/deployment_service_pb.js";
import { DeploymentSchema } from "../../src/gen/modeldeploy/v1/resources_pb.js";
import { silentLogger } from "../../src/log.js";
import { createEventBus, type EventBus } from "../../src/queue/event-bus.js";
import { testApiDeps } from "../helpers/api-deps.js";
import { createTestDatabase, createTestQueue, waitFor, type TestDatabase, type TestQueue } from "../helpers/services.js";

let tdb: TestDatabase;
let tq: TestQueue;
let bus: EventBus;
let fast: ConnectServer;
let slow: ConnectServer;
let fastPort: number;
let slowPort: number;
let key: string;
let readOnlyKey: string;
let name: string;

/** Which path served each call that reached the implementation (true: the fast path), by request id, in order. */
const servedFast = new Map<string, boolean[]>();
/** The paths of the last request sent with both(): the fast server's, then the slow one's. */
const lastPaths = () => servedFast.get(`fast-test-${seq}`);
/** The signal reason a held call saw, by request id. */
const heldReasons = new Map<string, unknown>();

/**
 * The real service, but GetDeployment of a name starting "hold-" waits for
 * ctx.signal, and every call notes whether the fast path made its context.
 */
function observed(impl: ServiceImpl<typeof DeploymentService>): ServiceImpl<typeof DeploymentService> {
  const out: Record<string, unknown> = {};
  for (const [k, fn] of Object.entries(impl) as [string, (req: unknown, ctx: HandlerContext) => unknown][]) {
    out[k] = (req: { name?: string }, ctx: HandlerContext) => {
      const id = ctx.requestHeader.get("x-request-id") ?? "";
      servedFast.set(id, [...(servedFast.get(id) ?? []), ctx instanceof FastCallContext]);
      if (k === "getDeployment" && req.name?.startsWith("hold-") === true) {
        return new Promise((resolve) => {
          const done = () => {
            heldReasons.set(id, ctx.signal.reason);
            resolve({ name: req.name });
          };
          if (ctx.signal.aborted) done();
          else ctx.signal.addEventListener("abort", done, { once: true });
        });
      }
      // Waits as a database wait does (CallScope.onAbort where the context has it).
      if (k === "getDeployment" && req.name?.startsWith("wait-") === true) {
        return new Promise((resolve) => {
          watchAbort(ctx, (reason) => {
            heldReasons.set(id, reason);
            resolve({ name: req.name });
          });
        });
      }
      return fn.call(impl, req, ctx);
    };
  }
  return out as unknown as ServiceImpl<typeof DeploymentService>;
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

let seq = 0;

function send(port: number, path: string, body: string | Uint8Array, headers: Record<string, string>, method = "POST"): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

const getPath = "/modeldeploy.v1.DeploymentService/GetDeployment";

/** The same request to both servers (the same x-request-id); returns [fast, slow] after checking they match. */
async function both(path: string, body: string | Uint8Array, headers: Record<string, string> = {}, method = "POST"): Promise<[Answer, Answer]> {
  const id = `fast-test-${++seq}`;
  const h = { "content-type": "application/json", authorization: `Bearer ${key}`, "x-request-id": id, ...headers };
  const f = await send(fastPort, path, body, h, method);
  const s = await send(slowPort, path, body, h, method);
  const strip = (a: Answer) => {
    const { date: _date, ...rest } = a.headers;
    return { status: a.status, headers: rest, body: a.body.toString("base64") };
  };
  expect(strip(f)).toEqual(strip(s));
  expect(f.headers["x-request-id"]).toBe(id);
  return [f, s];
}

const json = (a: Answer) => JSON.parse(a.body.toString()) as { code?: string; message?: string; details?: { type: string; value: string; debug?: unknown }[] };

beforeAll(async () => {
  tdb = await createTestDatabase();
  tq = await createTestQueue();
  bus = createEventBus(tq.nc, tq.prefix);
  const deps = testApiDeps(tdb.db, bus);
  const services = [bindService(DeploymentService, observed(createDeploymentService(deps)))];
  const limits = { maxJsonBytes: 4096, maxJsonDepth: 8, maxTimeoutMs: 60_000 };
  fast = createConnectServer({ services, logger: silentLogger, ...limits });
  slow = createConnectServer({ services, logger: silentLogger, ...limits, unaryFastPath: false });
  fastPort = await fast.listen("127.0.0.1", 0);
  slowPort = await slow.listen("127.0.0.1", 0);
  key = (await createApiKey(tdb.db, { workspace: "acme", principal: "alice", scopes: ["deployments:read", "deployments:write"] })).key;
  readOnlyKey = (await createApiKey(tdb.db, { workspace: "acme", principal: "bob", scopes: ["deployments:read"] })).key;
  const created = await send(
    fastPort,
    "/modeldeploy.v1.DeploymentService/CreateDeployment",
    JSON.stringify({
      model: { name: "acme/tiny-linear", revision: "1", uri: "file:///nonexistent/noop.onnx" },
      resources: { cpu: 1, memory: "128Mi", threadCount: 1 },
      scaling: { minReplicas: 1, maxReplicas: 1 },
      labels: { tier: "gold", "team.example.com/owner": "alice" },
    }),
    { "content-type": "application/json", authorization: `Bearer ${key}` },
  );
  expect(created.status).toBe(200);
  name = (JSON.parse(created.body.toString()) as { deployment: { name: string } }).deployment.name;
  // Enough deployments for a list response past connect-node's 1 KiB compression threshold.
  for (let i = 0; i < 4; i++) {
    const r = await send(
      fastPort,
      "/modeldeploy.v1.DeploymentService/CreateDeployment",
      JSON.stringify({
        model: { name: "acme/tiny-linear", revision: "1", uri: "file:///nonexistent/noop.onnx" },
        suffix: `l${i}`,
      }),
      { "content-type": "application/json", authorization: `Bearer ${key}` },
    );
    expect(r.status).toBe(200);
  }
});

afterAll(async () => {
  await fast?.close(1000);
  await slow?.close(1000);
  await bus?.close();
  await tq?.drop();
  await tdb?.drop();
});

describe("unary Connect fast path", () => {
  it("answers GetDeployment in JSON with connect-node's bytes and headers, through the fast path", async () => {
    const [f] = await both(getPath, JSON.stringify({ name }));
    expect(f.status).toBe(200);
    expect(f.headers["content-type"]).toBe("application/json");
    // protobuf-es canonical JSON of the message, byte for byte.
    const d = (JSON.parse(f.body.toString()) as { name: string }).name;
    expect(d).toBe(name);
    expect(lastPaths()).toEqual([true, false]);
  });

  it("answers in protobuf (application/proto)", async () => {
    const body = toBinary(GetDeploymentRequestSchema, create(GetDeploymentRequestSchema, { name }));
    const [f] = await both(getPath, body, { "content-type": "application/proto" });
    expect(f.status).toBe(200);
    expect(f.headers["content-type"]).toBe("application/proto");
    const msg = fromBinary(DeploymentSchema, f.body);
    expect(msg.name).toBe(name);
    expect(JSON.parse(toJsonString(DeploymentSchema, msg))).toMatchObject({ name });
    expect(lastPaths()).toEqual([true, false]);
  });

  it("accepts a charset, ignores unknown JSON fields and a connect-protocol-version header as connect-node does", async () => {
    const [f] = await both(getPath, JSON.stringify({ name, notAField: 1 }), {
      "content-type": "application/json; charset=utf-8",
      "connect-protocol-version": "1",
    });
    expect(f.status).toBe(200);
  });

  it("NOT_FOUND with its ErrorInfo and RequestInfo details", async () => {
    const [f] = await both(getPath, JSON.stringify({ name: "nope-0000" }));
    expect(f.status).toBe(404);
    const e = json(f);
    expect(e.code).toBe("not_found");
    expect(e.details?.map((d) => d.type)).toEqual(["google.rpc.ErrorInfo", "google.rpc.RequestInfo"]);
  });

  it("INVALID_ARGUMENT with field violations", async () => {
    const [f] = await both(getPath, JSON.stringify({ name: "   " }));
    expect(f.status).toBe(400);
    expect(json(f).details?.map((d) => d.type)).toContain("google.rpc.BadRequest");
    const [c] = await both(
      "/modeldeploy.v1.DeploymentService/CreateDeployment",
      JSON.stringify({ model: { name: "", uri: "ftp://x" }, scaling: { minReplicas: 3, maxReplicas: 1 } }),
    );
    expect(c.status).toBe(400);
    expect(json(c).details?.map((d) => d.type)).toContain("google.rpc.BadRequest");
    expect(lastPaths()).toEqual([true, false]);
  });

  it("missing or insufficient credentials", async () => {
    const [none] = await both(getPath, JSON.stringify({ name }), { authorization: "" });
    expect(none.status).toBe(401);
    expect(json(none).code).toBe("unauthenticated");
    const [scope] = await both("/modeldeploy.v1.DeploymentService/CreateDeployment", JSON.stringify({ model: { name: "a/b", uri: "file:///m.onnx" } }), {
      authorization: `Bearer ${readOnlyKey}`,
    });
    expect(scope.status).toBe(403);
    expect(json(scope).code).toBe("permission_denied");
  });

  it("refuses bad JSON, oversized and too deeply nested bodies like the guard in front of connect-node", async () => {
    const [bad] = await both(getPath, '{"name": ');
    expect(bad.status).toBe(400);
    expect(json(bad).code).toBe("invalid_argument");
    const [wrongType] = await both(getPath, JSON.stringify({ name: 5 }));
    expect(wrongType.status).toBe(400);
    const [big] = await both(getPath, JSON.stringify({ name: "x".repeat(5000) }));
    expect(big.status).toBe(429);
    expect(json(big).code).toBe("resource_exhausted");
    expect(json(big).details?.map((d) => d.type)).toEqual(["google.rpc.RequestInfo"]);
    const [deep] = await both(getPath, `{"name":"a","x":${"[".repeat(20)}${"]".repeat(20)}}`);
    expect(deep.status).toBe(400);
    expect(json(deep).message).toMatch(/deeper than the limit of 8/);
  });

  it("leaves unknown methods, GET, unknown content types and bad timeouts to connect-node (same answers)", async () => {
    const [unknown] = await both("/modeldeploy.v1.DeploymentService/Nope", "{}");
    expect(unknown.status).toBe(404);
    const [ct] = await both(getPath, "{}", { "content-type": "text/plain" });
    expect(ct.status).toBe(415);
    const [timeout] = await both(getPath, JSON.stringify({ name }), { "connect-timeout-ms": "soon" });
    expect(timeout.status).toBe(400);
    const [tooLong] = await both(getPath, JSON.stringify({ name }), { "connect-timeout-ms": "120000" });
    expect(tooLong.status).toBe(400);
    const [get] = await both(`${getPath}?encoding=json&message=${encodeURIComponent(JSON.stringify({ name }))}`, "", { "content-type": "" }, "GET");
    expect(get.status).toBe(200);
    expect(lastPaths()).toEqual([false, false]);
  });

  it("compresses a response past 1 KiB when the client accepts gzip", async () => {
    const [f] = await both("/modeldeploy.v1.DeploymentService/ListDeployments", "{}", { "accept-encoding": "gzip" });
    expect(f.status).toBe(200);
    expect(f.headers["content-encoding"]).toBe("gzip");
    expect((JSON.parse(gunzipSync(f.body).toString()) as { deployments: unknown[] }).deployments.length).toBe(5);
    expect(lastPaths()).toEqual([true, false]);
  });

  it("adds CORS headers for a browser origin", async () => {
    const [f] = await both(getPath, JSON.stringify({ name }), { origin: "https://dash.example.com" });
    expect(f.headers["access-control-allow-origin"]).toBe("*");
    expect(f.headers["access-control-expose-headers"]).toContain("x-request-id");
  });

  it("ends a call at its connect-timeout-ms with DEADLINE_EXCEEDED, its signal aborted with the deadline", async () => {
    const [f] = await both(getPath, JSON.stringify({ name: "hold-deadline" }), { "connect-timeout-ms": "50" });
    expect(f.status).toBe(504);
    expect(json(f).code).toBe("deadline_exceeded");
    const reason = heldReasons.get(`fast-test-${seq}`);
    expect(reason).toBeInstanceOf(ConnectError);
    expect((reason as ConnectError).code).toBe(Code.DeadlineExceeded);
    expect(lastPaths()).toEqual([true, false]);
  });

  it("tells a wait through CallScope.onAbort of the deadline and of a client that went away", async () => {
    const [f] = await both(getPath, JSON.stringify({ name: "wait-deadline" }), { "connect-timeout-ms": "50" });
    expect(f.status).toBe(504);
    expect((heldReasons.get(`fast-test-${seq}`) as ConnectError).code).toBe(Code.DeadlineExceeded);
    expect(lastPaths()).toEqual([true, false]);
    const id = "gone-onabort";
    const req = request({
      host: "127.0.0.1",
      port: fastPort,
      path: getPath,
      method: "POST",
      agent: false,
      headers: { "content-type": "application/json", authorization: `Bearer ${key}`, "x-request-id": id },
    });
    req.on("error", () => {});
    req.end(JSON.stringify({ name: "wait-gone" }));
    await waitFor("the call to start", () => servedFast.has(id));
    req.destroy();
    const reason = await waitFor("the wait to end", () => heldReasons.get(id));
    expect((reason as ConnectError).code).toBe(Code.Canceled);
  });

  it("aborts the signals of calls still running when the grace period of close() is over", async () => {
    const deps = testApiDeps(tdb.db, bus);
    const services = [bindService(DeploymentService, observed(createDeploymentService(deps)))];
    const reasons: unknown[] = [];
    for (const unaryFastPath of [true, false]) {
      const server = createConnectServer({ services, logger: silentLogger, unaryFastPath });
      const port = await server.listen("127.0.0.1", 0);
      const ids = [`closing-${unaryFastPath}-1`, `closing-${unaryFastPath}-2`];
      for (const id of ids) {
        const req = request({
          host: "127.0.0.1",
          port,
          path: getPath,
          method: "POST",
          agent: false,
          headers: { "content-type": "application/json", authorization: `Bearer ${key}`, "x-request-id": id },
        });
        req.on("error", () => {});
        req.end(JSON.stringify({ name: "hold-closing" }));
      }
      await waitFor("the calls to start", () => ids.every((id) => servedFast.has(id)));
      await server.close(50);
      for (const id of ids) {
        expect(servedFast.get(id)).toEqual([unaryFastPath]);
        reasons.push(await waitFor("the call's signal to abort", () => heldReasons.get(id)));
      }
    }
    // The same reason either way: the server's shutdown signal's.
    expect(new Set(reasons.map((r) => (r as Error).name)).size).toBe(1);
  });

  it("aborts the call's signal when the client goes away", async () => {
    for (const port of [fastPort, slowPort]) {
      const id = `gone-${port}`;
      const req = request({
        host: "127.0.0.1",
        port,
        path: getPath,
        method: "POST",
        agent: false,
        headers: { "content-type": "application/json", authorization: `Bearer ${key}`, "x-request-id": id },
      });
      req.on("error", () => {});
      req.end(JSON.stringify({ name: "hold-gone" }));
      await waitFor("the call to start", () => servedFast.has(id));
      req.destroy();
      const reason = await waitFor("the call's signal to abort", () => heldReasons.get(id));
      expect((reason as ConnectError).code).toBe(Code.Canceled);
      expect(servedFast.get(id)).toEqual([port === fastPort]);
    }
  });
});
