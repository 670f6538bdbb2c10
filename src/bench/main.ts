// npm run bench: the speed and memory targets, each measured in one
// run on this machine against real Postgres and NATS (DATABASE_URL/NATS_URL,
// default the local servers). Prints a table and exits non-zero when a target
// is missed.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import { jetstreamManager } from "@nats-io/jetstream";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import pg from "pg";
import { startApiRole } from "../app/api-role.js";
import type { Infrastructure } from "../app/infrastructure.js";
import { startWorkerRole } from "../app/worker-role.js";
import { grpcServiceDefinition } from "../api/grpc-server.js";
import { loadConfig, type Config } from "../config.js";
import { createApiKey } from "../db/api-keys.js";
import { applyChange } from "../db/changes.js";
import { createDb } from "../db/connect.js";
import { migrateToLatest } from "../db/migrate.js";
import { transact } from "../db/transact.js";
import { DeploymentService } from "../gen/modeldeploy/v1/deployment_service_pb.js";
import { silentLogger } from "../log.js";
import { connectNats } from "../queue/nats.js";
import { ensureTaskQueue } from "../queue/task-queue.js";
import { createNoopDriver } from "../runtime/noop-driver.js";

const DATABASE_URL = process.env["DATABASE_URL"] ?? "postgres://postgres@127.0.0.1:5432/postgres";
const NATS_URL = process.env["NATS_URL"] ?? "nats://127.0.0.1:4222";
const CREATE_SECONDS = Number(process.env["BENCH_SECONDS"] ?? 10);
const CONCURRENCY = Number(process.env["BENCH_CONCURRENCY"] ?? 64);

interface Row { figure: string; value: string; target: string; ok: boolean }
const rows: Row[] = [];

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
};

async function withBenchDatabase<T>(fn: (url: string) => Promise<T>): Promise<T> {
  const name = `mdbench_${randomBytes(4).toString("hex")}`;
  const admin = new pg.Client({ connectionString: DATABASE_URL });
  await admin.connect();
  await admin.query(`create database ${name}`);
  const u = new URL(DATABASE_URL);
  u.pathname = `/${name}`;
  try {
    return await fn(u.toString());
  } finally {
    await admin.query(`drop database if exists ${name} with (force)`);
    await admin.end();
  }
}

async function rawTransactionRate(url: string, seconds: number): Promise<number> {
  const pool = new pg.Pool({ connectionString: url, max: 32 });
  await pool.query("create table bench_raw (id text primary key, body jsonb); create table bench_raw2 (id text, n int)");
  let n = 0;
  const end = Date.now() + seconds * 1000;
  await Promise.all(Array.from({ length: 32 }, async () => {
    while (Date.now() < end) {
      const c = await pool.connect();
      try {
        const id = randomBytes(8).toString("hex");
        await c.query("begin");
        await c.query("insert into bench_raw values ($1, $2)", [id, { a: 1 }]);
        await c.query("insert into bench_raw2 values ($1, 1)", [id]);
        await c.query("commit");
        n++;
      } finally {
        c.release();
      }
    }
  }));
  await pool.end();
  return n / seconds;
}

async function main(): Promise<number> {
  await withBenchDatabase(async (url) => {
    const config: Config = {
      ...loadConfig({}),
      databaseUrl: url,
      natsUrl: NATS_URL,
      databasePoolMax: 20,
      natsStream: `MDBENCH_${randomBytes(4).toString("hex").toUpperCase()}`,
      natsSubjectPrefix: `mdbench_${randomBytes(4).toString("hex")}`,
      grpcPort: 0,
      httpPort: 0,
      runtimeDriver: "noop",
      workerConcurrency: 16,
      healthPollMs: 10,
    };
    const db = createDb({ url, poolMax: config.databasePoolMax, connectTimeoutMs: 5000 });
    await migrateToLatest(db);
    const nc = await connectNats(NATS_URL, "modeldeploy-bench");
    await ensureTaskQueue(nc, { stream: config.natsStream, subjectPrefix: config.natsSubjectPrefix, ackWaitMs: 30_000, maxDeliver: 10 });
    const infra: Infrastructure = { db, nc, databaseUrl: url, natsUrl: NATS_URL, embedded: { postgres: false, nats: false }, close: async () => {} };
    const api = await startApiRole(config, infra, silentLogger);
    const worker = await startWorkerRole(config, infra, createNoopDriver(), silentLogger);
    const { key } = await createApiKey(db, { workspace: "bench", principal: "bench", scopes: ["deployments:read", "deployments:write"] });
    try {
      // 1. CreateDeployment over gRPC while the worker drains the queue.
      const Ctor = grpc.makeGenericClientConstructor(grpcServiceDefinition(DeploymentService), "DeploymentService");
      const clients = Array.from({ length: 4 }, () => new Ctor(`127.0.0.1:${api.grpcPort}`, grpc.credentials.createInsecure()) as unknown as Record<string, Function> & grpc.Client);
      const md = new grpc.Metadata();
      md.set("authorization", `Bearer ${key}`);
      const latencies: number[] = [];
      let errors = 0;
      const call = (i: number) => new Promise<void>((resolve) => {
        const t0 = performance.now();
        clients[i % clients.length]!["createDeployment"]!({
          model: { name: "bench/tiny", uri: "file:///bench/model.onnx" },
          scaling: { minReplicas: 1, maxReplicas: 1 },
        }, md, (err: unknown) => {
          if (err) errors++;
          else latencies.push(performance.now() - t0);
          resolve();
        });
      });
      const end = Date.now() + CREATE_SECONDS * 1000;
      let issued = 0;
      const started = performance.now();
      await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
        while (Date.now() < end) await call(issued++);
      }));
      const elapsed = (performance.now() - started) / 1000;
      const rate = latencies.length / elapsed;
      rows.push({ figure: `CreateDeployment over gRPC (${CONCURRENCY} in flight, worker draining)`, value: `${rate.toFixed(0)} calls/s, p50 ${pct(latencies, 50).toFixed(1)} ms, p99 ${pct(latencies, 99).toFixed(1)} ms, ${errors} errors`, target: "≥ 1000 calls/s", ok: rate >= 1000 && errors === 0 });
      const done = await db.selectFrom("tasks").select((eb) => eb.fn.countAll<string>().as("n")).where("status", "=", "COMPLETED").executeTakeFirstOrThrow();
      rows.push({ figure: "  tasks completed by the worker meanwhile (no-op runtime)", value: `${done.n} of ${latencies.length}`, target: "(context)", ok: true });
      for (const c of clients) c.close();

      // 2. Commit → WatchDeployment client: latency of a progress event.
      const transport = createConnectTransport({ baseUrl: `http://127.0.0.1:${api.httpPort}`, httpVersion: "1.1" });
      const client = createClient(DeploymentService, transport);
      const created = await client.createDeployment({ model: { name: "bench/watch", uri: "file:///bench/model.onnx" }, scaling: { minReplicas: 0, maxReplicas: 0 } }, { headers: { authorization: `Bearer ${key}` } });
      const name = created.deployment!.name;
      const uid = created.deployment!.uid;
      const ac = new AbortController();
      const arrivals = new Map<number, number>();
      let notify: (() => void) | undefined;
      const watching = (async () => {
        try {
          for await (const e of client.watchDeployment({ name }, { headers: { authorization: `Bearer ${key}` }, signal: ac.signal })) {
            arrivals.set(Number(e.sequence), performance.now());
            notify?.();
          }
        } catch { /* aborted */ }
      })();
      await new Promise<void>((r) => { notify = r; if (arrivals.size > 0) r(); });
      // Let the deploy task of that deployment finish first (no-op runtime, 0 replicas).
      for (let i = 0; i < 200; i++) {
        const d = await client.getDeployment({ name }, { headers: { authorization: `Bearer ${key}` } });
        if (!d.activeTaskId) break;
        await new Promise((r) => setTimeout(r, 25));
      }
      const watchLat: number[] = [];
      const sink = (events: Parameters<typeof api.deps.sink>[0]) => api.deps.sink(events);
      for (let i = 0; i < 100; i++) {
        const committedAt = { t: 0 };
        const event = await transact(db, (ev) => { committedAt.t = performance.now(); sink(ev); }, async (trx, emit) => {
          const e = await applyChange(trx, { deploymentUid: uid, type: "PROGRESS", deployment: { modifier: `bench-${i}` } });
          emit(e);
          return e;
        });
        await new Promise<void>((r) => { notify = r; if (arrivals.has(event.sequence)) r(); });
        watchLat.push(arrivals.get(event.sequence)! - committedAt.t);
        await new Promise((r) => setTimeout(r, 5)); // idle machine between samples
      }
      ac.abort();
      await watching;
      rows.push({ figure: "Commit → WatchDeployment client (100 progress events, idle)", value: `p50 ${pct(watchLat, 50).toFixed(1)} ms, p99 ${pct(watchLat, 99).toFixed(1)} ms, max ${Math.max(...watchLat).toFixed(1)} ms`, target: "< 100 ms", ok: Math.max(...watchLat) < 100 });

      // Raw limit beneath the create path, same run.
      const raw = await rawTransactionRate(url, 3);
      rows.push({ figure: "  raw pg two-row transaction (32 connections), for scale", value: `${raw.toFixed(0)} tx/s`, target: "(raw limit)", ok: true });
    } finally {
      await worker.stop(5000);
      await api.stop(1000);
      const jsm = await jetstreamManager(nc);
      await jsm.streams.delete(config.natsStream).catch(() => {});
      await nc.drain();
      await db.destroy();
    }
  });

  // 3. Idle all-in-one process: resident memory.
  for (const embedded of [false]) {
    const rss = await idleRss(embedded);
    rows.push({ figure: `Idle all-in-one \`modeldeploy start\` RSS (local runtime, ${embedded ? "embedded" : "external"} Postgres/NATS)`, value: `${rss.toFixed(0)} MB`, target: "< 200 MB", ok: rss < 200 });
  }

  const width = Math.max(...rows.map((r) => r.figure.length));
  process.stdout.write(`\nmodeldeploy bench (${new Date().toISOString()}, ${process.version})\n`);
  for (const r of rows) process.stdout.write(`${r.ok ? "ok  " : "MISS"} ${r.figure.padEnd(width)}  ${r.value}   [target ${r.target}]\n`);
  return rows.every((r) => r.ok) ? 0 : 1;
}

async function idleRss(embedded: boolean): Promise<number> {
  return withBenchDatabase(async (url) => {
    const dataDir = mkdtempSync(path.join(tmpdir(), "md-bench-"));
    const cli = fileURLToPath(new URL("../../bin/modeldeploy.js", import.meta.url));
    const env: Record<string, string> = {
      ...(process.env as Record<string, string>),
      MODELDEPLOY_DATA_DIR: dataDir,
      MODELDEPLOY_GRPC_PORT: "0", MODELDEPLOY_HTTP_PORT: "0", MODELDEPLOY_GATEWAY_PORT: "0", MODELDEPLOY_RUNTIME_CONTROL_PORT: "0",
      MODELDEPLOY_NATS_STREAM: `MDBENCH_${randomBytes(4).toString("hex").toUpperCase()}`,
      MODELDEPLOY_NATS_PREFIX: `mdbench_${randomBytes(4).toString("hex")}`,
      LOG_LEVEL: "warn",
    };
    if (!embedded) Object.assign(env, { DATABASE_URL: url, NATS_URL });
    else { delete env["DATABASE_URL"]; delete env["NATS_URL"]; }
    const child = spawn(process.execPath, [cli, "start"], { env, stdio: ["ignore", "pipe", "inherit"] });
    try {
      await new Promise<void>((resolve, reject) => {
        let out = "";
        child.stdout!.on("data", (d: Buffer) => { out += d.toString(); if (out.includes("Press Ctrl-C")) resolve(); });
        child.on("exit", (code) => reject(new Error(`start exited with ${code}`)));
      });
      // Idle: let start-up garbage settle, then sample a few times and keep the highest.
      let peak = 0;
      for (let i = 0; i < 10; i++) {
        await new Promise((r) => setTimeout(r, 500));
        const status = readFileSync(`/proc/${child.pid}/status`, "utf8");
        const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
        peak = Math.max(peak, kb / 1024);
      }
      return peak;
    } finally {
      child.kill("SIGTERM");
      await new Promise((r) => child.once("exit", r));
      rmSync(dataDir, { recursive: true, force: true });
      if (!embedded) {
        const nc = await connectNats(NATS_URL, "modeldeploy-bench");
        const jsm = await jetstreamManager(nc);
        await jsm.streams.delete(env["MODELDEPLOY_NATS_STREAM"]!).catch(() => {});
        await nc.drain();
      }
    }
  });
}

main().then((code) => process.exit(code), (err) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(2);
});
