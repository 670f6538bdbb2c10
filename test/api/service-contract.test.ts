// The real DeploymentService over native gRPC (grpc-js) and Connect, on a real
// Postgres and NATS: calls are authenticated before anything else (also for
// the methods this release does not implement yet), and a model runtime that
// does not exist is refused before anything is written.
import { createRegistry, fromBinary } from "@bufbuild/protobuf";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bindService } from "../../src/api/call-wrapper.js";
import { createConnectServer, type ConnectServer } from "../../src/api/connect-server.js";
import { createDeploymentService } from "../../src/api/deployment-service.js";
import { errorInfoOf } from "../../src/api/errors.js";
import { createGrpcServer, type GrpcServer } from "../../src/api/grpc-server.js";
import { createApiKey } from "../../src/db/api-keys.js";
import { BadRequestSchema, ErrorInfoSchema, type BadRequest, type ErrorInfo } from "../../src/gen/google/rpc/error_details_pb.js";
import { StatusSchema } from "../../src/gen/google/rpc/status_pb.js";
import { DeploymentService, type CreateDeploymentResponse } from "../../src/gen/modeldeploy/v1/deployment_service_pb.js";
import { testApiDeps } from "../helpers/api-deps.js";
import { silentLogger } from "../../src/log.js";
import { createEventBus, type EventBus } from "../../src/queue/event-bus.js";
import { grpcClient, serverStream, unary, type GrpcClient } from "../helpers/grpc-client.js";
import { createTestDatabase, createTestQueue, type TestDatabase, type TestQueue } from "../helpers/services.js";

let tdb: TestDatabase;
let tq: TestQueue;
let bus: EventBus;
let grpcServer: GrpcServer;
let connectServer: ConnectServer;
let grpcDeployments: GrpcClient;
let connect: Client<typeof DeploymentService>;
let writerKey: string;
let readerKey: string;

const auth = (key: string) => ({ headers: { authorization: `Bearer ${key}` } });

beforeAll(async () => {
  tdb = await createTestDatabase();
  tq = await createTestQueue();
  bus = createEventBus(tq.nc, tq.prefix);
  const deps = testApiDeps(tdb.db, bus);
  const services = [bindService(DeploymentService, createDeploymentService(deps))];
  grpcServer = createGrpcServer({ services, logger: silentLogger });
  const grpcPort = await grpcServer.listen("127.0.0.1", 0);
  grpcDeployments = grpcClient(DeploymentService, `127.0.0.1:${grpcPort}`);
  connectServer = createConnectServer({ services, logger: silentLogger });
  const httpPort = await connectServer.listen("127.0.0.1", 0);
  connect = createClient(DeploymentService, createConnectTransport({ baseUrl: `http://127.0.0.1:${httpPort}`, httpVersion: "1.1" }));
  writerKey = (await createApiKey(tdb.db, { workspace: "acme", principal: "alice", scopes: ["deployments:read", "deployments:write"] })).key;
  readerKey = (await createApiKey(tdb.db, { workspace: "acme", principal: "rita", scopes: ["deployments:read"] })).key;
});

afterAll(async () => {
  grpcDeployments?.close();
  await grpcServer?.shutdown(1000);
  await connectServer?.close(1000);
  await bus?.close();
  await tq?.drop();
  await tdb?.drop();
});

/** Rows in every table a create writes. */
async function written(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const table of ["deployments", "revisions", "tasks", "events", "outbox"] as const) {
    const row = await tdb.db
      .selectFrom(table)
      .select((eb) => eb.fn.countAll<string>().as("n"))
      .executeTakeFirstOrThrow();
    out[table] = Number(row.n);
  }
  return out;
}

function grpcError(e: unknown): grpc.ServiceError {
  expect(e).toBeInstanceOf(Error);
  return e as grpc.ServiceError;
}

/** The google.rpc details of a grpc-js error, from grpc-status-details-bin. */
function grpcDetails(err: grpc.ServiceError): { info?: ErrorInfo; badRequest?: BadRequest } {
  const raw = err.metadata.get("grpc-status-details-bin")[0];
  expect(raw).toBeInstanceOf(Buffer);
  const registry = createRegistry(ErrorInfoSchema, BadRequestSchema);
  const details = fromBinary(StatusSchema, raw as Buffer).details.map((any) => anyUnpack(any, registry));
  return {
    info: details.find((d) => d?.$typeName === ErrorInfoSchema.typeName) as ErrorInfo | undefined,
    badRequest: details.find((d) => d?.$typeName === BadRequestSchema.typeName) as BadRequest | undefined,
  };
}

/** Outcome of a server stream that is expected to fail before its first message. */
function streamError(method: string, request: unknown, apiKey?: string): Promise<grpc.ServiceError> {
  return new Promise((resolve, reject) => {
    const call = serverStream<unknown>(grpcDeployments, method, request, apiKey);
    call.on("data", () => reject(new Error(`${method} sent a message`)));
    call.on("error", (e: grpc.ServiceError) => resolve(e));
    call.on("end", () => reject(new Error(`${method} ended without an error`)));
  });
}

describe("every method authenticates first", () => {
  // method → the scope it needs; a caller without it learns nothing, not even whether the name exists.
  const unaryMethods = [
    ["updateDeployment", { name: "x", scaling: { minReplicas: 1, maxReplicas: 1 } }, "write", grpc.status.NOT_FOUND],
    ["rollbackDeployment", { name: "x" }, "write", grpc.status.NOT_FOUND],
    ["cancelDeploymentTask", { taskId: "t" }, "write", grpc.status.NOT_FOUND],
    ["listDeploymentRevisions", { name: "x" }, "read", grpc.status.NOT_FOUND],
    ["listDeploymentTasks", { name: "x" }, "read", grpc.status.NOT_FOUND],
  ] as const;

  for (const [method, request, scope, allowedCode] of unaryMethods) {
    it(`${method}: UNAUTHENTICATED without a key, ${scope === "write" ? "PERMISSION_DENIED without write scope, " : ""}then an answer`, async () => {
      const none = grpcError(await unary(grpcDeployments, method, request).catch((e: unknown) => e));
      expect(none.code).toBe(grpc.status.UNAUTHENTICATED);
      expect(grpcDetails(none).info?.reason).toBe("API_KEY_MISSING");
      expect(none.metadata.get("x-request-id")).toHaveLength(1);

      const wrong = grpcError(await unary(grpcDeployments, method, request, "mdk_not-a-key").catch((e: unknown) => e));
      expect(wrong.code).toBe(grpc.status.UNAUTHENTICATED);
      expect(grpcDetails(wrong).info?.reason).toBe("API_KEY_INVALID");

      if (scope === "write") {
        const asReader = grpcError(await unary(grpcDeployments, method, request, readerKey).catch((e: unknown) => e));
        expect(asReader.code).toBe(grpc.status.PERMISSION_DENIED);
        expect(grpcDetails(asReader).info?.metadata["requiredScope"]).toBe("deployments:write");
      }

      const allowed = grpcError(await unary(grpcDeployments, method, request, writerKey).catch((e: unknown) => e));
      expect(allowed.code).toBe(allowedCode);
    });
  }
});

describe("server streams authenticate first", () => {
  it("watchDeployments: UNAUTHENTICATED without a key, a refusal of a bad cursor with one", async () => {
    const none = await streamError("watchDeployments", {});
    expect(none.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(none.metadata.get("x-request-id")).toHaveLength(1);
    expect((await streamError("watchDeployments", {}, "mdk_not-a-key")).code).toBe(grpc.status.UNAUTHENTICATED);
    const allowed = await streamError("watchDeployments", { afterCursor: "x" }, readerKey);
    expect(allowed.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(grpcDetails(allowed).info?.reason).toBe("CURSOR_INVALID");
  });

  it("answers the same over Connect", async () => {
    await expect(connect.updateDeployment({ name: "x" })).rejects.toMatchObject({ code: Code.Unauthenticated });
    await expect(connect.listAcceleratorTypes({})).rejects.toMatchObject({ code: Code.Unauthenticated });
    await expect(connect.cancelDeploymentTask({ taskId: "t" }, auth(readerKey))).rejects.toMatchObject({ code: Code.PermissionDenied });
    await expect(connect.updateDeployment({ name: "x" }, auth(writerKey))).rejects.toMatchObject({ code: Code.InvalidArgument });
    let streamErr: unknown;
    try {
      for await (const _ of connect.watchDeployments({})) {
        // nothing arrives
      }
    } catch (e) {
      streamErr = e;
    }
    expect(streamErr).toBeInstanceOf(ConnectError);
    expect((streamErr as ConnectError).code).toBe(Code.Unauthenticated);
  });
});

describe("ModelSource.runtime", () => {
  const request = (runtime: string, suffix: string) => ({
    model: { name: "acme/tiny-linear", uri: "file:///models/tiny.onnx", runtime },
    scaling: { minReplicas: 1, maxReplicas: 1 },
    suffix,
  });

  it("refuses a runtime that does not exist, over gRPC, and writes nothing", async () => {
    const before = await written();
    const md = new grpc.Metadata();
    md.set("authorization", `Bearer ${writerKey}`);
    md.set("x-request-id", "req-runtime-vllm");
    const err = grpcError(
      await new Promise((resolve) => {
        const fn = grpcDeployments["createDeployment"] as (req: unknown, md: grpc.Metadata, cb: (e: unknown) => void) => void;
        fn.call(grpcDeployments, request("vllm", "vllm"), md, resolve);
      }),
    );
    expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err.details).toContain('runtime "vllm" is not supported');
    expect(err.details).toContain('"onnx"');
    expect(err.metadata.get("x-request-id")).toEqual(["req-runtime-vllm"]);
    const { info, badRequest } = grpcDetails(err);
    expect(info).toMatchObject({
      reason: "MODEL_SOURCE_INVALID",
      domain: "modeldeploy",
      metadata: { field: "model.runtime", requestedRuntime: "vllm", supportedRuntimes: "onnx" },
    });
    expect(badRequest?.fieldViolations).toEqual([expect.objectContaining({ field: "model.runtime", reason: "MODEL_SOURCE_INVALID" })]);
    expect(await written()).toEqual(before);
  });

  it("refuses it over Connect too, whatever the case, and writes nothing", async () => {
    const before = await written();
    for (const runtime of ["ONNX", "triton"]) {
      const err = await connect.createDeployment(request(runtime, "other"), auth(writerKey)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ConnectError);
      expect((err as ConnectError).code).toBe(Code.InvalidArgument);
      expect(errorInfoOf(err)).toMatchObject({ reason: "MODEL_SOURCE_INVALID", metadata: { requestedRuntime: runtime } });
      expect((err as ConnectError).findDetails(BadRequestSchema)[0]?.fieldViolations[0]?.field).toBe("model.runtime");
    }
    expect(await written()).toEqual(before);
  });

  it("accepts the default (empty) and onnx", async () => {
    const before = await written();
    const empty = await unary<CreateDeploymentResponse>(grpcDeployments, "createDeployment", request("", "default"), writerKey);
    expect(empty.deployment?.name).toBe("tiny-linear-default");
    expect(empty.deployment?.model?.runtime).toBe("");
    const onnx = await connect.createDeployment(request("onnx", "onnx"), auth(writerKey));
    expect(onnx.deployment?.name).toBe("tiny-linear-onnx");
    expect(onnx.deployment?.model?.runtime).toBe("onnx");
    const after = await written();
    expect(after["deployments"]).toBe(before["deployments"]! + 2);
    expect(after["tasks"]).toBe(before["tasks"]! + 2);
  });
});
