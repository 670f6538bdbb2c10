// Creates and deletes of the same deployments, at once, while a real worker
// (no-op runtime) runs their tasks: DeleteDeployment cancels the task the
// worker is writing, so both lock the same deployment and task rows. With one
// lock order everywhere (deployment, then task) Postgres finds no deadlock,
// and callers see nothing but the expected outcomes. A private server, so
// that pg_stat_database.deadlocks counts this test's deadlocks alone.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code } from "@connectrpc/connect";
import { toConnectError } from "../../src/api/errors.js";
import { sql } from "kysely";
import type { ApiDeps } from "../../src/api/deps.js";
import { createDeployment } from "../../src/deployments/create.js";
import { deleteDeployment } from "../../src/deployments/delete.js";
import { createDb, type Db } from "../../src/db/connect.js";
import { migrateToLatest } from "../../src/db/migrate.js";
import type { Principal } from "../../src/domain/types.js";
import { silentLogger } from "../../src/log.js";
import { createEventBus, type EventBus } from "../../src/queue/event-bus.js";
import { startOutboxRelay, type OutboxRelay } from "../../src/queue/outbox-relay.js";
import { createNoopDriver } from "../../src/runtime/noop-driver.js";
import { startWorker, type Worker } from "../../src/worker/worker.js";
import { createInput, testApiDeps } from "../helpers/api-deps.js";
import { createDatabaseOn, startPrivatePostgres, type PrivatePostgres } from "../helpers/private-postgres.js";
import { createTestQueue, waitFor, type TestQueue } from "../helpers/services.js";

let server: PrivatePostgres;
let db: Db;
let tq: TestQueue;
let bus: EventBus;
let relay: OutboxRelay;
let worker: Worker;
let deps: ApiDeps;
const alice: Principal = { workspace: "acme", name: "alice", scopes: ["deployments:read", "deployments:write"] };

const deadlocks = async (): Promise<number> => {
  const r = await sql<{ deadlocks: string }>`select deadlocks from pg_stat_database where datname = current_database()`.execute(db);
  return Number(r.rows[0]!.deadlocks);
};

beforeAll(async () => {
  server = await startPrivatePostgres({ settings: { deadlock_timeout: "100ms" } });
  const url = await createDatabaseOn(server.url, "locks");
  db = createDb({ url, poolMax: 10, connectTimeoutMs: 5000 });
  await migrateToLatest(db);
  tq = await createTestQueue();
  bus = createEventBus(tq.nc, tq.prefix);
  relay = startOutboxRelay({ db, publisher: tq.queue, logger: silentLogger, intervalMs: 100 });
  deps = testApiDeps(db, bus, { wakeRelay: (committed) => relay.wake(committed) });
  worker = await startWorker({
    db,
    queue: tq.queue,
    sink: deps.sink,
    driver: createNoopDriver(),
    logger: silentLogger,
    concurrency: 8,
    leaseMs: 30_000,
    ackWaitMs: 30_000,
    maxDeliver: 10,
    healthPollMs: 20,
  });
});

afterAll(async () => {
  await worker?.stop(5000);
  await relay?.stop();
  await bus?.close();
  await tq?.drop();
  await db?.destroy();
  await server?.destroy();
});

describe("lock order", () => {
  it("creates and deletes the same deployments at once, with a worker running their tasks, and no deadlock", async () => {
    const clients = 16;
    const rounds = 60;
    const names = 4; // every name is fought over by 4 clients
    const outcomes = new Map<string, number>();
    const unexpected: unknown[] = [];
    const count = (what: string) => outcomes.set(what, (outcomes.get(what) ?? 0) + 1);
    const expected = (err: unknown, codes: Code[]) => {
      // As a client would see it: a deadlock that escaped would be INTERNAL.
      const seen = toConnectError(err);
      if (codes.includes(seen.code)) count(`${Code[seen.code]}`);
      else unexpected.push(err);
    };
    await Promise.all(
      Array.from({ length: clients }, async (_, c) => {
        const suffix = `n${c % names}`;
        for (let i = 0; i < rounds; i++) {
          try {
            await createDeployment(deps, alice, createInput({ suffix }));
            count("created");
          } catch (err) {
            expected(err, [Code.AlreadyExists]);
          }
          try {
            await deleteDeployment(deps, alice, `tiny-linear-${suffix}`, "");
            count("deleted");
          } catch (err) {
            expected(err, [Code.NotFound]);
          }
        }
      }),
    );
    expect(unexpected.map(String)).toEqual([]);
    expect(outcomes.get("created")).toBeGreaterThan(0);
    expect(outcomes.get("deleted")).toBeGreaterThan(0);
    // The worker finishes every task: nothing is left open.
    await waitFor(
      "every task ended",
      async () => {
        const open = await db
          .selectFrom("tasks")
          .select((eb) => eb.fn.countAll<string>().as("n"))
          .where("status", "in", ["PENDING", "RUNNING"])
          .executeTakeFirstOrThrow();
        return Number(open.n) === 0;
      },
      60_000,
    );
    // The fight happened: deletes cancelled deploy tasks the worker had in hand.
    const cancelled = await db
      .selectFrom("tasks")
      .select((eb) => eb.fn.countAll<string>().as("n"))
      .where("status", "=", "CANCELLED")
      .executeTakeFirstOrThrow();
    expect(Number(cancelled.n)).toBeGreaterThan(0);
    expect(await deadlocks()).toBe(0);
    expect(server.log()).not.toContain("deadlock detected");
  });
});
