// grpc.health.v1.Health on the grpc-js server (src/api/grpc-health.ts),
// called by a plain grpc-js client built from our generated descriptors.
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createGrpcServer, grpcServiceDefinition, type GrpcServer } from "../../src/api/grpc-server.js";
import { ServingStatus } from "../../src/api/grpc-health.js";
import { Health, type HealthCheckResponse, type HealthListResponse } from "../../src/gen/grpc/health/v1/health_pb.js";
import { DeletionService } from "../../src/gen/modeldeploy/v1/deletion_service_pb.js";
import { DeploymentService } from "../../src/gen/modeldeploy/v1/deployment_service_pb.js";
import { createLogger } from "../../src/log.js";

type HealthClient = grpc.Client & {
  check(req: { service: string }, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res: HealthCheckResponse) => void): grpc.ClientUnaryCall;
  list(req: object, cb: (err: grpc.ServiceError | null, res: HealthListResponse) => void): grpc.ClientUnaryCall;
  watch(req: { service: string }): grpc.ClientReadableStream<HealthCheckResponse>;
};

const HealthClientCtor = grpc.makeGenericClientConstructor(grpcServiceDefinition(Health), "Health");
const logger = createLogger({ level: "error", write: () => {} });

function startServer(): GrpcServer {
  return createGrpcServer({
    services: [
      { service: DeploymentService, impl: {} },
      { service: DeletionService, impl: {} },
    ],
    logger,
  });
}

function check(client: HealthClient, service: string, md = new grpc.Metadata()) {
  return new Promise<{ res?: HealthCheckResponse; err?: grpc.ServiceError; header?: grpc.Metadata }>((resolve) => {
    let header: grpc.Metadata | undefined;
    const call = client.check({ service }, md, (err, res) => resolve(err ? { err, header } : { res, header }));
    call.on("metadata", (m) => (header = m));
  });
}

/** A Watch call whose statuses are collected; `next(n)` waits until n have arrived. */
function watch(client: HealthClient, service: string) {
  const call = client.watch({ service });
  const statuses: ServingStatus[] = [];
  const waiters: { n: number; resolve: () => void }[] = [];
  call.on("data", (m: HealthCheckResponse) => {
    statuses.push(m.status);
    for (const w of waiters.filter((w) => statuses.length >= w.n)) w.resolve();
  });
  const ended = new Promise<grpc.StatusObject>((resolve) => call.on("status", resolve));
  call.on("error", () => {}); // the status is read from "status"
  const received = (n: number) =>
    new Promise<ServingStatus[]>((resolve) => {
      if (statuses.length >= n) resolve(statuses.slice(0, n));
      else waiters.push({ n, resolve: () => resolve(statuses.slice(0, n)) });
    });
  return { call, statuses, received, ended };
}

describe("grpc.health.v1", () => {
  let server: GrpcServer;
  let client: HealthClient;

  beforeAll(async () => {
    server = startServer();
    const port = await server.listen("127.0.0.1", 0);
    client = new HealthClientCtor(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as HealthClient;
  });

  afterAll(async () => {
    client.close();
    await server.shutdown(1000);
  });

  it("Check: the server and each service SERVING, an unknown service NOT_FOUND, with an x-request-id", async () => {
    const md = new grpc.Metadata();
    md.set("x-request-id", "req-health-1");
    const all = await check(client, "", md);
    expect(all.res?.status).toBe(ServingStatus.SERVING);
    expect(all.header?.get("x-request-id")).toEqual(["req-health-1"]);
    expect((await check(client, "modeldeploy.v1.DeletionService")).res?.status).toBe(ServingStatus.SERVING);
    const unknown = await check(client, "nope.Service");
    expect(unknown.err?.code).toBe(grpc.status.NOT_FOUND);
    expect(unknown.err?.details).toContain("nope.Service");
    expect(unknown.header?.get("x-request-id")).toHaveLength(1);
  });

  it("List: every known service with its status", async () => {
    const res = await new Promise<HealthListResponse>((resolve, reject) => client.list({}, (err, r) => (err ? reject(err) : resolve(r))));
    expect(Object.fromEntries(Object.entries(res.statuses).map(([k, v]) => [k, v.status]))).toEqual({
      "": ServingStatus.SERVING,
      "modeldeploy.v1.DeploymentService": ServingStatus.SERVING,
      "modeldeploy.v1.DeletionService": ServingStatus.SERVING,
    });
  });

  it("Watch: the current status, then each change (not a repeat of the same status)", async () => {
    const name = "modeldeploy.v1.DeploymentService";
    const w = watch(client, name);
    try {
      expect(await w.received(1)).toEqual([ServingStatus.SERVING]);
      server.health.setStatus(name, ServingStatus.NOT_SERVING);
      server.health.setStatus(name, ServingStatus.NOT_SERVING);
      server.health.setStatus(name, ServingStatus.SERVING);
      expect(await w.received(3)).toEqual([ServingStatus.SERVING, ServingStatus.NOT_SERVING, ServingStatus.SERVING]);
      expect((await check(client, name)).res?.status).toBe(ServingStatus.SERVING);
    } finally {
      w.call.cancel();
    }
    expect((await w.ended).code).toBe(grpc.status.CANCELLED);
  });

  it("Watch of an unknown service: SERVICE_UNKNOWN and the call stays open until the service becomes known", async () => {
    const w = watch(client, "later.Service");
    try {
      expect(await w.received(1)).toEqual([ServingStatus.SERVICE_UNKNOWN]);
      server.health.setStatus("later.Service", ServingStatus.SERVING);
      expect(await w.received(2)).toEqual([ServingStatus.SERVICE_UNKNOWN, ServingStatus.SERVING]);
      expect(server.health.status("later.Service")).toBe(ServingStatus.SERVING);
    } finally {
      w.call.cancel();
    }
  });
});

describe("grpc.health.v1 at shutdown", () => {
  it("open Watch calls see NOT_SERVING, then end with UNAVAILABLE, and do not hold the graceful shutdown", async () => {
    const server = startServer();
    const port = await server.listen("127.0.0.1", 0);
    const client = new HealthClientCtor(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as HealthClient;
    try {
      const whole = watch(client, "");
      const unknown = watch(client, "nope.Service");
      await Promise.all([whole.received(1), unknown.received(1)]);
      // A grace far past the test's timeout: the shutdown resolves only if the watches end.
      await server.shutdown(600_000);
      expect(await whole.ended).toMatchObject({ code: grpc.status.UNAVAILABLE, details: "server is shutting down, reconnect" });
      expect(whole.statuses).toEqual([ServingStatus.SERVING, ServingStatus.NOT_SERVING]);
      expect((await unknown.ended).code).toBe(grpc.status.UNAVAILABLE);
      expect(unknown.statuses).toEqual([ServingStatus.SERVICE_UNKNOWN]);
    } finally {
      client.close();
    }
  });
});
