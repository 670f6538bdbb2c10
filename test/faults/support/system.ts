// A whole system of a case's own on the file's private servers: its own
// database and JetStream stream, the local runtime, API process(es) and
// workers, each a separate process, so that a case may kill, freeze and
// restart any of them without touching anything else on the machine.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import pg from "pg";
import { createApiKey } from "../../../src/db/api-keys.js";
import { createDb } from "../../../src/db/connect.js";
import { migrateToLatest } from "../../../src/db/migrate.js";
import { connectNats } from "../../../src/queue/nats.js";
import { writeSampleModel, type WrittenModel } from "../../helpers/onnx-model.js";
import { TEST_SECRET_KEY } from "../../helpers/services.js";
import { freePort } from "../../helpers/private-postgres.js";
import { atExit } from "./process-groups.js";
import { startRole, type Role } from "./role.js";
import type { Servers } from "./servers.js";

export interface SystemOptions {
  apis?: number;
  workers?: number;
  /** Extra environment for every role. */
  env?: Record<string, string>;
}

export interface FaultSystem {
  readonly servers: Servers;
  /** The test's own pool on the case's database (survives server restarts). */
  readonly db: pg.Pool;
  readonly databaseUrl: string;
  readonly dataDir: string;
  readonly env: Record<string, string>;
  readonly apiKey: string;
  readonly model: WrittenModel & { uri: string };
  readonly runtime: Role;
  readonly apis: Role[];
  readonly workers: Role[];
  /** Everything started, killed ones included. */
  roles(): Role[];
  /** gRPC host:port of every API process started. */
  grpcTargets(): string[];
  httpUrl(api?: Role): string;
  controlUrl(): string;
  startWorker(): Promise<Role>;
  startApi(): Promise<Role>;
  destroy(): Promise<void>;
}

/** Short leases and sweeps: a killed worker's task is taken over in seconds, not half a minute. */
export const FAULT_ENV: Record<string, string> = {
  MODELDEPLOY_GRPC_PORT: "0",
  MODELDEPLOY_HTTP_PORT: "0",
  MODELDEPLOY_GATEWAY_PORT: "0",
  MODELDEPLOY_RUNTIME_CONTROL_PORT: "0",
  MODELDEPLOY_HEALTH_POLL_MS: "100",
  MODELDEPLOY_TASK_LEASE_MS: "3000",
  MODELDEPLOY_TASK_ACK_WAIT_MS: "5000",
  MODELDEPLOY_SWEEP_INTERVAL_MS: "500",
  MODELDEPLOY_SWEEP_PENDING_AFTER_MS: "2000",
  MODELDEPLOY_SHUTDOWN_GRACE_MS: "2000",
  LOG_LEVEL: "info",
};

let systems = 0;

export async function startFaultSystem(servers: Servers, o: SystemOptions = {}): Promise<FaultSystem> {
  await servers.ensureUp();
  const n = ++systems;
  const stream = `FAULTS_${process.pid}_${n}`;
  const dataDir = mkdtempSync(path.join(tmpdir(), "md-faults-"));
  const forgetDataDir = atExit(() => rmSync(dataDir, { recursive: true, force: true }));
  const started: Role[] = [];
  const database = await servers.createDatabase();
  const pool = new pg.Pool({ connectionString: database.url, max: 4, connectionTimeoutMillis: 5000 });
  // The suite stops and freezes the server: a client that loses it must not crash the test process.
  pool.on("error", () => {});
  pool.on("connect", (c) => c.on("error", () => {}));
  const destroy = async () => {
    // The checks are done: no need for a graceful stop.
    await Promise.all(started.map((r) => r.stop(0)));
    await pool.end().catch(() => {});
    await database.drop();
    const nc = await connectNats(servers.nats.url, "faults-cleanup").catch(() => undefined);
    if (nc) {
      await (await jetstreamManager(nc)).streams.delete(stream).catch(() => {});
      await nc.close();
    }
    rmSync(dataDir, { recursive: true, force: true });
    forgetDataDir();
  };
  try {
    const setup = createDb({ url: database.url, poolMax: 1, connectTimeoutMs: 5000 });
    let apiKey: string;
    try {
      await migrateToLatest(setup);
      apiKey = (await createApiKey(setup, { workspace: "faults", principal: "fault-suite", scopes: ["deployments:read", "deployments:write"] })).key;
    } finally {
      await setup.destroy();
    }
    const model = await writeSampleModel(dataDir);
    let env: Record<string, string> = {
      ...(process.env as Record<string, string>),
      DATABASE_URL: database.url,
      NATS_URL: servers.nats.url,
      MODELDEPLOY_NATS_STREAM: stream,
      MODELDEPLOY_NATS_PREFIX: `faults${process.pid}n${n}`,
      MODELDEPLOY_DATA_DIR: dataDir,
      MODELDEPLOY_SECRET_KEY: TEST_SECRET_KEY,
      ...FAULT_ENV,
      ...o.env,
    };
    // A control port chosen here, so that workers know it before the runtime
    // has started: all processes start at once.
    const controlPort = await freePort();
    env = {
      ...env,
      MODELDEPLOY_RUNTIME_CONTROL_PORT: String(controlPort),
      MODELDEPLOY_RUNTIME_CONTROL_URL: `http://127.0.0.1:${controlPort}`,
    };
    const apis: Role[] = [];
    const workers: Role[] = [];
    let apiCount = 0;
    let workerCount = 0;
    const startApi = async () => {
      const r = await startRole(`api-${++apiCount}`, ["api"], env, "api listening");
      started.push(r);
      apis.push(r);
      return r;
    };
    const startWorker = async () => {
      const r = await startRole(`worker-${++workerCount}`, ["worker"], env, "worker started");
      started.push(r);
      workers.push(r);
      return r;
    };
    // All settled before going on, so that a failed start leaves none of the others running.
    const starts = await Promise.allSettled([
      startRole("runtime", ["runtime"], env, "local runtime listening").then((r) => (started.push(r), r)),
      ...Array.from({ length: o.apis ?? 1 }, () => startApi()),
      ...Array.from({ length: o.workers ?? 2 }, () => startWorker()),
    ]);
    const failed = starts.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) throw failed.reason;
    const runtime = (starts[0] as PromiseFulfilledResult<Role>).value;
    apis.sort((a, b) => a.name.localeCompare(b.name));
    workers.sort((a, b) => a.name.localeCompare(b.name));
    return {
      servers,
      db: pool,
      databaseUrl: database.url,
      dataDir,
      env,
      apiKey,
      model: { ...model, uri: `file://${model.path}` },
      runtime,
      apis,
      workers,
      roles: () => [...started],
      grpcTargets: () => apis.map((a) => String(a.ready["grpc"])),
      httpUrl: (api = apis[0]!) => `http://${String(api.ready["http"])}`,
      controlUrl: () => String(runtime.ready["control"]),
      startWorker,
      startApi,
      destroy,
    };
  } catch (err) {
    await destroy();
    throw err;
  }
}
