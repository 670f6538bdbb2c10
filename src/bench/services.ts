// The system under test, started the way an operator starts it: the
// `modeldeploy` CLI's roles (api, worker, runtime, start) as separate
// processes, against the bench's own database and stream on the shared
// Postgres and NATS servers.
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { createServer } from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { jetstreamManager } from "@nats-io/jetstream";
import pg from "pg";
import { createApiKey } from "../db/api-keys.js";
import { createDb, type Db } from "../db/connect.js";
import { migrateToLatest } from "../db/migrate.js";
import { SCOPES } from "../domain/types.js";
import { connectNats } from "../queue/nats.js";
import { CONSUMER_NAME } from "../queue/task-queue.js";
import { newSecretKey } from "../secrets/token-seal.js";
import { startProcess, type Proc } from "./processes.js";

export const ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const CLI = path.join(ROOT, "bin/modeldeploy.js");
export const DIST = path.join(ROOT, "dist");

export const randomName = (prefix: string) => `${prefix}_${randomBytes(5).toString("hex")}`;

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** What is still to be dropped (databases, streams), for a bench cut short by a signal. */
const pending = new Set<() => Promise<void>>();

export async function cleanupAll(): Promise<void> {
  await Promise.all([...pending].map((f) => f().catch(() => {})));
}

function once(f: () => Promise<void>): () => Promise<void> {
  let done: Promise<void> | undefined;
  const run = () => {
    pending.delete(run);
    return (done ??= f());
  };
  pending.add(run);
  return run;
}

export interface BenchDatabase {
  url: string;
  db: Db;
  drop(): Promise<void>;
}

/** A new database with the schema, on the server of adminUrl; drop() removes it. */
export async function createBenchDatabase(adminUrl: string): Promise<BenchDatabase> {
  const name = randomName("mdbench");
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`create database ${name}`);
  await admin.end();
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  const url = u.toString();
  const db = createDb({ url, poolMax: 4, connectTimeoutMs: 5000 });
  const drop = once(async () => {
    await db.destroy().catch(() => {});
    const c = new pg.Client({ connectionString: adminUrl });
    await c.connect();
    await c.query(`drop database if exists ${name} with (force)`);
    await c.end();
  });
  await migrateToLatest(db);
  return { url, db, drop };
}

export interface Api {
  proc: Proc;
  grpcUrl: string;
  httpUrl: string;
}

export interface Runtime {
  proc: Proc;
  controlUrl: string;
}

/** One system: a database, a stream, an API key; its processes are started on demand. */
/** Extra node flags for the API process only (e.g. BENCH_API_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" to profile it). */
function apiNodeArgs(): string[] {
  return (process.env["BENCH_API_NODE_ARGS"] ?? "").split(" ").filter(Boolean);
}

export interface BenchSystem {
  readonly database: BenchDatabase;
  readonly natsUrl: string;
  readonly stream: string;
  readonly apiKey: string;
  env(extra?: Record<string, string>): Record<string, string>;
  startApi(): Promise<Api>;
  startWorker(o: { runtime: "noop" } | { runtime: "local"; controlUrl: string }): Promise<Proc>;
  startRuntime(): Promise<Runtime>;
  /** Resolves once `count` worker pulls wait on the stream's consumer (or after timeoutMs). */
  waitForPulls(count: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export async function createBenchSystem(o: { adminUrl: string; natsUrl: string }): Promise<BenchSystem> {
  const database = await createBenchDatabase(o.adminUrl);
  const stream = randomName("MDBENCH").toUpperCase();
  const prefix = randomName("mdbench");
  const { key } = await createApiKey(database.db, { workspace: "bench", principal: "bench", scopes: [...SCOPES] });
  const nc = await connectNats(o.natsUrl, "modeldeploy-bench");
  const dirs: string[] = [];
  const env = (extra: Record<string, string> = {}): Record<string, string> => ({
    ...(process.env as Record<string, string>),
    DATABASE_URL: database.url,
    // Benchmarks store no tokens; a fresh key per run satisfies the api and worker roles.
    MODELDEPLOY_SECRET_KEY: newSecretKey(),
    NATS_URL: o.natsUrl,
    MODELDEPLOY_NATS_STREAM: stream,
    MODELDEPLOY_NATS_PREFIX: prefix,
    MODELDEPLOY_SHUTDOWN_GRACE_MS: "3000",
    // Per-call and per-task logs off: the figures are the system's work, not stderr's.
    LOG_LEVEL: "warn",
    ...extra,
  });
  const system: BenchSystem = {
    database,
    natsUrl: o.natsUrl,
    stream,
    apiKey: key,
    env,
    async startApi() {
      const [grpcPort, httpPort] = [await freePort(), await freePort()];
      const proc = startProcess(
        "api",
        process.execPath,
        [...apiNodeArgs(), CLI, "api"],
        env({ MODELDEPLOY_GRPC_PORT: String(grpcPort), MODELDEPLOY_HTTP_PORT: String(httpPort) }),
      );
      const httpUrl = `http://127.0.0.1:${httpPort}`;
      for (;;) {
        if (proc.child.exitCode !== null) throw new Error(`api exited (${proc.child.exitCode}):\n${proc.output()}`);
        const ok = await fetch(`${httpUrl}/healthz`).then(
          (r) => r.ok,
          () => false,
        );
        if (ok) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      return { proc, grpcUrl: `http://127.0.0.1:${grpcPort}`, httpUrl };
    },
    async startWorker(w) {
      const extra: Record<string, string> =
        w.runtime === "noop" ? { MODELDEPLOY_RUNTIME: "noop" } : { MODELDEPLOY_RUNTIME: "local", MODELDEPLOY_RUNTIME_CONTROL_URL: w.controlUrl };
      return startProcess("worker", process.execPath, [CLI, "worker"], env(extra));
    },
    async startRuntime() {
      const [gateway, control] = [await freePort(), await freePort()];
      const proc = startProcess(
        "runtime",
        process.execPath,
        [CLI, "runtime"],
        env({
          LOG_LEVEL: "info",
          MODELDEPLOY_GATEWAY_PORT: String(gateway),
          MODELDEPLOY_RUNTIME_CONTROL_PORT: String(control),
          MODELDEPLOY_DATA_DIR: dirs[dirs.push(mkdtempSync(path.join(tmpdir(), "md-bench-runtime-"))) - 1]!,
        }),
      );
      await proc.waitFor(/local runtime listening/);
      return { proc, controlUrl: `http://127.0.0.1:${control}` };
    },
    async waitForPulls(count, timeoutMs = 15_000) {
      const jsm = await jetstreamManager(nc);
      const end = Date.now() + timeoutMs;
      while (Date.now() < end) {
        const info = await jsm.consumers.info(stream, CONSUMER_NAME).catch(() => undefined);
        if (info && info.num_waiting >= count) return;
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    close: once(async () => {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.delete(stream).catch(() => {});
      await nc.drain().catch(() => {});
      await database.drop();
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    }),
  };
  return system;
}
