// Create → queue → worker → events → delete, on real Postgres and JetStream,
// with the no-op runtime driver (the runtime is tested on its own).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code } from "@connectrpc/connect";
import { createAuthenticator } from "../../src/api/auth.js";
import type { ApiDeps } from "../../src/api/deps.js";
import { RefusedError } from "../../src/domain/errors.js";
import { createDeployment, type CreateInput } from "../../src/deployments/create.js";
import { deleteDeployment } from "../../src/deployments/delete.js";
import { createApiKey } from "../../src/db/api-keys.js";
import { applyChange, FencedError } from "../../src/db/changes.js";
import { findDeploymentByName } from "../../src/db/deployments.js";
import { eventsAfter } from "../../src/db/events.js";
import { claimTask, findTask } from "../../src/db/tasks.js";
import { createInput, testApiDeps, replicas } from "../helpers/api-deps.js";
import { silentLogger } from "../../src/log.js";
import { createEventBus, type EventBus } from "../../src/queue/event-bus.js";
import { startOutboxRelay, type OutboxRelay } from "../../src/queue/outbox-relay.js";
import { startSweeper, type Sweeper } from "../../src/queue/sweeper.js";
import { createNoopDriver } from "../../src/runtime/noop-driver.js";
import { startWorker, type Worker } from "../../src/worker/worker.js";
import { createTestDatabase, createTestQueue, waitFor, type TestDatabase, type TestQueue } from "../helpers/services.js";
import type { DeploymentEvent, Principal } from "../../src/domain/types.js";

let tdb: TestDatabase;
let tq: TestQueue;
let bus: EventBus;
let relay: OutboxRelay;
let worker: Worker;
let deps: ApiDeps;
const alice: Principal = { workspace: "acme", name: "alice", scopes: ["deployments:read", "deployments:write"] };

const input = (over: Partial<CreateInput> = {}): CreateInput => createInput({ scaling: replicas(2, 2), labels: { team: "ml" }, ...over });

/** The worker these tests run: the no-op runtime, four tasks at a time unless told. */
const startNoopWorker = (concurrency = 4) =>
  startWorker({
    db: tdb.db,
    queue: tq.queue,
    sink: deps.sink,
    driver: createNoopDriver(),
    logger: silentLogger,
    concurrency,
    leaseMs: 30_000,
    ackWaitMs: 30_000,
    maxDeliver: 10,
    healthPollMs: 20,
  });

beforeAll(async () => {
  tdb = await createTestDatabase();
  tq = await createTestQueue();
  bus = createEventBus(tq.nc, tq.prefix);
  relay = startOutboxRelay({ db: tdb.db, publisher: tq.queue, logger: silentLogger, intervalMs: 200 });
  deps = testApiDeps(tdb.db, bus, { wakeRelay: (committed) => relay.wake(committed) });
  worker = await startNoopWorker();
});

afterAll(async () => {
  await worker?.stop(5000);
  await relay?.stop();
  await bus?.close();
  await tq?.drop();
  await tdb?.drop();
});

describe("deploy and delete through the queue", () => {
  it("runs a deploy task to RUNNING with gapless events, then deletes it", async () => {
    const live: DeploymentEvent[] = [];
    const unfollow = bus.onEvent((e) => live.push(e));
    const { deployment, task } = await createDeployment(deps, alice, input());
    expect(deployment.state).toBe("PENDING");
    expect(deployment.name).toMatch(/^tiny-linear-[0-9a-z]{13}$/);
    expect(task.status).toBe("PENDING");
    expect(deployment.sequence).toBe(1);

    const done = await waitFor("deploy task completed", async () => {
      const t = await findTask(tdb.db, task.id);
      return t && ["COMPLETED", "FAILED"].includes(t.status) ? t : undefined;
    });
    expect(done.status).toBe("COMPLETED");
    expect(done.attempt).toBe(1);
    const dep = (await findDeploymentByName(tdb.db, "acme", deployment.name))!;
    expect(dep.state).toBe("RUNNING");
    expect(dep.active_task_id).toBeNull();
    expect(dep.endpoint_url).toContain(deployment.name);
    expect(dep.instances).toMatchObject({ desired: 2, ready: 2 });

    const events = await eventsAfter(tdb.db, deployment.uid, 0, 1000);
    expect(events.map((e) => e.sequence)).toEqual(events.map((_, i) => i + 1));
    expect(events.at(-1)!.sequence).toBe(dep.sequence);
    const percents = events.filter((e) => e.task?.id === task.id).map((e) => e.task!.progress.percent);
    expect([...percents].sort((a, b) => a - b)).toEqual(percents);
    expect(events.at(-1)).toMatchObject({ type: "TASK_FINISHED", deployment: { state: "RUNNING" } });
    // The no-op runtime: the claim starts the task, no download (nothing to
    // fetch), no SWITCHING_TRAFFIC (the switch is instant): three writes.
    expect(events.map((e) => [e.deployment.state, e.task?.status, e.task?.phase])).toEqual([
      ["PENDING", "PENDING", "QUEUED"],
      ["INITIALIZING", "RUNNING", "VALIDATING"],
      ["DEPLOYING", "RUNNING", "STARTING"],
      ["RUNNING", "COMPLETED", "DONE"],
    ]);
    // Each went out live too, the claim's included.
    await waitFor("the deploy's events live", async () => {
      const seen = new Set(live.filter((e) => e.deploymentUid === deployment.uid).map((e) => e.sequence));
      return events.every((e) => seen.has(e.sequence));
    });
    unfollow();

    const del = await deleteDeployment(deps, alice, deployment.name, "");
    expect(del.kind).toBe("DELETE");
    await waitFor("deleted", async () => (await findDeploymentByName(tdb.db, "acme", deployment.name))?.state === "DELETED");
    const after = await eventsAfter(tdb.db, deployment.uid, 0, 1000);
    expect(after.at(-1)).toMatchObject({ type: "DELETED", deployment: { state: "DELETED", endpointUrl: "" } });
    expect(after.map((e) => e.sequence)).toEqual(after.map((_, i) => i + 1));
    // Deleting a deleted deployment is NOT_FOUND.
    await expect(deleteDeployment(deps, alice, deployment.name, "")).rejects.toMatchObject({ kind: "not_found", reason: "DEPLOYMENT_NOT_FOUND" });
  });

  it("keeps names unique per workspace and replays requestIds", async () => {
    const a = await createDeployment(deps, alice, input({ suffix: "prod", requestId: "req-1" }));
    const again = await createDeployment(deps, alice, input({ suffix: "prod", requestId: "req-1" }));
    expect(again.task.id).toBe(a.task.id);
    expect(again.deployment.uid).toBe(a.deployment.uid);
    const reused = await createDeployment(deps, alice, input({ suffix: "other", requestId: "req-1" })).catch((e: unknown) => e);
    expect(reused).toBeInstanceOf(RefusedError);
    expect(reused).toMatchObject({ kind: "invalid", reason: "REQUEST_ID_REUSED" });
    const taken = await createDeployment(deps, alice, input({ suffix: "prod" })).catch((e: unknown) => e);
    expect(taken).toMatchObject({ kind: "already_exists", reason: "NAME_TAKEN" });
    expect((taken as RefusedError).message).toContain("specify another suffix");
    // Another workspace may use the same name.
    const bob: Principal = { workspace: "other", name: "bob", scopes: alice.scopes };
    const b = await createDeployment(deps, bob, input({ suffix: "prod" }));
    expect(b.deployment.name).toBe(a.deployment.name);
  });

  it("rejects bad specs before anything is written", async () => {
    const before = await tdb.db
      .selectFrom("tasks")
      .select((eb) => eb.fn.countAll<string>().as("n"))
      .executeTakeFirstOrThrow();
    const err = await createDeployment(deps, alice, input({ scaling: replicas(5, 1), suffix: "Bad_Suffix" })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RefusedError);
    expect(err).toMatchObject({ kind: "invalid", reason: "REPLICAS_INVALID" });
    // Every bad field is listed, not only the first.
    expect((err as RefusedError).problems.map((p) => p.field)).toEqual(["scaling.min_replicas", "suffix"]);
    const after = await tdb.db
      .selectFrom("tasks")
      .select((eb) => eb.fn.countAll<string>().as("n"))
      .executeTakeFirstOrThrow();
    expect(after.n).toBe(before.n);
  });

  it("cancels an in-flight task when the deployment is deleted", async () => {
    await worker.stop(5000); // nothing consumes: the deploy task stays PENDING
    const { deployment, task } = await createDeployment(deps, alice, input());
    const del = await deleteDeployment(deps, alice, deployment.name, "");
    const cancelled = (await findTask(tdb.db, task.id))!;
    expect(cancelled.status).toBe("CANCELLED");
    expect(cancelled.failure).toMatchObject({ reason: "CANCELLED" });
    // Deleting again while the delete runs returns the same delete task.
    expect((await deleteDeployment(deps, alice, deployment.name, "")).id).toBe(del.id);
    worker = await startNoopWorker();
    await waitFor("deleted", async () => (await findDeploymentByName(tdb.db, "acme", deployment.name))?.state === "DELETED");
    expect((await findTask(tdb.db, task.id))!.status).toBe("CANCELLED");
  });
});

describe("fencing and recovery", () => {
  it("fences writes of an attempt that lost its lease", async () => {
    await worker.stop(5000);
    const { task, deployment } = await createDeployment(deps, alice, input());
    const first = await claimTask(tdb.db, task.id, "w1", 1);
    expect(first.kind).toBe("claimed");
    await waitFor("lease to expire", async () => (await claimTask(tdb.db, task.id, "w2", 60_000)).kind === "claimed");
    const current = (await findTask(tdb.db, task.id))!;
    expect(current.attempt).toBe(2);
    await expect(
      tdb.db.transaction().execute((trx) =>
        applyChange(trx, {
          deploymentUid: deployment.uid,
          type: "PROGRESS",
          task: { id: task.id, attempt: 1, patch: { phase: "DOWNLOADING" } },
        }),
      ),
    ).rejects.toBeInstanceOf(FencedError);
    // Still as attempt 1's claim started it.
    expect((await findTask(tdb.db, task.id))!.phase).toBe("VALIDATING");
    // A duplicate delivery while the lease is held is acknowledged, not run twice.
    expect((await claimTask(tdb.db, task.id, "w3", 60_000)).kind).toBe("leased");
  });

  it("re-enqueues a task whose queue message was lost", async () => {
    const { task } = await createDeployment(deps, alice, input());
    await relay.stop();
    // Simulate the lost publish: the outbox row of the next task disappears.
    const lost = await createDeployment(deps, alice, input());
    await tdb.db.deleteFrom("outbox").where("task_id", "=", lost.task.id).execute();
    worker = await startNoopWorker(2);
    const sweeper: Sweeper = startSweeper({ db: tdb.db, queue: tq.queue, logger: silentLogger, intervalMs: 100, olderThanMs: 100 });
    try {
      const t = await waitFor("lost task to complete", async () => {
        const row = await findTask(tdb.db, lost.task.id);
        return row?.status === "COMPLETED" ? row : undefined;
      });
      expect(t.enqueue_count).toBeGreaterThanOrEqual(1);
      expect(task.id).not.toBe(lost.task.id);
    } finally {
      await sweeper.stop();
    }
  });

  it("does not re-publish an unclaimed task while the queue still has a backlog", async () => {
    // Its own queue and no relay: the task's message is lost (its outbox row
    // gone as if relayed, nothing in the queue), and a message of another
    // task stands undelivered in the queue.
    const q = await createTestQueue();
    const qDeps = testApiDeps(tdb.db, bus);
    const sweeper = startSweeper({
      db: tdb.db,
      queue: q.queue,
      logger: silentLogger,
      intervalMs: 3_600_000,
      olderThanMs: 0,
    });
    try {
      const { task } = await createDeployment(qDeps, alice, input());
      await tdb.db.deleteFrom("outbox").where("task_id", "=", task.id).execute();
      await q.queue.publish("another-task", "another-task");
      expect((await q.queue.state()).backlog).toBe(1);
      await sweeper.sweepOnce();
      expect((await findTask(tdb.db, task.id))?.enqueue_count).toBe(0);

      // The backlog delivered: now the lost task is found and re-published.
      // (Other tests' open tasks in this database may be re-published beside it.)
      const drain = async () => {
        const ids: string[] = [];
        for (let m = await q.queue.next(2000); m; m = await q.queue.next(1000)) {
          ids.push(m.json<{ taskId: string }>().taskId);
          m.ack();
        }
        return ids;
      };
      const first = await drain();
      expect(first).toContain("another-task");
      expect(first).not.toContain(task.id);
      await waitFor("backlog to drain", async () => (await q.queue.state()).backlog === 0);
      await sweeper.sweepOnce();
      expect((await findTask(tdb.db, task.id))?.enqueue_count).toBe(1);
      expect(await drain()).toContain(task.id);
    } finally {
      await sweeper.stop();
      await q.drop();
    }
  });
});

describe("auth", () => {
  it("maps keys to principals and checks scopes", async () => {
    const { key } = await createApiKey(tdb.db, { workspace: "acme", principal: "reader", scopes: ["deployments:read"] });
    const auth = createAuthenticator(tdb.db);
    const h = (v?: string) => new Headers(v ? { authorization: v } : {});
    await expect(auth.authenticate(h(`Bearer ${key}`), "deployments:read")).resolves.toMatchObject({ workspace: "acme", name: "reader" });
    await expect(auth.authenticate(h(`Bearer ${key}`), "deployments:write")).rejects.toMatchObject({ code: Code.PermissionDenied });
    await expect(auth.authenticate(h(), "deployments:read")).rejects.toMatchObject({ code: Code.Unauthenticated });
    await expect(auth.authenticate(h("Bearer nope"), "deployments:read")).rejects.toMatchObject({ code: Code.Unauthenticated });
    const stored = await tdb.db.selectFrom("api_keys").select("key_hash").where("principal", "=", "reader").executeTakeFirstOrThrow();
    expect(stored.key_hash).not.toContain(key);
  });
});
