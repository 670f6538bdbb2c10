// The control plane as the service-layer tests run it: a real database and
// queue, the outbox relay, the API's dependencies, and a worker on the no-op
// runtime that a test may stop (to keep tasks PENDING) and start again.
import type { ApiDeps } from "../../src/api/deps.js";
import type { CatalogEntry } from "../../src/domain/validation.js";
import { silentLogger } from "../../src/log.js";
import { createEventBus, type EventBus } from "../../src/queue/event-bus.js";
import { startOutboxRelay, type OutboxRelay } from "../../src/queue/outbox-relay.js";
import type { RuntimeDriver } from "../../src/runtime/driver.js";
import { createNoopDriver } from "../../src/runtime/noop-driver.js";
import { startWorker, type Worker } from "../../src/worker/worker.js";
import { testApiDeps } from "./api-deps.js";
import { createTestDatabase, createTestQueue, type TestDatabase, type TestQueue } from "./services.js";

export interface TestPipeline {
  tdb: TestDatabase;
  tq: TestQueue;
  bus: EventBus;
  deps: ApiDeps;
  worker(): Worker | undefined;
  startWorker(): Promise<void>;
  stopWorker(): Promise<void>;
  close(): Promise<void>;
}

export async function startTestPipeline(o: { catalog?: CatalogEntry[]; concurrency?: number; driver?: RuntimeDriver } = {}): Promise<TestPipeline> {
  const tdb = await createTestDatabase();
  const tq = await createTestQueue();
  const bus = createEventBus(tq.nc, tq.prefix);
  const relay: OutboxRelay = startOutboxRelay({ db: tdb.db, publisher: tq.queue, logger: silentLogger, intervalMs: 100 });
  const deps = testApiDeps(tdb.db, bus, { wakeRelay: (committed) => relay.wake(committed), ...(o.catalog ? { catalog: o.catalog } : {}) });
  let worker: Worker | undefined;
  const p: TestPipeline = {
    tdb,
    tq,
    bus,
    deps,
    worker: () => worker,
    async startWorker() {
      worker ??= await startWorker({
        db: tdb.db,
        queue: tq.queue,
        sink: deps.sink,
        driver: o.driver ?? createNoopDriver(),
        logger: silentLogger,
        concurrency: o.concurrency ?? 4,
        leaseMs: 30_000,
        ackWaitMs: 30_000,
        maxDeliver: 10,
        healthPollMs: 20,
      });
    },
    async stopWorker() {
      await worker?.stop(5000);
      worker = undefined;
    },
    async close() {
      await p.stopWorker();
      await relay.stop();
      await bus.close();
      await tq.drop();
      await tdb.drop();
    },
  };
  await p.startWorker();
  return p;
}
