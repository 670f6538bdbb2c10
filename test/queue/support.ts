// An in-process system for queue fault tests: the API side (create, outbox
// relay, event bus) and the worker side (worker, sweeper), each on its own
// NATS connection as separate processes would be, over a real Postgres
// database and a real nats-server, with the no-op runtime driver. A gate can
// hold the driver so that tasks stay open while a test breaks the queue.
import { createDeployment } from "../../src/deployments/create.js";
import type { ApiDeps } from "../../src/api/deps.js";
import type { Principal } from "../../src/domain/types.js";
import { silentLogger, type Logger } from "../../src/log.js";
import { createEventBus, type EventBus } from "../../src/queue/event-bus.js";
import { connectNats, type NatsConnection } from "../../src/queue/nats.js";
import { startOutboxRelay, type OutboxRelay } from "../../src/queue/outbox-relay.js";
import { startSweeper, type Sweeper } from "../../src/queue/sweeper.js";
import { createTaskQueue, type TaskQueue, type TaskQueueOptions } from "../../src/queue/task-queue.js";
import type { RuntimeDriver } from "../../src/runtime/driver.js";
import { createNoopDriver } from "../../src/runtime/noop-driver.js";
import { startWorker, type Worker } from "../../src/worker/worker.js";
import { createInput, testApiDeps } from "../helpers/api-deps.js";
import { createTestDatabase, randomName, waitFor, type TestDatabase } from "../helpers/services.js";

export const alice: Principal = { workspace: "acme", name: "alice", scopes: ["deployments:read", "deployments:write"] };

/** Holds the driver's first step while closed. */
export interface Gate {
  close(): void;
  open(): void;
}

function gatedNoopDriver(): { driver: RuntimeDriver; gate: Gate } {
  const noop = createNoopDriver();
  let opened: Promise<void> = Promise.resolve();
  let release = () => {};
  const gate: Gate = {
    close() {
      opened = new Promise((r) => (release = r));
    },
    open() {
      release();
    },
  };
  const driver: RuntimeDriver = {
    ...noop,
    async prepareWeights(spec, onProgress, signal) {
      await opened;
      return noop.prepareWeights(spec, onProgress, signal);
    },
  };
  return { driver, gate };
}

export interface QueueSystem {
  tdb: TestDatabase;
  options: TaskQueueOptions;
  api: { nc: NatsConnection; queue: TaskQueue; bus: EventBus; relay: OutboxRelay; deps: ApiDeps };
  workerSide: { nc: NatsConnection; queue: TaskQueue; worker: Worker; sweeper: Sweeper };
  gate: Gate;
  /** Creates `n` deployments; returns their task ids. */
  create(n: number): Promise<string[]>;
  /** Waits until every task of `ids` is COMPLETED (fails on another terminal state). */
  allCompleted(ids: string[], timeoutMs?: number): Promise<void>;
  outboxRows(): Promise<number>;
  stop(): Promise<void>;
}

export interface QueueSystemOptions {
  natsUrl: string;
  logger?: Logger;
  concurrency?: number;
  sweepIntervalMs?: number;
  sweepOlderThanMs?: number;
}

export async function startQueueSystem(o: QueueSystemOptions): Promise<QueueSystem> {
  const stops: Array<() => Promise<void>> = [];
  const stop = async () => {
    for (const s of stops.reverse()) await s().catch(() => {});
  };
  try {
    const logger = o.logger ?? silentLogger;
    const tdb = await createTestDatabase();
    stops.push(() => tdb.drop());
    const options: TaskQueueOptions = { stream: randomName("MDFAULT").toUpperCase(), subjectPrefix: randomName("mdfault"), ackWaitMs: 30_000, maxDeliver: 10 };

    const apiNc = await connectNats(o.natsUrl, "modeldeploy-test-api");
    stops.push(() => apiNc.close());
    const apiQueue = createTaskQueue(apiNc, options);
    stops.push(async () => apiQueue.close());
    await apiQueue.ensure();
    const bus = createEventBus(apiNc, options.subjectPrefix);
    stops.push(() => bus.close());
    const relay = startOutboxRelay({ db: tdb.db, publisher: apiQueue, logger, intervalMs: 200 });
    stops.push(() => relay.stop());
    const deps = testApiDeps(tdb.db, bus, { wakeRelay: (committed) => relay.wake(committed) });

    const workerNc = await connectNats(o.natsUrl, "modeldeploy-test-worker");
    stops.push(() => workerNc.close());
    const workerQueue = createTaskQueue(workerNc, options);
    stops.push(async () => workerQueue.close());
    const { driver, gate } = gatedNoopDriver();
    const worker = await startWorker({
      db: tdb.db,
      queue: workerQueue,
      sink: (events) => bus.publish(events),
      driver,
      logger,
      concurrency: o.concurrency ?? 4,
      leaseMs: 30_000,
      ackWaitMs: 30_000,
      maxDeliver: 10,
      healthPollMs: 20,
    });
    stops.push(async () => {
      gate.open();
      await worker.stop(2000);
    });
    const sweeper = startSweeper({
      db: tdb.db,
      queue: workerQueue,
      logger,
      intervalMs: o.sweepIntervalMs ?? 300,
      olderThanMs: o.sweepOlderThanMs ?? 1000,
    });
    stops.push(() => sweeper.stop());

    const outboxRows = async () => {
      const r = await tdb.db
        .selectFrom("outbox")
        .select((eb) => eb.fn.countAll<string>().as("n"))
        .executeTakeFirstOrThrow();
      return Number(r.n);
    };
    const statusOf = async (ids: string[]) => tdb.db.selectFrom("tasks").select(["id", "status", "failure"]).where("id", "in", ids).execute();
    return {
      tdb,
      options,
      api: { nc: apiNc, queue: apiQueue, bus, relay, deps },
      workerSide: { nc: workerNc, queue: workerQueue, worker, sweeper },
      gate,
      async create(n) {
        const created = await Promise.all(Array.from({ length: n }, () => createDeployment(deps, alice, createInput())));
        return created.map((c) => c.task.id);
      },
      async allCompleted(ids, timeoutMs = 60_000) {
        await waitFor(
          `${ids.length} tasks to complete`,
          async () => {
            const rows = await statusOf(ids);
            const failed = rows.find((r) => r.status === "FAILED" || r.status === "CANCELLED");
            if (failed) throw new Error(`task ${failed.id} ended ${failed.status}: ${JSON.stringify(failed.failure)}`);
            return rows.length === ids.length && rows.every((r) => r.status === "COMPLETED");
          },
          timeoutMs,
          100,
        ).catch(async (err: unknown) => {
          const rows = await statusOf(ids);
          const open = rows.filter((r) => r.status !== "COMPLETED").length;
          throw new Error(`${String(err)} (${open} of ${ids.length} still open, ${await outboxRows()} outbox rows)`);
        });
      },
      outboxRows,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
