// Transport tests: the grpc-js server and the Connect/gRPC-Web server serving
// one small in-test DeploymentService implementation. They exercise the
// transports (framing, metadata, errors, health, reflection, limits,
// shutdown), not the business logic.
import { createRequire } from "node:module";
import { create, createFileRegistry, createRegistry, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema, anyUnpack } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { Http2SessionManager, createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { service as healthServiceDefinition } from "grpc-health-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { requestIdOf } from "../../src/api/call-wrapper.js";
import { createConnectServer, type ConnectServer } from "../../src/api/connect-server.js";
import { apiError, errorInfoOf, toConnectError } from "../../src/api/errors.js";
import { DependencyUnavailableError, WriteConflictError } from "../../src/domain/errors.js";
import { createGrpcServer, grpcHardLimitFactor, grpcServiceDefinition, type GrpcServer } from "../../src/api/grpc-server.js";
import { BadRequestSchema, ErrorInfoSchema, RequestInfoSchema, file_google_rpc_error_details } from "../../src/gen/google/rpc/error_details_pb.js";
import { StatusSchema } from "../../src/gen/google/rpc/status_pb.js";
import { DeletionService } from "../../src/gen/modeldeploy/v1/deletion_service_pb.js";
import { DeploymentService } from "../../src/gen/modeldeploy/v1/deployment_service_pb.js";
import { EventType } from "../../src/gen/modeldeploy/v1/resources_pb.js";
import { createLogger } from "../../src/log.js";
import { dependenciesFirst } from "../helpers/descriptors.js";

// ---------------------------------------------------------------------------
// In-test implementation

interface Deferred<T> {
  promise: Promise<T>;
  resolve: (v: T) => void;
}
function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

let slowAborted = deferred<unknown>();

/** Resolved with the stream's name when a "forever" watch sees its ctx.signal abort. */
const watchAborted = new Map<string, Deferred<string>>();
/** Resolved when a "forever" watch has sent its first event. */
const watchStarted = new Map<string, Deferred<void>>();
function track(name: string) {
  const aborted = deferred<string>();
  const started = deferred<void>();
  watchAborted.set(name, aborted);
  watchStarted.set(name, started);
  return { aborted: aborted.promise, started: started.promise };
}

function waitAbort(ctx: HandlerContext): Promise<void> {
  return new Promise((resolve) => {
    if (ctx.signal.aborted) resolve();
    else ctx.signal.addEventListener("abort", () => resolve(), { once: true });
  });
}

const impl: Partial<ServiceImpl<typeof DeploymentService>> = {
  async getDeployment(req, ctx) {
    switch (req.name) {
      case "missing":
        throw apiError(Code.NotFound, "deployment missing not found", {
          reason: "DEPLOYMENT_NOT_FOUND",
          metadata: { name: req.name },
        });
      case "BAD":
        throw apiError(Code.InvalidArgument, "name is not an RFC 1123 label", {
          reason: "NAME_INVALID",
          metadata: { name: req.name },
          fieldViolations: [{ field: "name", description: "lowercase letters, digits and '-'", reason: "NAME_INVALID" }],
        });
      case "boom":
        throw new Error("password=hunter2 leaked from a driver");
      case "slow":
        // Only ends when the call is cancelled or its deadline passes.
        await waitAbort(ctx);
        slowAborted.resolve(ctx.signal.reason);
        throw ctx.signal.reason;
      case "db-down":
        throw new DependencyUnavailableError("database", "cannot connect to the database", {
          cause: Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" }),
        });
      default:
        ctx.responseTrailer.set("x-trailer-test", "t1");
        // The impl sees the request id: echo it in uid.
        return { name: req.name, uid: requestIdOf(ctx), creator: ctx.protocolName };
    }
  },
  async createDeployment(req) {
    return { deployment: { name: `${req.model?.name ?? "m"}-x` } };
  },
  async *watchDeployment(req, ctx) {
    if (req.name === "missing") {
      throw apiError(Code.NotFound, "deployment missing not found", { reason: "DEPLOYMENT_NOT_FOUND" });
    }
    if (req.name.startsWith("forever")) {
      yield { sequence: 1n, type: EventType.SNAPSHOT, deployment: { name: req.name } };
      watchStarted.get(req.name)?.resolve();
      try {
        await waitAbort(ctx);
      } finally {
        watchAborted.get(req.name)?.resolve(req.name);
      }
      return;
    }
    for (let i = 1; i <= 3; i++) {
      yield {
        sequence: BigInt(i),
        type: i === 1 ? EventType.SNAPSHOT : EventType.STATE_CHANGED,
        deployment: { name: req.name, sequence: BigInt(i) },
      };
    }
    if (req.name === "fail-after") throw apiError(Code.Aborted, "stream broke", { reason: "TEST_ABORTED" });
  },
};

const deletionImpl: Partial<ServiceImpl<typeof DeletionService>> = {
  async getDeletionTask(req) {
    return { id: req.taskId };
  },
};

const logLines: Record<string, unknown>[] = [];
const logger = createLogger({ level: "debug", write: (l) => logLines.push(JSON.parse(l) as Record<string, unknown>) });
const services = [
  { service: DeploymentService, impl },
  { service: DeletionService, impl: deletionImpl },
];

// ---------------------------------------------------------------------------
// grpc-js client helpers

type AnyClient = grpc.Client & Record<string, (...args: unknown[]) => grpc.ClientUnaryCall & grpc.ClientReadableStream<unknown>>;

const DeploymentClient = grpc.makeGenericClientConstructor(grpcServiceDefinition(DeploymentService), "DeploymentService");

interface UnaryOutcome {
  res?: unknown;
  err?: grpc.ServiceError;
  header?: grpc.Metadata;
  status: grpc.StatusObject;
}

function grpcUnary(client: AnyClient, method: string, req: unknown, md = new grpc.Metadata(), options: grpc.CallOptions = {}): Promise<UnaryOutcome> {
  return new Promise((resolve) => {
    const out: Partial<UnaryOutcome> = {};
    const fn = client[method];
    if (fn === undefined) throw new Error(`no method ${method}`);
    const call = fn.call(client, req, md, options, (err: grpc.ServiceError | null, res: unknown) => {
      if (err) out.err = err;
      else out.res = res;
    });
    call.on("metadata", (m: grpc.Metadata) => (out.header = m));
    call.on("status", (s: grpc.StatusObject) => resolve({ ...out, status: s }));
  });
}

interface StreamOutcome {
  messages: unknown[];
  err?: grpc.ServiceError;
  header?: grpc.Metadata;
  status: grpc.StatusObject;
}

function grpcStream(client: AnyClient, method: string, req: unknown, md = new grpc.Metadata()): Promise<StreamOutcome> {
  return new Promise((resolve) => {
    const out: StreamOutcome = { messages: [], status: undefined as unknown as grpc.StatusObject };
    const fn = client[method];
    if (fn === undefined) throw new Error(`no method ${method}`);
    const call = fn.call(client, req, md);
    call.on("data", (m: unknown) => out.messages.push(m));
    call.on("metadata", (m: grpc.Metadata) => (out.header = m));
    call.on("error", (e: grpc.ServiceError) => (out.err = e));
    call.on("status", (s: grpc.StatusObject) => {
      out.status = s;
      // "status" can precede "error"; let the error event land first.
      setImmediate(() => resolve(out));
    });
  });
}

function statusDetails(md: grpc.Metadata) {
  const raw = md.get("grpc-status-details-bin")[0];
  expect(raw).toBeInstanceOf(Buffer);
  const status = fromBinary(StatusSchema, raw as Buffer);
  const registry = createRegistry(file_google_rpc_error_details);
  const unpacked = status.details.map((any) => anyUnpack(any, registry));
  return { status, unpacked };
}

function metaString(md: grpc.Metadata | undefined, key: string): string | undefined {
  const v = md?.get(key)[0];
  return typeof v === "string" ? v : undefined;
}

// ---------------------------------------------------------------------------

describe("grpc-js server", () => {
  let server: GrpcServer;
  let addr: string;
  let client: AnyClient;

  beforeAll(async () => {
    server = createGrpcServer({ services, logger });
    const port = await server.listen("127.0.0.1", 0);
    addr = `127.0.0.1:${port}`;
    client = new DeploymentClient(addr, grpc.credentials.createInsecure()) as unknown as AnyClient;
  });

  afterAll(async () => {
    client.close();
    await server.shutdown(2000);
  });

  it("answers a unary call with the client's x-request-id in headers, the impl sees it", async () => {
    const md = new grpc.Metadata();
    md.set("x-request-id", "req-grpc-1");
    const out = await grpcUnary(client, "getDeployment", { name: "alpha" }, md);
    expect(out.err).toBeUndefined();
    expect(out.res).toMatchObject({ name: "alpha", uid: "req-grpc-1", creator: "grpc" });
    expect(metaString(out.header, "x-request-id")).toBe("req-grpc-1");
    expect(metaString(out.status.metadata, "x-trailer-test")).toBe("t1");
    const line = logLines.find((l) => l["requestId"] === "req-grpc-1");
    expect(line).toMatchObject({
      msg: "rpc",
      service: "modeldeploy.v1.DeploymentService",
      method: "GetDeployment",
      protocol: "grpc",
      code: "ok",
    });
    expect(typeof line?.["durationMs"]).toBe("number");
  });

  it("generates a request id when the client sends none or an insane one", async () => {
    const a = await grpcUnary(client, "getDeployment", { name: "a" });
    const generated = metaString(a.header, "x-request-id");
    expect(generated).toMatch(/^[0-9a-f-]{36}$/);
    expect((a.res as { uid: string }).uid).toBe(generated);

    const md = new grpc.Metadata();
    md.set("x-request-id", "x".repeat(200));
    const b = await grpcUnary(client, "getDeployment", { name: "b" }, md);
    expect(metaString(b.header, "x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("sends error code, message, google.rpc details and x-request-id", async () => {
    const md = new grpc.Metadata();
    md.set("x-request-id", "req-grpc-err");
    const out = await grpcUnary(client, "getDeployment", { name: "missing" }, md);
    expect(out.err?.code).toBe(grpc.status.NOT_FOUND);
    expect(out.err?.details).toBe("deployment missing not found");
    const trailers = out.err?.metadata;
    expect(trailers).toBeDefined();
    expect(trailers?.get("x-request-id")).toEqual(["req-grpc-err"]);
    const { status, unpacked } = statusDetails(trailers as grpc.Metadata);
    expect(status.code).toBe(Code.NotFound);
    expect(status.message).toBe("deployment missing not found");
    const info = unpacked.find((m) => m?.$typeName === "google.rpc.ErrorInfo");
    expect(info).toMatchObject({ reason: "DEPLOYMENT_NOT_FOUND", domain: "modeldeploy", metadata: { name: "missing" } });
    const reqInfo = unpacked.find((m) => m?.$typeName === "google.rpc.RequestInfo");
    expect(reqInfo).toMatchObject({ requestId: "req-grpc-err" });
    expect(logLines.find((l) => l["requestId"] === "req-grpc-err")).toMatchObject({ code: "not_found" });
  });

  it("sends BadRequest field violations", async () => {
    const out = await grpcUnary(client, "getDeployment", { name: "BAD" });
    expect(out.err?.code).toBe(grpc.status.INVALID_ARGUMENT);
    const { unpacked } = statusDetails(out.err?.metadata as grpc.Metadata);
    const bad = unpacked.find((m) => m?.$typeName === "google.rpc.BadRequest");
    expect(bad).toMatchObject({ fieldViolations: [{ field: "name", reason: "NAME_INVALID" }] });
  });

  it("hides internal causes and maps an unreachable database to UNAVAILABLE", async () => {
    const boom = await grpcUnary(client, "getDeployment", { name: "boom" });
    expect(boom.err?.code).toBe(grpc.status.INTERNAL);
    expect(boom.err?.details).toBe("internal error");
    expect(JSON.stringify(boom.err?.metadata.toJSON())).not.toContain("hunter2");
    const down = await grpcUnary(client, "getDeployment", { name: "db-down" });
    expect(down.err?.code).toBe(grpc.status.UNAVAILABLE);
    expect(down.err?.details).toBe("database unavailable: cannot connect to the database; retry");
    expect(down.err?.details).not.toContain("5432");
  });

  it("passes the deadline to the impl (ctx.signal, timeoutMs)", async () => {
    slowAborted = deferred<unknown>();
    const out = await grpcUnary(client, "getDeployment", { name: "slow" }, new grpc.Metadata(), {
      deadline: Date.now() + 200,
    });
    expect(out.err?.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    const reason = await slowAborted.promise;
    expect(reason).toBeInstanceOf(ConnectError);
    expect((reason as ConnectError).code).toBe(Code.DeadlineExceeded);
  });

  it("answers UNIMPLEMENTED for a method the impl does not have", async () => {
    const out = await grpcUnary(client, "listDeployments", {});
    expect(out.err?.code).toBe(grpc.status.UNIMPLEMENTED);
    expect(out.err?.metadata.get("x-request-id")).toHaveLength(1);
  });

  it("streams server messages with headers and trailers", async () => {
    const md = new grpc.Metadata();
    md.set("x-request-id", "req-grpc-stream");
    const out = await grpcStream(client, "watchDeployment", { name: "s1" }, md);
    expect(out.err).toBeUndefined();
    expect(out.status.code).toBe(grpc.status.OK);
    expect(out.messages.map((m) => (m as { sequence: bigint }).sequence)).toEqual([1n, 2n, 3n]);
    expect(metaString(out.header, "x-request-id")).toBe("req-grpc-stream");
    const line = logLines.find((l) => l["requestId"] === "req-grpc-stream");
    expect(line).toMatchObject({ method: "WatchDeployment", code: "ok", messages: 3 });
  });

  it("sends a stream error before the first message as trailers-only, with x-request-id", async () => {
    const md = new grpc.Metadata();
    md.set("x-request-id", "req-grpc-stream-err");
    const out = await grpcStream(client, "watchDeployment", { name: "missing" }, md);
    expect(out.messages).toHaveLength(0);
    expect(out.err?.code).toBe(grpc.status.NOT_FOUND);
    expect(out.err?.metadata.get("x-request-id")).toEqual(["req-grpc-stream-err"]);
    expect(errorReason(out.err?.metadata)).toBe("DEPLOYMENT_NOT_FOUND");
  });

  it("sends a stream error after messages in trailers", async () => {
    const md = new grpc.Metadata();
    md.set("x-request-id", "req-grpc-stream-late");
    const out = await grpcStream(client, "watchDeployment", { name: "fail-after" }, md);
    expect(out.messages).toHaveLength(3);
    expect(metaString(out.header, "x-request-id")).toBe("req-grpc-stream-late");
    expect(out.err?.code).toBe(grpc.status.ABORTED);
    expect(out.err?.metadata.get("x-request-id")).toEqual(["req-grpc-stream-late"]);
    expect(errorReason(out.err?.metadata)).toBe("TEST_ABORTED");
  });

  it("stops the impl when the client cancels a stream", async () => {
    const { aborted, started } = track("forever-grpc");
    const call = client["watchDeployment"]?.call(client, { name: "forever-grpc" }) as grpc.ClientReadableStream<unknown>;
    const errored = new Promise<grpc.ServiceError>((resolve) => call.on("error", resolve));
    call.on("data", () => {});
    await started;
    call.cancel();
    expect((await errored).code).toBe(grpc.status.CANCELLED);
    expect(await aborted).toBe("forever-grpc");
  });

  it("rejects a malformed request message with INVALID_ARGUMENT and a request id", async () => {
    const garbage: grpc.ServiceDefinition = {
      getDeployment: {
        path: "/modeldeploy.v1.DeploymentService/GetDeployment",
        requestStream: false,
        responseStream: false,
        requestSerialize: () => Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
        requestDeserialize: (b: Buffer) => b,
        responseSerialize: (b: Buffer) => b,
        responseDeserialize: (b: Buffer) => b,
      },
    };
    const Raw = grpc.makeGenericClientConstructor(garbage, "Raw");
    const raw = new Raw(addr, grpc.credentials.createInsecure()) as unknown as AnyClient;
    try {
      const out = await grpcUnary(raw, "getDeployment", {});
      expect(out.err?.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(out.err?.metadata.get("x-request-id")).toHaveLength(1);
    } finally {
      raw.close();
    }
  });

  it("rejects an oversized request with RESOURCE_EXHAUSTED, the limit and x-request-id", async () => {
    const md = new grpc.Metadata();
    md.set("x-request-id", "req-grpc-big");
    const out = await grpcUnary(client, "getDeployment", { name: "x".repeat(5 * 1024 * 1024) }, md);
    expect(out.err?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(out.err?.details).toMatch(/^request message of \d+ bytes is larger than the limit of 4194304 bytes$/);
    expect(out.err?.metadata.get("x-request-id")).toEqual(["req-grpc-big"]);
    const { unpacked } = statusDetails(out.err?.metadata as grpc.Metadata);
    expect(unpacked.find((m) => m?.$typeName === "google.rpc.RequestInfo")).toMatchObject({ requestId: "req-grpc-big" });
    expect(logLines.find((l) => l["requestId"] === "req-grpc-big")).toMatchObject({
      method: "GetDeployment",
      protocol: "grpc",
      code: "resource_exhausted",
    });

    // Server streams too, with a generated id.
    const stream = await grpcStream(client, "watchDeployment", { name: "x".repeat(5 * 1024 * 1024) });
    expect(stream.messages).toHaveLength(0);
    expect(stream.err?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(stream.err?.metadata.get("x-request-id")[0]).toMatch(/^[0-9a-f-]{36}$/);

    // And the server keeps serving.
    expect((await grpcUnary(client, "getDeployment", { name: "after-big" })).res).toMatchObject({ name: "after-big" });
  });

  it("applies a configured request limit; grpc-js only refuses far beyond it", async () => {
    const small = createGrpcServer({ services, logger, maxReceiveMessageBytes: 2048 });
    const port = await small.listen("127.0.0.1", 0);
    const c = new DeploymentClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as AnyClient;
    try {
      // A GetDeploymentRequest is the name plus 3 bytes of framing.
      expect((await grpcUnary(c, "getDeployment", { name: "x".repeat(2045) })).res).toMatchObject({ name: "x".repeat(2045) });
      const over = await grpcUnary(c, "getDeployment", { name: "x".repeat(2046) });
      expect(over.err?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
      expect(over.err?.details).toBe("request message of 2049 bytes is larger than the limit of 2048 bytes");
      expect(over.err?.metadata.get("x-request-id")).toHaveLength(1);
      // Past grpc-js' own cap (a multiple of the limit) the message is refused
      // from its length prefix, unread: still RESOURCE_EXHAUSTED.
      const huge = await grpcUnary(c, "getDeployment", { name: "x".repeat(2048 * grpcHardLimitFactor) });
      expect(huge.err?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
      expect(huge.err?.details).toMatch(/larger than max/);
    } finally {
      c.close();
      await small.shutdown(1000);
    }
  });

  it("serves grpc.health.v1", async () => {
    const Health = grpc.makeGenericClientConstructor(healthServiceDefinition, "Health");
    const health = new Health(addr, grpc.credentials.createInsecure()) as unknown as AnyClient;
    try {
      const md = new grpc.Metadata();
      md.set("x-request-id", "req-health");
      const all = await grpcUnary(health, "check", { service: "" }, md);
      expect(all.res).toMatchObject({ status: "SERVING" });
      expect(metaString(all.header, "x-request-id")).toBe("req-health");
      const dep = await grpcUnary(health, "check", { service: "modeldeploy.v1.DeploymentService" });
      expect(dep.res).toMatchObject({ status: "SERVING" });
      const unknown = await grpcUnary(health, "check", { service: "nope.Service" });
      expect(unknown.err?.code).toBe(grpc.status.NOT_FOUND);
    } finally {
      health.close();
    }
  });

  for (const version of ["v1", "v1alpha"] as const) {
    it(`serves server reflection ${version}`, async () => {
      const require = createRequire(import.meta.url);
      const protoPath = require.resolve(`@grpc/reflection/build/proto/grpc/reflection/${version}/reflection.proto`);
      const pkg = grpc.loadPackageDefinition(
        protoLoader.loadSync(protoPath, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true }),
      ) as unknown as { grpc: { reflection: Record<string, { ServerReflection: grpc.ServiceClientConstructor }> } };
      const Ctor = pkg.grpc.reflection[version]?.ServerReflection;
      if (Ctor === undefined) throw new Error("no reflection client");
      const refl = new Ctor(addr, grpc.credentials.createInsecure());
      try {
        const call = (refl as unknown as { ServerReflectionInfo(): grpc.ClientDuplexStream<unknown, ReflectionResponse> }).ServerReflectionInfo();
        const responses: ReflectionResponse[] = [];
        const done = new Promise<void>((resolve, reject) => {
          call.on("data", (r: ReflectionResponse) => responses.push(r));
          call.on("end", () => resolve());
          call.on("error", reject);
        });
        call.write({ list_services: "*" });
        call.write({ file_containing_symbol: "modeldeploy.v1.DeploymentService" });
        call.write({ file_containing_symbol: "modeldeploy.v1.DeletionService.GetDeletionTask" });
        call.end();
        await done;
        expect(responses).toHaveLength(3);

        const names = responses[0]?.list_services_response?.service.map((s) => s.name) ?? [];
        expect(names).toEqual(expect.arrayContaining(["modeldeploy.v1.DeploymentService", "modeldeploy.v1.DeletionService", "grpc.health.v1.Health"]));

        const files = (responses[1]?.file_descriptor_response?.file_descriptor_proto ?? []).map((b) => fromBinary(FileDescriptorProtoSchema, b));
        const fileNames = files.map((f) => f.name);
        expect(fileNames).toEqual(
          expect.arrayContaining(["modeldeploy/v1/deployment_service.proto", "modeldeploy/v1/resources.proto", "google/protobuf/timestamp.proto"]),
        );
        // The descriptors are complete enough to rebuild the service.
        const registry = createFileRegistry(create(FileDescriptorSetSchema, { file: dependenciesFirst(files) }));
        const svc = registry.getService("modeldeploy.v1.DeploymentService");
        expect(svc?.methods.map((m) => m.name)).toContain("WatchDeployment");
        expect(svc?.methods.find((m) => m.name === "GetDeployment")?.idempotency).toBe(1);

        const delFiles = (responses[2]?.file_descriptor_response?.file_descriptor_proto ?? []).map((b) => fromBinary(FileDescriptorProtoSchema, b).name);
        expect(delFiles).toContain("modeldeploy/v1/deletion_service.proto");
      } finally {
        refl.close();
      }
    });
  }
});

interface ReflectionResponse {
  list_services_response?: { service: { name: string }[] };
  file_descriptor_response?: { file_descriptor_proto: Buffer[] };
  error_response?: { error_code: number; error_message: string };
}

function errorReason(md: grpc.Metadata | undefined): string | undefined {
  if (md === undefined) return undefined;
  const { unpacked } = statusDetails(md);
  const info = unpacked.find((m) => m?.$typeName === "google.rpc.ErrorInfo") as { reason?: string } | undefined;
  return info?.reason;
}

// ---------------------------------------------------------------------------

describe("connect server (Connect, gRPC-Web, gRPC over HTTP/1.1 and h2c)", () => {
  let server: ConnectServer;
  let base: string;
  const sessions: Http2SessionManager[] = [];

  beforeAll(async () => {
    server = createConnectServer({ services, logger });
    const port = await server.listen("127.0.0.1", 0);
    base = `http://127.0.0.1:${port}`;
  });

  afterAll(async () => {
    for (const s of sessions) s.abort();
    await server.close(2000);
  });

  const post = (path: string, body: string, headers: Record<string, string> = {}) =>
    fetch(`${base}${path}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body });

  it("answers Connect JSON over HTTP/1.1 and echoes x-request-id", async () => {
    const res = await post("/modeldeploy.v1.DeploymentService/GetDeployment", JSON.stringify({ name: "alpha" }), {
      "x-request-id": "req-connect-1",
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/json");
    expect(res.headers.get("x-request-id")).toBe("req-connect-1");
    expect(res.headers.get("trailer-x-trailer-test")).toBe("t1");
    expect(await res.json()).toEqual({ name: "alpha", uid: "req-connect-1", creator: "connect" });
    expect(logLines.find((l) => l["requestId"] === "req-connect-1")).toMatchObject({
      method: "GetDeployment",
      protocol: "connect",
      code: "ok",
    });
  });

  it("generates x-request-id when absent", async () => {
    const res = await post("/modeldeploy.v1.DeploymentService/GetDeployment", "{}");
    const id = res.headers.get("x-request-id");
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(((await res.json()) as { uid: string }).uid).toBe(id);
  });

  it("sends Connect errors as JSON with details and exactly one x-request-id", async () => {
    const res = await post("/modeldeploy.v1.DeploymentService/GetDeployment", JSON.stringify({ name: "BAD" }), {
      "x-request-id": "req-connect-err",
    });
    expect(res.status).toBe(400);
    expect(res.headers.get("x-request-id")).toBe("req-connect-err");
    const body = (await res.json()) as { code: string; message: string; details: { type: string; debug?: unknown }[] };
    expect(body.code).toBe("invalid_argument");
    expect(body.message).toBe("name is not an RFC 1123 label");
    expect(body.details.map((d) => d.type)).toEqual(expect.arrayContaining(["google.rpc.ErrorInfo", "google.rpc.BadRequest", "google.rpc.RequestInfo"]));
  });

  it("serves Connect GET for a NO_SIDE_EFFECTS method, and refuses GET otherwise", async () => {
    const msg = encodeURIComponent(JSON.stringify({ name: "via-get" }));
    const res = await fetch(`${base}/modeldeploy.v1.DeploymentService/GetDeployment?connect=v1&encoding=json&message=${msg}`, {
      headers: { "x-request-id": "req-get" },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-request-id")).toBe("req-get");
    expect(await res.json()).toMatchObject({ name: "via-get" });

    const create = await fetch(`${base}/modeldeploy.v1.DeploymentService/CreateDeployment?connect=v1&encoding=json&message=%7B%7D`);
    expect(create.status).toBe(405);
  });

  it("serves the Connect protocol over cleartext HTTP/2 (unary and streaming)", async () => {
    const sm = new Http2SessionManager(base);
    sessions.push(sm);
    const client = createClient(DeploymentService, createConnectTransport({ baseUrl: base, httpVersion: "2", sessionManager: sm }));
    let header: Headers | undefined;
    const res = await client.getDeployment({ name: "h2" }, { headers: { "x-request-id": "req-h2" }, onHeader: (h) => (header = h) });
    expect(res.name).toBe("h2");
    expect(res.uid).toBe("req-h2");
    expect(header?.get("x-request-id")).toBe("req-h2");

    const seqs: bigint[] = [];
    for await (const ev of client.watchDeployment({ name: "h2s" })) seqs.push(ev.sequence);
    expect(seqs).toEqual([1n, 2n, 3n]);

    const err = await client.getDeployment({ name: "missing" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.NotFound);
    expect(errorInfoOf(err)?.reason).toBe("DEPLOYMENT_NOT_FOUND");
    expect((err as ConnectError).metadata.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("serves gRPC-Web over HTTP/1.1 (unary, streaming, errors)", async () => {
    const client = createClient(DeploymentService, createGrpcWebTransport({ baseUrl: base, httpVersion: "1.1" }));
    let header: Headers | undefined;
    const res = await client.getDeployment({ name: "web" }, { headers: { "x-request-id": "req-web" }, onHeader: (h) => (header = h) });
    expect(res).toMatchObject({ name: "web", uid: "req-web", creator: "grpc-web" });
    expect(header?.get("x-request-id")).toBe("req-web");

    const seqs: bigint[] = [];
    for await (const ev of client.watchDeployment({ name: "webs" })) seqs.push(ev.sequence);
    expect(seqs).toEqual([1n, 2n, 3n]);

    const err = await client.getDeployment({ name: "BAD" }, { headers: { "x-request-id": "req-web-err" } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    const ce = err as ConnectError;
    expect(ce.code).toBe(Code.InvalidArgument);
    expect(ce.findDetails(ErrorInfoSchema)[0]?.reason).toBe("NAME_INVALID");
    expect(ce.findDetails(BadRequestSchema)[0]?.fieldViolations[0]?.field).toBe("name");
    expect(ce.findDetails(RequestInfoSchema)[0]?.requestId).toBe("req-web-err");
    // The client merges response headers and trailers into the error's metadata;
    // both carry the id.
    expect(ce.metadata.get("x-request-id")?.split(", ")).toContain("req-web-err");
    expect(new Set(ce.metadata.get("x-request-id")?.split(", "))).toEqual(new Set(["req-web-err"]));

    // Error before the first message of a stream.
    let streamErr: unknown;
    try {
      for await (const _ of client.watchDeployment({ name: "missing" }, { headers: { "x-request-id": "req-web-serr" } })) {
        // nothing
      }
    } catch (e) {
      streamErr = e;
    }
    expect((streamErr as ConnectError).code).toBe(Code.NotFound);
    expect(new Set((streamErr as ConnectError).metadata.get("x-request-id")?.split(", "))).toEqual(new Set(["req-web-serr"]));
  });

  it("applies Connect timeouts to the impl", async () => {
    slowAborted = deferred<unknown>();
    // The server's timer, not the client's: send the header without a client-side timeout.
    const res = await post("/modeldeploy.v1.DeploymentService/GetDeployment", JSON.stringify({ name: "slow" }), {
      "connect-timeout-ms": "150",
    });
    expect(((await res.json()) as { code: string }).code).toBe("deadline_exceeded");
    expect(res.headers.get("x-request-id")).toBeTruthy();
    expect(((await slowAborted.promise) as ConnectError).code).toBe(Code.DeadlineExceeded);
  });

  it("also speaks gRPC on the same port (h2c)", async () => {
    const sm = new Http2SessionManager(base);
    sessions.push(sm);
    const client = createClient(DeletionService, createGrpcTransport({ baseUrl: base, sessionManager: sm }));
    const task = await client.getDeletionTask({ taskId: "t-1" });
    expect(task.id).toBe("t-1");
  });

  it("answers a garbage body with invalid_argument, not a crash", async () => {
    const res = await post("/modeldeploy.v1.DeploymentService/GetDeployment", "{not json", { "x-request-id": "req-garbage" });
    expect(res.status).toBe(400);
    expect(res.headers.get("x-request-id")).toBe("req-garbage");
    expect(((await res.json()) as { code: string }).code).toBe("invalid_argument");

    const bin = await fetch(`${base}/modeldeploy.v1.DeploymentService/GetDeployment`, {
      method: "POST",
      headers: { "content-type": "application/proto" },
      body: new Uint8Array([0x0a, 0xff, 0xff, 0xff, 0xff, 0xff]),
    });
    // connect-es itself calls an unparseable *binary* body "internal"; the
    // request guard answers it as the gRPC port does.
    expect(bin.status).toBe(400);
    expect(bin.headers.get("content-type")).toBe("application/json");
    expect(await bin.json()).toMatchObject({
      code: "invalid_argument",
      message: "malformed modeldeploy.v1.GetDeploymentRequest message",
    });
    const after = await post("/modeldeploy.v1.DeploymentService/GetDeployment", "{}");
    expect(after.status).toBe(200);
    await after.arrayBuffer();
  });

  it("answers an oversized body with resource_exhausted", async () => {
    const body = JSON.stringify({ name: "x".repeat(5 * 1024 * 1024) });
    const res = await post("/modeldeploy.v1.DeploymentService/GetDeployment", body);
    expect(((await res.json()) as { code: string }).code).toBe("resource_exhausted");
    expect(res.headers.get("x-request-id")).toBeTruthy();
  });

  it("answers an unknown path with 404", async () => {
    const res = await post("/modeldeploy.v1.DeploymentService/NoSuchMethod", "{}");
    expect(res.status).toBe(404);
    expect(res.headers.get("x-request-id")).toBeTruthy();
    const res2 = await fetch(`${base}/nope`);
    expect(res2.status).toBe(404);
    await res2.arrayBuffer();
    await res.arrayBuffer();
  });

  it("serves GET /healthz", async () => {
    const res = await fetch(`${base}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "ok" });
  });

  it("answers CORS preflights and exposes x-request-id", async () => {
    const pre = await fetch(`${base}/modeldeploy.v1.DeploymentService/GetDeployment`, {
      method: "OPTIONS",
      headers: {
        origin: "https://dashboard.example",
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type, connect-protocol-version, x-request-id",
      },
    });
    expect(pre.status).toBe(204);
    expect(pre.headers.get("access-control-allow-origin")).toBe("*");
    const allowed = (pre.headers.get("access-control-allow-headers") ?? "").toLowerCase();
    for (const h of ["authorization", "content-type", "connect-protocol-version", "x-request-id", "x-grpc-web"]) {
      expect(allowed).toContain(h);
    }
    const res = await post("/modeldeploy.v1.DeploymentService/GetDeployment", "{}", { origin: "https://dashboard.example" });
    expect(res.headers.get("access-control-allow-origin")).toBe("*");
    const exposed = (res.headers.get("access-control-expose-headers") ?? "").toLowerCase();
    for (const h of ["x-request-id", "grpc-status", "grpc-message"]) expect(exposed).toContain(h);
    await res.arrayBuffer();
  });
});

// ---------------------------------------------------------------------------

describe("graceful shutdown", () => {
  const warnings: Error[] = [];
  const onWarning = (w: Error) => warnings.push(w);
  beforeAll(() => {
    process.on("warning", onWarning);
  });
  afterAll(() => {
    process.off("warning", onWarning);
    // Many open streams share the shutdown signals: no listener-leak warnings.
    expect(warnings.filter((w) => w.name === "MaxListenersExceededWarning")).toEqual([]);
  });

  it("connect server: ends open streams with UNAVAILABLE, closes idle keep-alive connections", async () => {
    const server = createConnectServer({ services, logger });
    const port = await server.listen("127.0.0.1", 0);
    const base = `http://127.0.0.1:${port}`;
    // An idle keep-alive connection (undici pools it).
    const warm = await fetch(`${base}/healthz`);
    await warm.arrayBuffer();

    const sm = new Http2SessionManager(base);
    const transports = [
      createConnectTransport({ baseUrl: base, httpVersion: "1.1" }),
      createConnectTransport({ baseUrl: base, httpVersion: "2", sessionManager: sm }),
    ];
    const watches = Array.from({ length: 16 }, (_, i) => {
      const name = `forever-connect-${i}`;
      const { aborted, started } = track(name);
      const client = createClient(DeploymentService, transports[i % 2] as (typeof transports)[0]);
      const events: bigint[] = [];
      const result = (async () => {
        try {
          for await (const ev of client.watchDeployment({ name })) events.push(ev.sequence);
          return undefined;
        } catch (e) {
          return e;
        }
      })();
      return { aborted, started, events, result };
    });
    await Promise.all(watches.map((w) => w.started));
    const t0 = performance.now();
    await server.close(10_000);
    expect(performance.now() - t0).toBeLessThan(5_000);
    for (const w of watches) {
      const err = await w.result;
      expect(w.events).toEqual([1n]);
      expect(err).toBeInstanceOf(ConnectError);
      expect((err as ConnectError).code).toBe(Code.Unavailable);
      await w.aborted;
    }
    sm.abort();
    await expect(fetch(`${base}/healthz`)).rejects.toThrow();
  });

  it("grpc server: NOT_SERVING, streams end with UNAVAILABLE, then closed", async () => {
    const server = createGrpcServer({ services, logger });
    const port = await server.listen("127.0.0.1", 0);
    const client = new DeploymentClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as AnyClient;
    try {
      const watches = Array.from({ length: 16 }, (_, i) => {
        const name = `forever-grpc-shutdown-${i}`;
        const { aborted, started } = track(name);
        return { aborted, started, outcome: grpcStream(client, "watchDeployment", { name }) };
      });
      await Promise.all(watches.map((w) => w.started));
      await server.shutdown(10_000);
      for (const w of watches) {
        const out = await w.outcome;
        expect(out.messages).toHaveLength(1);
        expect(out.err?.code).toBe(grpc.status.UNAVAILABLE);
        await w.aborted;
      }
    } finally {
      client.close();
    }
  });
});

describe("errors", () => {
  it("toConnectError maps domain errors and NATS failures, and everything else to INTERNAL", () => {
    const db = toConnectError(new DependencyUnavailableError("database", "database busy: 7 calls waiting"));
    expect(db.code).toBe(Code.Unavailable);
    expect(db.rawMessage).toBe("database unavailable: database busy: 7 calls waiting; retry");
    expect(errorInfoOf(db)).toMatchObject({ reason: "DATABASE_UNAVAILABLE", metadata: { dependency: "database" } });
    const queue = toConnectError(new Error("publish failed", { cause: new DependencyUnavailableError("queue", "no JetStream") }));
    expect(errorInfoOf(queue)).toMatchObject({ reason: "QUEUE_UNAVAILABLE", metadata: { dependency: "queue" } });
    const conflict = toConnectError(new WriteConflictError("a transaction collided with concurrent writes 5 times"));
    expect(conflict.code).toBe(Code.Aborted);
    expect(conflict.rawMessage).toMatch(/retry$/);
    expect(errorInfoOf(conflict)?.reason).toBe("WRITE_CONFLICT");
    // Postgres errors are classified by the db layer, by code; none is matched here by its text.
    expect(toConnectError(new Error("timeout exceeded when trying to connect")).code).toBe(Code.Internal);
    const agg = new AggregateError([Object.assign(new Error("connect ECONNREFUSED ::1:4222"), { code: "ECONNREFUSED" })], "");
    expect(errorInfoOf(toConnectError(agg))?.reason).toBe("DEPENDENCY_UNAVAILABLE");
    // NATS errors are classified by the queue layer; a raw one here is not read by its text.
    expect(toConnectError(Object.assign(new Error("closed connection"), { name: "ClosedConnectionError" })).code).toBe(Code.Internal);
    const queueDown = new DependencyUnavailableError("queue", "publishing: not connected to NATS (reconnecting)");
    const wrapped = new Error("publish failed", { cause: queueDown });
    expect(toConnectError(wrapped).code).toBe(Code.Unavailable);
    expect(errorInfoOf(toConnectError(wrapped))?.reason).toBe("QUEUE_UNAVAILABLE");
    const internal = toConnectError(Object.assign(new Error("duplicate key value violates unique constraint"), { code: "23505" }));
    expect(internal.code).toBe(Code.Internal);
    expect(internal.rawMessage).toBe("internal error");
    const ce = apiError(Code.NotFound, "x");
    expect(toConnectError(ce)).toBe(ce);
  });
});
