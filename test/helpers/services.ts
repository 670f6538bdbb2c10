// Real Postgres and NATS for tests: each test file gets its own database and
// its own stream/subject prefix, removed afterwards.
import { randomBytes } from "node:crypto";
import pg from "pg";
import { jetstreamManager } from "@nats-io/jetstream";
import { createDb, type Db } from "../../src/db/connect.js";
import { migrateToLatest } from "../../src/db/migrate.js";
import { connectNats, type NatsConnection } from "../../src/queue/nats.js";
import { createTaskQueue, type TaskQueue } from "../../src/queue/task-queue.js";

export const DATABASE_URL = process.env["DATABASE_URL"] ?? "postgres://postgres@127.0.0.1:5432/postgres";
export const NATS_URL = process.env["NATS_URL"] ?? "nats://127.0.0.1:4222";
/** MODELDEPLOY_SECRET_KEY of the processes tests start with DATABASE_URL (a fresh key per test run). */
export const TEST_SECRET_KEY = randomBytes(32).toString("base64");

export function randomName(prefix: string): string {
  return `${prefix}_${randomBytes(5).toString("hex")}`;
}

export interface TestDatabase {
  url: string;
  db: Db;
  drop(): Promise<void>;
}

function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

export async function createTestDatabase(options: { migrate?: boolean } = {}): Promise<TestDatabase> {
  const name = randomName("mdtest");
  const admin = new pg.Client({ connectionString: DATABASE_URL });
  await admin.connect();
  await admin.query(`create database ${name}`);
  await admin.end();
  const url = withDatabase(DATABASE_URL, name);
  const db = createDb({ url, poolMax: 10, connectTimeoutMs: 5000 });
  if (options.migrate !== false) await migrateToLatest(db);
  return {
    url,
    db,
    async drop() {
      await db.destroy();
      const c = new pg.Client({ connectionString: DATABASE_URL });
      await c.connect();
      await c.query(`drop database if exists ${name} with (force)`);
      await c.end();
    },
  };
}

export interface TestQueue {
  nc: NatsConnection;
  queue: TaskQueue;
  stream: string;
  prefix: string;
  drop(): Promise<void>;
}

export async function createTestQueue(options: { ackWaitMs?: number; maxDeliver?: number } = {}): Promise<TestQueue> {
  const nc = await connectNats(NATS_URL, "modeldeploy-test");
  const stream = randomName("MDTEST").toUpperCase();
  const prefix = randomName("mdtest");
  const queue = createTaskQueue(nc, { stream, subjectPrefix: prefix, ackWaitMs: options.ackWaitMs ?? 30_000, maxDeliver: options.maxDeliver ?? 10 });
  await queue.ensure();
  return {
    nc,
    queue,
    stream,
    prefix,
    async drop() {
      queue.close();
      const jsm = await jetstreamManager(nc);
      await jsm.streams.delete(stream).catch(() => {});
      await nc.drain();
    },
  };
}

/** Polls until check() returns a value (not undefined/false), or fails after timeoutMs. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 30_000,
  intervalMs = 50,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${lastErr ? `: ${String(lastErr)}` : ""}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
