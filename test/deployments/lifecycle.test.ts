// A deployment's whole life on the service layer, through the real queue and
// a worker on the no-op runtime, against real Postgres and NATS: update (a new
// revision), scale, stop and resume, rollback, cancel, and every refusal on
// the way, with the events gapless and the percent never going down.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApiDeps } from "../../src/api/deps.js";
import { findDeploymentByName } from "../../src/db/deployments.js";
import { eventsAfter } from "../../src/db/events.js";
import { toDeployment } from "../../src/db/mappers.js";
import { listRevisions } from "../../src/db/revisions.js";
import { findTask } from "../../src/db/tasks.js";
import { cancelTask } from "../../src/deployments/cancel.js";
import { createDeployment } from "../../src/deployments/create.js";
import { deleteDeployment } from "../../src/deployments/delete.js";
import { rollbackDeployment } from "../../src/deployments/rollback.js";
import { updateDeployment, type UpdateInput } from "../../src/deployments/update.js";
import type { Deployment, Principal, Task } from "../../src/domain/types.js";
import { createInput, refused, updateInput, replicas } from "../helpers/api-deps.js";
import { startTestPipeline, type TestPipeline } from "../helpers/pipeline.js";
import { waitFor, type TestDatabase } from "../helpers/services.js";

let pipeline: TestPipeline;
let tdb: TestDatabase;
let deps: ApiDeps;
const alice: Principal = { workspace: "acme", name: "alice", scopes: ["deployments:read", "deployments:write"] };

beforeAll(async () => {
  pipeline = await startTestPipeline();
  ({ tdb, deps } = pipeline);
});

afterAll(async () => {
  await pipeline?.close();
});

/** With no worker, a new task stays PENDING. */
async function withoutWorker(work: () => Promise<void>): Promise<void> {
  await pipeline.stopWorker();
  try {
    await work();
  } finally {
    await pipeline.startWorker();
  }
}

async function settled(task: Task): Promise<Task["status"]> {
  const row = await waitFor(`task ${task.kind} ${task.id} to end`, async () => {
    const t = await findTask(tdb.db, task.id);
    return t && ["COMPLETED", "FAILED", "CANCELLED"].includes(t.status) ? t : undefined;
  });
  return row.status;
}

async function current(name: string): Promise<Deployment> {
  return toDeployment((await findDeploymentByName(tdb.db, "acme", name))!);
}

const update = (name: string, over: Partial<UpdateInput>) => updateDeployment(deps, alice, updateInput(name, over));

async function running(suffix: string): Promise<Deployment> {
  const { deployment, task } = await createDeployment(deps, alice, createInput({ suffix }));
  expect(await settled(task)).toBe("COMPLETED");
  return current(deployment.name);
}

describe("UpdateDeployment", () => {
  it("rolls out a new model as revision 2: UPDATING while it runs, then RUNNING on the new revision", async () => {
    const d = await running("upd");
    const model = { ...d.model, revision: "2", uri: "file:///nonexistent/noop-v2.onnx" };
    const { deployment, task } = await update(d.name, { model });
    expect(task).toMatchObject({ kind: "UPDATE", revision: 2, status: "PENDING" });
    expect(deployment).toMatchObject({ state: "UPDATING", servingRevision: 1, targetRevision: 2, activeTaskId: task.id });
    // Serving revision 1 is unchanged until the switch.
    expect(deployment.model.revision).toBe("1");
    expect(await settled(task)).toBe("COMPLETED");
    const after = await current(d.name);
    expect(after).toMatchObject({ state: "RUNNING", servingRevision: 2, targetRevision: 2, activeTaskId: null, model: { revision: "2", uri: model.uri } });
    expect(after.endpointUrl).not.toBe("");
    const revisions = await listRevisions(tdb.db, d.uid);
    expect(revisions.map((r) => [r.number, r.model.revision, r.taskId])).toEqual([
      [1, "1", expect.any(String)],
      [2, "2", task.id],
    ]);

    const events = await eventsAfter(tdb.db, d.uid, 0, 1000);
    expect(events.map((e) => e.sequence)).toEqual(events.map((_, i) => i + 1));
    const mine = events.filter((e) => e.task?.id === task.id);
    const percents = mine.map((e) => e.task!.progress.percent);
    expect([...percents].sort((a, b) => a - b)).toEqual(percents);
    // The serving revision moves once, at the switch, and never back.
    const serving = mine.map((e) => e.deployment.servingRevision);
    expect(serving.indexOf(2)).toBeGreaterThan(0);
    expect(serving.slice(serving.indexOf(2)).every((r) => r === 2)).toBe(true);
    expect(mine.find((e) => e.deployment.servingRevision === 2)!.task!.phase).toBe("DRAINING");
  });

  it("runs a canary step by step: each split shows on the deployment and in the task's progress, then all traffic moves", async () => {
    const d = await running("canary");
    const model = { ...d.model, revision: "2", uri: "file:///nonexistent/noop-canary.onnx" };
    // The no-op runtime serves no requests: minRequests 0 judges each step on none.
    const rollout = {
      strategy: "CANARY" as const,
      steps: [
        { percent: 10, pauseSeconds: 0 },
        { percent: 50, pauseSeconds: 0 },
      ],
      maxErrorRate: undefined,
      minRequests: 0,
    };
    const { task } = await update(d.name, { model, rollout });
    expect(task.rollout).toMatchObject({ strategy: "CANARY", steps: rollout.steps, minRequests: 0 });
    expect(await settled(task)).toBe("COMPLETED");
    expect(await current(d.name)).toMatchObject({ state: "RUNNING", servingRevision: 2, traffic: [{ revision: 2, percent: 100 }] });

    const mine = (await eventsAfter(tdb.db, d.uid, 0, 1000)).filter((e) => e.task?.id === task.id);
    const splits = mine.map((e) => e.deployment.traffic.map((t) => `${t.revision}:${t.percent}`).join(" "));
    // Serving revision 1 alone, then each step in order, then revision 2 alone: never back.
    const distinct = splits.filter((s, i) => s !== splits[i - 1]);
    expect(distinct).toEqual(["1:100", "1:90 2:10", "1:50 2:50", "2:100"]);
    const steps = mine.filter((e) => e.task!.progress.rolloutStep > 0).map((e) => [e.task!.progress.rolloutStep, e.task!.progress.rolloutSteps]);
    expect(steps[0]).toEqual([1, 2]);
    expect(steps.at(-1)).toEqual([2, 2]);
  });

  it("scales without a new revision, stops at 0 replicas and resumes", async () => {
    const d = await running("scale");
    const up = await update(d.name, { scaling: replicas(3, 3) });
    expect(up.task).toMatchObject({ kind: "SCALE", revision: 1 });
    expect(await settled(up.task)).toBe("COMPLETED");
    expect(await current(d.name)).toMatchObject({
      state: "RUNNING",
      servingRevision: 1,
      scaling: replicas(3, 3),
      instances: { desired: 3, ready: 3 },
    });

    const stop = await update(d.name, { scaling: replicas(0, 0) });
    expect(await settled(stop.task)).toBe("COMPLETED");
    expect(await current(d.name)).toMatchObject({ state: "STOPPED", endpointUrl: "", instances: { desired: 0, ready: 0 }, scaling: { maxReplicas: 0 } });

    const resume = await update(d.name, { scaling: replicas(1, 1) });
    expect(await settled(resume.task)).toBe("COMPLETED");
    const after = await current(d.name);
    expect(after).toMatchObject({ state: "RUNNING", servingRevision: 1, instances: { desired: 1, ready: 1 } });
    expect(after.endpointUrl).not.toBe("");
    expect((await listRevisions(tdb.db, d.uid)).map((r) => r.number)).toEqual([1]);

    // A new model while stopped: recorded as the serving revision, still stopped.
    await settled((await update(d.name, { scaling: replicas(0, 0) })).task);
    const v2 = await update(d.name, { model: { ...d.model, revision: "2" } });
    expect(await settled(v2.task)).toBe("COMPLETED");
    expect(await current(d.name)).toMatchObject({ state: "STOPPED", servingRevision: 2, endpointUrl: "", model: { revision: "2" }, instances: { desired: 0 } });
  });

  it("refuses an empty update, an unchanged spec, a bad spec and a second change while one runs, changing nothing", async () => {
    const d = await running("refuse");
    expect(await refused(update(d.name, {}))).toMatchObject({ kind: "invalid", reason: "UPDATE_EMPTY" });
    expect(await refused(update(d.name, { scaling: d.scaling, model: d.model }))).toMatchObject({ kind: "failed_precondition", reason: "NO_CHANGE" });
    const bad = await refused(update(d.name, { scaling: replicas(3, 1) }));
    expect(bad).toMatchObject({ kind: "invalid", reason: "REPLICAS_INVALID" });
    expect(await refused(update("no-such-deployment", { scaling: d.scaling }))).toMatchObject({ kind: "not_found", reason: "DEPLOYMENT_NOT_FOUND" });

    // With no worker, the first change stays PENDING: the second is refused with its id.
    await withoutWorker(async () => {
      const first = await update(d.name, { scaling: replicas(2, 2) });
      const second = await refused(update(d.name, { scaling: replicas(4, 4) }));
      expect(second).toMatchObject({ kind: "failed_precondition", reason: "TASK_IN_PROGRESS", metadata: { activeTaskId: first.task.id } });
      expect(await refused(rollbackDeployment(deps, alice, { name: d.name, revision: 0, requestId: "" }))).toMatchObject({ reason: "TASK_IN_PROGRESS" });
      // The same requestId answers the same task; another body with it is refused.
      const a = await cancelTask(deps, alice, first.task.id);
      expect(a.status).toBe("CANCELLED");
      const r1 = await update(d.name, { scaling: replicas(2, 2), requestId: "upd-req-1" });
      const r2 = await update(d.name, { scaling: replicas(2, 2), requestId: "upd-req-1" });
      expect(r2.task.id).toBe(r1.task.id);
      expect(await refused(update(d.name, { scaling: replicas(5, 5), requestId: "upd-req-1" }))).toMatchObject({
        reason: "REQUEST_ID_REUSED",
      });
      await cancelTask(deps, alice, r1.task.id);
    });
    expect(await current(d.name)).toMatchObject({ state: "RUNNING", scaling: d.scaling, activeTaskId: null });
  });

  it("deploys again a deployment whose first deploy failed", async () => {
    const { deployment, task } = await createDeployment(deps, alice, createInput({ suffix: "redeploy" }));
    // Cancelled before any worker ran it: nothing ever served.
    await pipeline.stopWorker();
    try {
      const cancelled = await createDeployment(deps, alice, createInput({ suffix: "redeploy2" }));
      const c = await cancelTask(deps, alice, cancelled.task.id);
      expect(c).toMatchObject({ status: "CANCELLED", rolledBack: false, failure: { reason: "CANCELLED" } });
      expect(await current(cancelled.deployment.name)).toMatchObject({
        state: "FAILED",
        servingRevision: 0,
        activeTaskId: null,
        failure: { reason: "CANCELLED" },
      });
      expect(await refused(rollbackDeployment(deps, alice, { name: cancelled.deployment.name, revision: 0, requestId: "" }))).toMatchObject({
        reason: "NO_PREVIOUS_REVISION",
      });
      const again = await update(cancelled.deployment.name, { scaling: replicas(1, 1) });
      expect(again.task).toMatchObject({ kind: "UPDATE", revision: 2 });
      await pipeline.startWorker();
      expect(await settled(again.task)).toBe("COMPLETED");
      expect(await current(cancelled.deployment.name)).toMatchObject({ state: "RUNNING", servingRevision: 2, failure: null });
    } finally {
      await pipeline.startWorker();
    }
    expect(await settled(task)).toBe("COMPLETED");
    expect((await current(deployment.name)).state).toBe("RUNNING");
  });
});

describe("RollbackDeployment", () => {
  it("rolls back to the previous revision's model as a new revision, or to a chosen one", async () => {
    const d = await running("rb");
    const v2 = await update(d.name, { model: { ...d.model, revision: "2" } });
    expect(await settled(v2.task)).toBe("COMPLETED");
    const back = await rollbackDeployment(deps, alice, { name: d.name, revision: 0, requestId: "" });
    expect(back.task).toMatchObject({ kind: "ROLLBACK", revision: 3 });
    expect(back.deployment.state).toBe("ROLLING_BACK");
    expect(await settled(back.task)).toBe("COMPLETED");
    expect(await current(d.name)).toMatchObject({ state: "RUNNING", servingRevision: 3, model: { revision: "1" } });
    // Previous of 3 is 2 (it served); to 2 explicitly works the same.
    const toTwo = await rollbackDeployment(deps, alice, { name: d.name, revision: 2, requestId: "" });
    expect(await settled(toTwo.task)).toBe("COMPLETED");
    expect(await current(d.name)).toMatchObject({ servingRevision: 4, model: { revision: "2" } });
    const revisions = await listRevisions(tdb.db, d.uid);
    expect(revisions.map((r) => [r.number, r.model.revision])).toEqual([
      [1, "1"],
      [2, "2"],
      [3, "1"],
      [4, "2"],
    ]);

    expect(await refused(rollbackDeployment(deps, alice, { name: d.name, revision: 4, requestId: "" }))).toMatchObject({
      kind: "failed_precondition",
      reason: "REVISION_ALREADY_SERVING",
    });
    expect(await refused(rollbackDeployment(deps, alice, { name: d.name, revision: 9, requestId: "" }))).toMatchObject({
      kind: "not_found",
      reason: "REVISION_NOT_FOUND",
    });
    expect(await refused(rollbackDeployment(deps, alice, { name: d.name, revision: -1, requestId: "" }))).toMatchObject({
      kind: "invalid",
      reason: "REVISION_INVALID",
    });
  });
});

describe("CancelDeploymentTask", () => {
  it("cancels a pending update: the serving revision keeps serving, and the cancelled revision never does", async () => {
    const d = await running("cancel");
    let updateTask!: Task;
    await withoutWorker(async () => {
      updateTask = (await update(d.name, { model: { ...d.model, revision: "2" } })).task;
      const cancelled = await cancelTask(deps, alice, updateTask.id);
      expect(cancelled).toMatchObject({ status: "CANCELLED", rolledBack: true, failure: { reason: "CANCELLED", message: "cancelled by alice" } });
      expect(cancelled.endTime).not.toBeNull();
      expect(await current(d.name)).toMatchObject({ state: "RUNNING", servingRevision: 1, targetRevision: 1, activeTaskId: null, failure: null });
      // Cancelling again answers the same cancellation and changes nothing.
      const sequence = (await current(d.name)).sequence;
      expect(await cancelTask(deps, alice, updateTask.id)).toMatchObject({ id: updateTask.id, status: "CANCELLED", endTime: cancelled.endTime });
      expect((await current(d.name)).sequence).toBe(sequence);
    });
    // Redelivered to the worker, the cancelled task's message changes nothing.
    const again = await update(d.name, { scaling: replicas(2, 2) });
    expect(await settled(again.task)).toBe("COMPLETED");
    expect(await current(d.name)).toMatchObject({ servingRevision: 1, state: "RUNNING" });
    expect((await findTask(tdb.db, updateTask.id))!.status).toBe("CANCELLED");
  });

  it("refuses to cancel a deletion, a finished task, or another workspace's task", async () => {
    const d = await running("cancel2");
    const other: Principal = { workspace: "other", name: "bob", scopes: alice.scopes };
    expect(await refused(cancelTask(deps, other, d.activeTaskId ?? "x"))).toMatchObject({ kind: "not_found" });
    const created = (await findTask(tdb.db, (await listRevisions(tdb.db, d.uid))[0]!.taskId))!;
    expect(await refused(cancelTask(deps, alice, created.id))).toMatchObject({ reason: "TASK_NOT_CANCELLABLE", metadata: { status: "COMPLETED" } });
    expect(await refused(cancelTask(deps, other, created.id))).toMatchObject({ kind: "not_found", reason: "TASK_NOT_FOUND" });
    await withoutWorker(async () => {
      const del = await deleteDeployment(deps, alice, d.name, "");
      expect(await refused(cancelTask(deps, alice, del.id))).toMatchObject({ reason: "TASK_NOT_CANCELLABLE", metadata: { kind: "DELETE" } });
      // A deleting deployment takes no other change.
      expect(await refused(update(d.name, { scaling: replicas(2, 2) }))).toMatchObject({ reason: "DEPLOYMENT_DELETING" });
    });
  });
});
