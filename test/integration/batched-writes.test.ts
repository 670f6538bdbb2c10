// The batched writes on real Postgres: concurrent creates that land in one
// statement, names taken inside a batch, requestIds raced inside a batch, and
// worker writes of several tasks in one statement with per-task fencing.
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDeployment } from "../../src/deployments/create.js";
import { applyAttemptChanges } from "../../src/db/attempt-changes.js";
import { FencedError } from "../../src/db/changes.js";
import { eventsAfter } from "../../src/db/events.js";
import { claimTask, claimTasks } from "../../src/db/tasks.js";
import { RefusedError } from "../../src/domain/errors.js";
import { emptyProgress, type DeploymentEvent, type Principal } from "../../src/domain/types.js";
import { createEventBus, type EventBus } from "../../src/queue/event-bus.js";
import { createInput, testApiDeps } from "../helpers/api-deps.js";
import { createTestDatabase, createTestQueue, waitFor, type TestDatabase, type TestQueue } from "../helpers/services.js";

let tdb: TestDatabase;
let tq: TestQueue;
let bus: EventBus;
const alice: Principal = { workspace: "acme", name: "alice", scopes: ["deployments:read", "deployments:write"] };

const count = async (table: "deployments" | "tasks" | "events" | "outbox" | "revisions") =>
  Number(
    (
      await tdb.db
        .selectFrom(table)
        .select((eb) => eb.fn.countAll<string>().as("n"))
        .executeTakeFirstOrThrow()
    ).n,
  );

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

describe("batched creates", () => {
  it("writes every concurrent create with its revision, task, event and outbox row", async () => {
    const deps = testApiDeps(tdb.db, bus);
    const before = { d: await count("deployments"), o: await count("outbox"), e: await count("events"), r: await count("revisions") };
    const created = await Promise.all(Array.from({ length: 40 }, () => createDeployment(deps, alice, createInput())));
    expect(new Set(created.map((c) => c.deployment.name)).size).toBe(40);
    for (const c of created) {
      expect(c.deployment.state).toBe("PENDING");
      expect(c.deployment.sequence).toBe(1);
      expect(c.task.deploymentUid).toBe(c.deployment.uid);
      const events = await eventsAfter(tdb.db, c.deployment.uid, 0, 10);
      expect(events.map((e) => [e.sequence, e.type, e.task?.id])).toEqual([[1, "STATE_CHANGED", c.task.id]]);
    }
    expect(await count("deployments")).toBe(before.d + 40);
    expect(await count("revisions")).toBe(before.r + 40);
    expect(await count("events")).toBe(before.e + 40);
    expect(await count("outbox")).toBe(before.o + 40);
  });

  it("gives one of many concurrent creates of the same name the name, and ALREADY_EXISTS to the rest, writing nothing for them", async () => {
    const deps = testApiDeps(tdb.db, bus);
    const before = { d: await count("deployments"), t: await count("tasks"), o: await count("outbox") };
    const results = await Promise.all(
      Array.from({ length: 10 }, () =>
        createDeployment(deps, alice, createInput({ suffix: "same" })).then(
          (r) => r,
          (e: unknown) => e,
        ),
      ),
    );
    const won = results.filter((r) => !(r instanceof Error));
    const lost = results.filter((r) => r instanceof RefusedError);
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(9);
    for (const e of lost) expect(e).toMatchObject({ kind: "already_exists", reason: "NAME_TAKEN" });
    expect(await count("deployments")).toBe(before.d + 1);
    expect(await count("tasks")).toBe(before.t + 1);
    expect(await count("outbox")).toBe(before.o + 1);
  });

  it("answers concurrent creates with one requestId with one deployment", async () => {
    const deps = testApiDeps(tdb.db, bus);
    const before = await count("deployments");
    const results = await Promise.all(Array.from({ length: 8 }, () => createDeployment(deps, alice, createInput({ requestId: "batch-req-1" }))));
    expect(new Set(results.map((r) => r.deployment.uid)).size).toBe(1);
    expect(new Set(results.map((r) => r.task.id)).size).toBe(1);
    expect(await count("deployments")).toBe(before + 1);
  });

  it("answers a retried create with its chosen name with the original result, not ALREADY_EXISTS", async () => {
    const deps = testApiDeps(tdb.db, bus);
    const before = await count("deployments");
    // Raced in one batch, and once more after the first has committed.
    const raced = await Promise.all(
      Array.from({ length: 6 }, () => createDeployment(deps, alice, createInput({ suffix: "retried", requestId: "batch-req-2" }))),
    );
    const later = await createDeployment(deps, alice, createInput({ suffix: "retried", requestId: "batch-req-2" }));
    expect(new Set([...raced, later].map((r) => r.task.id)).size).toBe(1);
    expect(await count("deployments")).toBe(before + 1);
    // Another request for the taken name is still refused.
    const other = await createDeployment(deps, alice, createInput({ suffix: "retried", requestId: "batch-req-3" })).catch((e: unknown) => e);
    expect(other).toBeInstanceOf(RefusedError);
    expect(other).toMatchObject({ kind: "already_exists", reason: "NAME_TAKEN" });
  });
});

describe("batched worker writes", () => {
  it("applies several tasks' changes in one statement and fences only the stale attempt", async () => {
    const deps = testApiDeps(tdb.db, bus);
    const [a, b] = await Promise.all([createDeployment(deps, alice, createInput()), createDeployment(deps, alice, createInput())]);
    // Each claim starts its fresh deploy: event 2.
    const claimA = await claimTask(tdb.db, a!.task.id, "w1", 60_000);
    const claimB = await claimTask(tdb.db, b!.task.id, "w1", 60_000);
    expect(claimA.kind).toBe("claimed");
    expect(claimB.kind).toBe("claimed");
    const results = await applyAttemptChanges(tdb.db, [
      {
        deploymentUid: a!.deployment.uid,
        type: "STATE_CHANGED",
        taskId: a!.task.id,
        attempt: 1,
        task: { status: "RUNNING", phase: "VALIDATING" },
        deployment: { state: "INITIALIZING" },
      },
      // A stale attempt of b: fenced, and b's deployment is left untouched.
      {
        deploymentUid: b!.deployment.uid,
        type: "PROGRESS",
        taskId: b!.task.id,
        attempt: 0,
        task: { phase: "DOWNLOADING" },
        deployment: { state: "DOWNLOADING" },
      },
      // Two changes of a in one call: applied one after the other, in order.
      {
        deploymentUid: a!.deployment.uid,
        type: "PROGRESS",
        taskId: a!.task.id,
        attempt: 1,
        task: { phase: "DOWNLOADING", progress: { ...emptyProgress(), percent: 5, message: "fetching" } },
        deployment: { state: "DOWNLOADING" },
      },
    ]);
    const [first, stale, second] = results as [DeploymentEvent, FencedError, DeploymentEvent];
    expect(first.sequence).toBe(3);
    expect(first.deployment.state).toBe("INITIALIZING");
    expect(first.task?.status).toBe("RUNNING");
    expect(stale).toBeInstanceOf(FencedError);
    expect(second.sequence).toBe(4);
    expect(second.deployment.state).toBe("DOWNLOADING");
    expect(second.task?.phase).toBe("DOWNLOADING");
    expect(second.task?.progress.percent).toBe(5);
    expect((await eventsAfter(tdb.db, a!.deployment.uid, 0, 10)).map((e) => e.sequence)).toEqual([1, 2, 3, 4]);
    const bEvents = await eventsAfter(tdb.db, b!.deployment.uid, 0, 10);
    expect(bEvents.map((e) => [e.sequence, e.deployment.state])).toEqual([
      [1, "PENDING"],
      [2, "INITIALIZING"],
    ]);
  });

  it("claims several tasks in one statement: each new attempt fences the one before, and a duplicate, a finished, a leased or an unknown task is not claimed", async () => {
    const deps = testApiDeps(tdb.db, bus);
    const [a, b, done, held] = await Promise.all([1, 2, 3, 4].map(() => createDeployment(deps, alice, createInput())));
    // One finished, one held by another worker's live lease.
    await claimTask(tdb.db, done!.task.id, "w0", 60_000);
    await applyAttemptChanges(tdb.db, [
      {
        deploymentUid: done!.deployment.uid,
        type: "TASK_FINISHED",
        taskId: done!.task.id,
        attempt: 1,
        task: { status: "COMPLETED", phase: "DONE" },
        deployment: { active_task_id: null },
      },
    ]);
    await claimTask(tdb.db, held!.task.id, "w0", 60_000);
    // a's attempt 1 is stale once the batch claims attempt 2.
    await claimTask(tdb.db, a!.task.id, "w0", 1);
    await waitFor("a's 1 ms lease to run out", async () => {
      const r = await sql<{ over: boolean }>`select lease_expires_at < now() as over from tasks where id = ${a!.task.id}`.execute(tdb.db);
      return r.rows[0]?.over === true;
    });

    const results = await claimTasks(tdb.db, [a!.task.id, b!.task.id, b!.task.id, done!.task.id, held!.task.id, "no-such-task"], "w1", 60_000);
    expect(results.map((r) => r.kind)).toEqual(["claimed", "claimed", "leased", "terminal", "leased", "missing"]);
    const [ca, cb] = results as Array<Extract<(typeof results)[number], { kind: "claimed" }>>;
    expect([ca!.task.attempt, cb!.task.attempt]).toEqual([2, 1]);
    expect(ca!.task.lease_owner).toBe("w1");
    // The claim read each task's deployment and revision with it.
    expect(ca!.deployment?.uid).toBe(a!.deployment.uid);
    expect(ca!.revision?.number).toBe(1);
    // b, a fresh deploy, started with its claim, in one event; a was started by its first attempt's claim.
    expect(ca!.started).toBeUndefined();
    expect(cb!.task).toMatchObject({ status: "RUNNING", phase: "VALIDATING", progress: { message: "validating (attempt 1)" } });
    expect(cb!.deployment).toMatchObject({ state: "INITIALIZING", sequence: 2, instances: { desired: 1, ready: 0, pending: 0, restarts: 0 } });
    expect(cb!.started).toMatchObject({ sequence: 2, type: "STATE_CHANGED", deployment: { state: "INITIALIZING" }, task: { attempt: 1, phase: "VALIDATING" } });
    expect(cb!.started!.task?.startTime).not.toBeNull();
    expect((await eventsAfter(tdb.db, b!.deployment.uid, 0, 10)).map((e) => [e.sequence, e.type, e.deployment.state, e.task?.phase])).toEqual([
      [1, "STATE_CHANGED", "PENDING", "QUEUED"],
      [2, "STATE_CHANGED", "INITIALIZING", "VALIDATING"],
    ]);
    const [stale, current] = await applyAttemptChanges(tdb.db, [
      { deploymentUid: a!.deployment.uid, type: "PROGRESS", taskId: a!.task.id, attempt: 1, task: { phase: "DOWNLOADING" }, deployment: {} },
      { deploymentUid: b!.deployment.uid, type: "PROGRESS", taskId: b!.task.id, attempt: 1, task: { phase: "DOWNLOADING" }, deployment: {} },
    ]);
    expect(stale).toBeInstanceOf(FencedError);
    expect((current as DeploymentEvent).task?.phase).toBe("DOWNLOADING");
  });

  it("refuses a change of a column an attempt may not touch, writing nothing", async () => {
    const deps = testApiDeps(tdb.db, bus);
    const { deployment, task } = await createDeployment(deps, alice, createInput());
    await claimTask(tdb.db, task.id, "w1", 60_000);
    await expect(
      applyAttemptChanges(tdb.db, [{ deploymentUid: deployment.uid, type: "PROGRESS", taskId: task.id, attempt: 1, task: { attempt: 7 }, deployment: {} }]),
    ).rejects.toThrow(/may not change task.attempt/);
    // Event 2 is the claim's start.
    expect((await eventsAfter(tdb.db, deployment.uid, 0, 10)).map((e) => e.sequence)).toEqual([1, 2]);
  });
});
