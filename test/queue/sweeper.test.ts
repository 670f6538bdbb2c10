// The sweeper counts a re-publish only once JetStream acknowledged it,
// re-publishes a large loss in one sweep, and adds no duplicate beside a
// message the queue still holds or the relay is about to publish.
import { jetstreamManager } from "@nats-io/jetstream";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDeployment } from "../../src/deployments/create.js";
import type { ApiDeps } from "../../src/api/deps.js";
import { DependencyUnavailableError } from "../../src/domain/errors.js";
import { silentLogger } from "../../src/log.js";
import { createEventBus, type EventBus } from "../../src/queue/event-bus.js";
import { connectNats, type NatsConnection } from "../../src/queue/nats.js";
import { startSweeper, type Sweeper } from "../../src/queue/sweeper.js";
import { createTaskQueue, type TaskQueue } from "../../src/queue/task-queue.js";
import { createInput, testApiDeps } from "../helpers/api-deps.js";
import { startPrivateNats, type PrivateNats } from "../helpers/private-nats.js";
import { createTestDatabase, createTestQueue, randomName, waitFor, type TestDatabase, type TestQueue } from "../helpers/services.js";
import { alice } from "./support.js";

// Each test has a database of its own: the sweeper takes every stalled task it finds.
let tdb: TestDatabase;
const cleanups: Array<() => Promise<void>> = [];
async function freshDatabase(): Promise<void> {
  const d = await createTestDatabase();
  cleanups.push(() => d.drop());
  tdb = d;
}
afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
});

/** Open deployment tasks made by the API, with no relay running: their outbox rows stay. */
async function createTasks(deps: ApiDeps, n: number): Promise<string[]> {
  const created = await Promise.all(Array.from({ length: n }, () => createDeployment(deps, alice, createInput())));
  return created.map((c) => c.task.id);
}

/** As if the relay had published them and the messages were then lost. */
async function forgetOutbox(ids: string[]): Promise<void> {
  await tdb.db.deleteFrom("outbox").where("task_id", "in", ids).execute();
}

async function counts(ids: string[]) {
  const rows = await tdb.db.selectFrom("tasks").select(["id", "enqueue_count", "enqueued_at"]).where("id", "in", ids).orderBy("id").execute();
  return rows.map((r) => ({ id: r.id, count: r.enqueue_count, at: new Date(r.enqueued_at).getTime() }));
}

/** Enqueued an hour ago: stalled for a sweeper that waits a minute, until it re-publishes them. */
async function age(ids: string[]): Promise<void> {
  await tdb.db
    .updateTable("tasks")
    .set({ enqueued_at: sql`now() - interval '1 hour'` })
    .where("id", "in", ids)
    .execute();
}

function sweeperOn(queue: TaskQueue, olderThanMs = 0): Sweeper {
  const sweeper = startSweeper({ db: tdb.db, queue, logger: silentLogger, intervalMs: 3_600_000, olderThanMs });
  cleanups.push(() => sweeper.stop());
  return sweeper;
}

describe("a publish that failed is not an enqueue", () => {
  let nats: PrivateNats;
  let nc: NatsConnection;
  let queue: TaskQueue;
  let bus: EventBus;

  beforeAll(async () => {
    nats = await startPrivateNats();
    cleanups.push(() => nats.destroy());
    nc = await connectNats(nats.url, "modeldeploy-test-sweeper");
    cleanups.push(() => nc.close());
    queue = createTaskQueue(nc, { stream: randomName("MDSWEEP").toUpperCase(), subjectPrefix: randomName("mdsweep"), ackWaitMs: 30_000, maxDeliver: 10 });
    cleanups.push(async () => queue.close());
    await queue.ensure();
    bus = createEventBus(nc, "mdsweep-events");
    cleanups.push(() => bus.close());
  });

  it("leaves the count alone while the queue is down, and counts exactly the publishes JetStream took", async () => {
    await freshDatabase();
    const ids = await createTasks(testApiDeps(tdb.db, bus), 3);
    await age(ids);
    const sweeper = sweeperOn(queue, 60_000);
    const before = await counts(ids);
    expect(before.every((t) => t.count === 0)).toBe(true);

    await nats.stop("SIGKILL");
    await expect(sweeper.sweepOnce()).rejects.toBeInstanceOf(DependencyUnavailableError);
    expect(await counts(ids)).toEqual(before);

    // Back, but the stream takes one message only: two of three publishes are refused.
    await nats.start();
    const admin = await connectNats(nats.url, "modeldeploy-test-admin");
    cleanups.push(() => admin.close());
    const jsm = await jetstreamManager(admin);
    const config = (await jsm.streams.info(queue.options.stream)).config;
    await jsm.streams.update(queue.options.stream, { ...config, max_msgs: 1 });
    await expect(
      waitFor("a sweep with the queue back", () =>
        sweeper.sweepOnce().then(
          () => "swept",
          (e: unknown) => (e instanceof DependencyUnavailableError ? undefined : "refused"),
        ),
      ),
    ).resolves.toBe("refused");
    expect((await counts(ids)).map((t) => t.count).sort()).toEqual([0, 0, 1]);

    await jsm.streams.update(queue.options.stream, { ...config, max_msgs: 1_000_000 });
    expect(await sweeper.sweepOnce()).toBe(2);
    expect((await counts(ids)).map((t) => t.count)).toEqual([1, 1, 1]);
    expect((await jsm.streams.info(queue.options.stream)).state.messages).toBe(3);
  });
});

describe("after a loss", () => {
  let tq: TestQueue;
  let bus: EventBus;
  beforeAll(async () => {
    tq = await createTestQueue();
    cleanups.push(() => tq.drop());
    bus = createEventBus(tq.nc, tq.prefix);
    cleanups.push(() => bus.close());
  });

  it("re-publishes every task lost with the stream in one sweep, despite a backlog; newer never-claimed tasks wait", async () => {
    await freshDatabase();
    const deps = testApiDeps(tdb.db, bus);
    const lost = await createTasks(deps, 1200);
    await forgetOutbox(lost);
    const jsm = await jetstreamManager(tq.nc);
    await jsm.streams.delete(tq.stream);
    await tq.queue.ensure();
    // Created after the stream: its message may well be in the backlog.
    const newer = await createTasks(deps, 1);
    await forgetOutbox(newer);
    await tq.queue.publish("another-task", "another-task");
    expect((await tq.queue.state()).backlog).toBe(1);

    const sweeper = startSweeper({ db: tdb.db, queue: tq.queue, logger: silentLogger, intervalMs: 3_600_000, olderThanMs: 0, batch: 500 });
    cleanups.push(() => sweeper.stop());
    expect(await sweeper.sweepOnce()).toBe(1200);
    expect((await counts(lost)).every((t) => t.count === 1)).toBe(true);
    expect((await counts(newer))[0]!.count).toBe(0);
    expect((await tq.queue.state()).backlog).toBe(1201);
  });

  it("re-publishes a loss larger than a batch into an empty queue in one sweep, each task once", async () => {
    await freshDatabase();
    const q = await createTestQueue();
    cleanups.push(() => q.drop());
    const lost = await createTasks(testApiDeps(tdb.db, bus), 1100);
    await forgetOutbox(lost);
    const sweeper = startSweeper({ db: tdb.db, queue: q.queue, logger: silentLogger, intervalMs: 3_600_000, olderThanMs: 0, batch: 500 });
    cleanups.push(() => sweeper.stop());
    // With nothing older than "now" left out, a sweep must still not take again what it just re-published.
    expect(await sweeper.sweepOnce()).toBe(1100);
    expect((await counts(lost)).every((t) => t.count === 1)).toBe(true);
    expect((await q.queue.state()).backlog).toBe(1100);
  });

  it("shares the relay's msg id for a task still in the outbox: relay and sweeper together queue one message", async () => {
    await freshDatabase();
    const q = await createTestQueue();
    cleanups.push(() => q.drop());
    const [id] = await createTasks(testApiDeps(tdb.db, bus), 1);
    const sweeper = sweeperOn(q.queue);
    expect(await sweeper.sweepOnce()).toBe(1);
    expect((await counts([id!]))[0]!.count).toBe(1);
    await q.queue.publish(id!, id!); // the relay's publish, late
    const seen: string[] = [];
    for (let m = await q.queue.next(2000); m; m = await q.queue.next(1000)) {
      seen.push(m.json<{ taskId: string }>().taskId);
      m.ack();
    }
    expect(seen.filter((t) => t === id)).toHaveLength(1);
  });
});
