// Calls whose client went away, or whose deadline passed, stop costing: while
// the API's only database connection is busy, reads wait in the read batcher
// (at most two statements for the connection) and their queued creates are
// never written.
// Calls that wait in turn are served once the connection frees.
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bindService } from "../../src/api/call-wrapper.js";
import { createDeploymentService } from "../../src/api/deployment-service.js";
import { createGrpcServer, type GrpcServer } from "../../src/api/grpc-server.js";
import { createApiKey } from "../../src/db/api-keys.js";
import { createDb, poolStats, type Db } from "../../src/db/connect.js";
import { DeploymentService } from "../../src/gen/modeldeploy/v1/deployment_service_pb.js";
import { silentLogger } from "../../src/log.js";
import { createEventBus, type EventBus } from "../../src/queue/event-bus.js";
import { testApiDeps } from "../helpers/api-deps.js";
import { grpcClient, type GrpcClient } from "../helpers/grpc-client.js";
import { createTestDatabase, createTestQueue, waitFor, type TestDatabase, type TestQueue } from "../helpers/services.js";

let tdb: TestDatabase;
let tq: TestQueue;
let bus: EventBus;
/** The API's database: one connection. */
let db: Db;
let server: GrpcServer;
let client: GrpcClient;
let key: string;

beforeAll(async () => {
  tdb = await createTestDatabase();
  tq = await createTestQueue();
  bus = createEventBus(tq.nc, tq.prefix);
  db = createDb({ url: tdb.url, poolMax: 1, connectTimeoutMs: 60_000, maxWaiting: 1000 });
  const services = [bindService(DeploymentService, createDeploymentService(testApiDeps(db, bus)))];
  server = createGrpcServer({ services, logger: silentLogger });
  client = grpcClient(DeploymentService, `127.0.0.1:${await server.listen("127.0.0.1", 0)}`);
  key = (await createApiKey(tdb.db, { workspace: "acme", principal: "alice", scopes: ["deployments:read", "deployments:write"] })).key;
});

afterAll(async () => {
  client?.close();
  await server?.shutdown(1000);
  await db?.destroy();
  await bus?.close();
  await tq?.drop();
  await tdb?.drop();
});

function start(method: string, request: unknown, deadline?: number): { call: grpc.Call; done: Promise<grpc.status> } {
  const md = new grpc.Metadata();
  md.set("authorization", `Bearer ${key}`);
  let call!: grpc.Call;
  const done = new Promise<grpc.status>((resolve) => {
    call = (client[method] as (req: unknown, md: grpc.Metadata, o: grpc.CallOptions, cb: (err: grpc.ServiceError | null) => void) => grpc.Call)(
      request,
      md,
      deadline === undefined ? {} : { deadline },
      (err) => resolve(err ? err.code : grpc.status.OK),
    );
  });
  return { call, done };
}

/** Holds the API's only connection until the returned function is called. */
async function holdConnection(): Promise<() => Promise<void>> {
  let release!: () => void;
  const held = db.connection().execute(() => new Promise<void>((r) => (release = r)));
  await waitFor("connection held", () => poolStats(db)?.active === 1);
  return async () => {
    release();
    await held;
  };
}

const deployments = async () =>
  Number(
    (
      await tdb.db
        .selectFrom("deployments")
        .select((eb) => eb.fn.countAll<string>().as("n"))
        .executeTakeFirstOrThrow()
    ).n,
  );

const createRequest = { model: { name: "acme/tiny-linear", uri: "file:///nonexistent/noop.onnx" }, scaling: { minReplicas: 1, maxReplicas: 1 } };

describe("cancelled calls", () => {
  it("holds at most two read statements for the connection, and answers cancelled reads at once", async () => {
    // The API key is cached after one call: the reads below wait for the connection only for their own query.
    expect(await start("getDeployment", { name: "nothing-here" }).done).toBe(grpc.status.NOT_FOUND);
    const release = await holdConnection();
    try {
      const calls = Array.from({ length: 300 }, () => start("getDeployment", { name: "nothing-here" }));
      // Two statements wait for the connection; the other reads wait in the read batcher (src/db/coalescer.ts).
      await waitFor("reads queued", () => poolStats(db)?.waiting === 2);
      for (const c of calls) c.call.cancel();
      for (const c of calls) expect(await c.done).toBe(grpc.status.CANCELLED);
      expect(poolStats(db)?.waiting).toBe(2);
    } finally {
      await release();
    }
    await waitFor("queue empty", () => poolStats(db)?.waiting === 0);
    expect(await start("getDeployment", { name: "nothing-here" }).done).toBe(grpc.status.NOT_FOUND);
  });

  it("never writes creates whose deadline passed while they waited", async () => {
    // Key cached (as above): the creates wait in the create batcher, behind the one batch gone out for the connection.
    expect(await start("getDeployment", { name: "nothing-here" }).done).toBe(grpc.status.NOT_FOUND);
    const before = await deployments();
    const release = await holdConnection();
    let timedOut: grpc.status[];
    try {
      const calls = Array.from({ length: 200 }, () => start("createDeployment", createRequest, Date.now() + 1000));
      timedOut = await Promise.all(calls.map((c) => c.done));
    } finally {
      await release();
    }
    expect(timedOut.every((code) => code === grpc.status.DEADLINE_EXCEEDED)).toBe(true);
    await waitFor("pool idle", () => poolStats(db)?.active === 0 && poolStats(db)?.waiting === 0);
    // At most the one batch that had gone out for the connection before the deadline.
    expect((await deployments()) - before).toBeLessThanOrEqual(1);
    expect(await start("createDeployment", createRequest).done).toBe(grpc.status.OK);
  });
});
