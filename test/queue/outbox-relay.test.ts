// The outbox relay against real Postgres and JetStream: a create hands it its
// row (its timer alone would take an hour here), a row nobody announced (a
// crash between commit and wake) or whose publish failed is still published by
// the timer, and a published row whose delete must wait for a connection is
// still removed.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDeployment } from "../../src/deployments/create.js";
import { createDb } from "../../src/db/connect.js";
import { insertOutbox } from "../../src/db/outbox.js";
import type { Principal } from "../../src/domain/types.js";
import { silentLogger } from "../../src/log.js";
import { createEventBus, type EventBus } from "../../src/queue/event-bus.js";
import { startOutboxRelay } from "../../src/queue/outbox-relay.js";
import { parseTaskMessage } from "../../src/queue/task-queue.js";
import { createInput, testApiDeps } from "../helpers/api-deps.js";
import { createTestDatabase, createTestQueue, waitFor, type TestDatabase, type TestQueue } from "../helpers/services.js";

const alice: Principal = { workspace: "acme", name: "alice", scopes: ["deployments:read", "deployments:write"] };

let tdb: TestDatabase;
let tq: TestQueue;
let bus: EventBus;

beforeAll(async () => {
  tdb = await createTestDatabase();
  tq = await createTestQueue();
  bus = createEventBus(tq.nc, tq.prefix);
});

afterAll(async () => {
  await bus?.close();
  await tq?.drop();
  await tdb?.drop();
});

const outboxRows = async () =>
  Number(
    (
      await tdb.db
        .selectFrom("outbox")
        .select((eb) => eb.fn.countAll<string>().as("n"))
        .executeTakeFirstOrThrow()
    ).n,
  );

/** The task ids of the next `n` messages in the queue, taken off it. */
async function queued(n: number): Promise<string[]> {
  const ids: string[] = [];
  while (ids.length < n) {
    for await (const m of tq.queue.pull(n - ids.length, 2000)) {
      ids.push(parseTaskMessage(m)!.taskId);
      m.ack();
    }
  }
  return ids;
}

describe("outbox relay", () => {
  it("publishes a create as soon as it commits, without waiting for its timer", async () => {
    const relay = startOutboxRelay({ db: tdb.db, publisher: tq.queue, logger: silentLogger, intervalMs: 3_600_000 });
    try {
      // The pass at start has found nothing; from now on only a wake publishes.
      await waitFor("the relay's first pass", async () => (await outboxRows()) === 0);
      const deps = testApiDeps(tdb.db, bus, { wakeRelay: (committed) => relay.wake(committed) });
      const created = await Promise.all([1, 2, 3].map(() => createDeployment(deps, alice, createInput())));
      await waitFor("the outbox to be published", async () => (await outboxRows()) === 0);
      expect((await queued(3)).sort()).toEqual(created.map((c) => c.task.id).sort());
    } finally {
      await relay.stop();
    }
  });

  it("publishes a row nobody announced on its timer", async () => {
    const deps = testApiDeps(tdb.db, bus); // no wake: as if the API died right after its commit
    const { task } = await createDeployment(deps, alice, createInput());
    expect(await outboxRows()).toBe(1);
    const relay = startOutboxRelay({ db: tdb.db, publisher: tq.queue, logger: silentLogger, intervalMs: 50 });
    try {
      await waitFor("the first pass", async () => (await outboxRows()) === 0);
      // A row written after that pass, again without a wake: only the timer can publish it.
      const later = await createDeployment(deps, alice, createInput());
      await waitFor("the timer's pass", async () => (await outboxRows()) === 0);
      expect((await queued(2)).sort()).toEqual([task.id, later.task.id].sort());
    } finally {
      await relay.stop();
    }
  });

  it("removes a published row once the only connection is free", async () => {
    // One connection, held by another transaction while the row is handed over.
    const db = createDb({ url: tdb.url, poolMax: 1, connectTimeoutMs: 30_000 });
    const relay = startOutboxRelay({ db, publisher: tq.queue, logger: silentLogger, intervalMs: 3_600_000 });
    try {
      await waitFor("the relay's first pass", async () => (await outboxRows()) === 0);
      const entry = await insertOutbox(db, "task-held", "msg-held");
      let release!: () => void;
      const held = new Promise<void>((r) => (release = r));
      let holding!: () => void;
      const isHeld = new Promise<void>((r) => (holding = r));
      const holder = db.transaction().execute(async () => {
        holding();
        await held;
      });
      await isHeld;
      relay.wake([entry]);
      expect(await queued(1)).toEqual(["task-held"]);
      expect(await outboxRows()).toBe(1);
      release();
      await holder;
      await waitFor("the outbox row removed", async () => (await outboxRows()) === 0);
    } finally {
      await relay.stop();
      await db.destroy();
    }
  });

  it("leaves a row whose publish failed to the timer's pass", async () => {
    let failures = 0;
    const flaky = {
      publish: (taskId: string, msgId: string, trace?: Readonly<Record<string, string>> | null) => {
        if (failures++ === 0) return Promise.reject(new Error("jetstream is not enabled"));
        return tq.queue.publish(taskId, msgId, trace);
      },
    };
    const relay = startOutboxRelay({ db: tdb.db, publisher: flaky, logger: silentLogger, intervalMs: 200 });
    try {
      await waitFor("the relay's first pass", async () => (await outboxRows()) === 0);
      failures = 0;
      const deps = testApiDeps(tdb.db, bus, { wakeRelay: (committed) => relay.wake(committed) });
      const { task } = await createDeployment(deps, alice, createInput());
      await waitFor("the timer's pass to publish it", async () => (await outboxRows()) === 0);
      expect(failures).toBeGreaterThanOrEqual(2);
      expect(await queued(1)).toEqual([task.id]);
    } finally {
      await relay.stop();
    }
  });
});
