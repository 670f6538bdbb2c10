// Canary judgement: the worker reads the runtime's counts of the new
// revision's requests and failures, and a step whose error rate is above
// maxErrorRate returns all traffic to the old revision at once. Real Postgres
// and NATS; the runtime is the no-op driver with counts the test sets.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { findDeploymentByName } from "../../src/db/deployments.js";
import { toDeployment, toTask } from "../../src/db/mappers.js";
import { findTask } from "../../src/db/tasks.js";
import { createDeployment } from "../../src/deployments/create.js";
import { cancelTask } from "../../src/deployments/cancel.js";
import { updateDeployment } from "../../src/deployments/update.js";
import type { Principal, Task } from "../../src/domain/types.js";
import type { DeploymentTraffic, RuntimeDriver, TrafficShare } from "../../src/runtime/driver.js";
import { createNoopDriver } from "../../src/runtime/noop-driver.js";
import { countedBetween } from "../../src/worker/canary.js";
import { createInput, updateInput } from "../helpers/api-deps.js";
import { startTestPipeline, type TestPipeline } from "../helpers/pipeline.js";
import { waitFor } from "../helpers/services.js";

const alice: Principal = { workspace: "acme", name: "alice", scopes: ["deployments:read", "deployments:write"] };

/** Per deployment: what each reading of its counts adds to each revision ([requests, failures]). */
const perReading = new Map<string, Map<number, [number, number]>>();
const splits = new Map<string, TrafficShare[][]>();
const noop = createNoopDriver();
const counts = new Map<string, DeploymentTraffic>();
const driver: RuntimeDriver = {
  ...noop,
  name: "counting-noop",
  async splitTraffic(spec, shares) {
    splits.set(spec.deploymentUid, [...(splits.get(spec.deploymentUid) ?? []), shares]);
    return noop.splitTraffic(spec, shares);
  },
  async trafficStats(uid) {
    const t = counts.get(uid) ?? { deploymentUid: uid, epoch: "e1", inFlight: 0, inFlightSeconds: 0, arrivals: 0, revisions: [] };
    for (const [revision, [requests, failures]] of perReading.get(uid) ?? []) {
      const r = t.revisions.find((x) => x.revision === revision) ?? { revision, requests: 0, failures: 0 };
      if (!t.revisions.includes(r)) t.revisions.push(r);
      r.requests += requests;
      r.failures += failures;
    }
    counts.set(uid, t);
    return structuredClone(t);
  },
};

let pipeline: TestPipeline;
beforeAll(async () => {
  pipeline = await startTestPipeline({ driver });
});
afterAll(async () => {
  await pipeline?.close();
});

async function ended(task: Task): Promise<Task> {
  return waitFor(`task ${task.id} to end`, async () => {
    const row = await findTask(pipeline.tdb.db, task.id);
    const t = row && toTask(row);
    return t && ["COMPLETED", "FAILED", "CANCELLED"].includes(t.status) ? t : undefined;
  });
}

async function canaryOf(suffix: string, newRevision: [number, number]) {
  const { deps, tdb } = pipeline;
  const created = await createDeployment(deps, alice, createInput({ suffix }));
  expect((await ended(created.task)).status).toBe("COMPLETED");
  const uid = created.deployment.uid;
  perReading.set(uid, new Map([[2, newRevision]]));
  const model = { ...created.deployment.model, revision: "2", uri: "file:///nonexistent/canary-v2.onnx" };
  const rollout = { strategy: "CANARY" as const, steps: [{ percent: 20, pauseSeconds: 0 }], maxErrorRate: 0.05, minRequests: 10 };
  const { task } = await updateDeployment(deps, alice, updateInput(created.deployment.name, { model, rollout }));
  const done = await ended(task);
  const after = toDeployment((await findDeploymentByName(tdb.db, "acme", created.deployment.name))!);
  return { uid, done, after };
}

describe("a canary step", () => {
  it("fails with CANARY_FAILED and returns all traffic to the old revision when the new one fails too often", async () => {
    // Each reading: 10 more requests to revision 2, 3 of them failed (30 % > 5 %).
    const { uid, done, after } = await canaryOf("bad", [10, 3]);
    expect(done).toMatchObject({ status: "FAILED", rolledBack: true, failure: { reason: "CANARY_FAILED" } });
    expect(done.failure!.message).toMatch(/canary step 1\/1 \(20%\): 3 of 10 requests to revision 2 failed \(error rate 30%/);
    expect(done.failure!.message).toMatch(/returned to revision 1/);
    // The failure keeps the progress the attempt reached: percent never goes down.
    expect(done.progress).toMatchObject({ rolloutStep: 1, rolloutSteps: 1 });
    expect(done.progress.percent).toBeGreaterThanOrEqual(90);
    expect(after).toMatchObject({ state: "RUNNING", servingRevision: 1, traffic: [{ revision: 1, percent: 100 }] });
    expect(splits.get(uid)).toEqual([
      [
        { revision: 1, percent: 80 },
        { revision: 2, percent: 20 },
      ],
      [{ revision: 1, percent: 100 }],
    ]);
  });

  it("passes when the new revision's error rate is within maxErrorRate", async () => {
    const { done, after } = await canaryOf("good", [10, 0]);
    expect(done).toMatchObject({ status: "COMPLETED" });
    expect(after).toMatchObject({ state: "RUNNING", servingRevision: 2, traffic: [{ revision: 2, percent: 100 }] });
  });
});

describe("a canary cancelled mid-step", () => {
  it("returns all traffic to the old revision at once and stops the new one", async () => {
    const { deps, tdb } = pipeline;
    const created = await createDeployment(deps, alice, createInput({ suffix: "cancel" }));
    expect((await ended(created.task)).status).toBe("COMPLETED");
    const uid = created.deployment.uid;
    // No request ever reaches revision 2: the step is held for minRequests.
    perReading.set(uid, new Map([[2, [0, 0]]]));
    const model = { ...created.deployment.model, revision: "2", uri: "file:///nonexistent/canary-cancel.onnx" };
    const rollout = { strategy: "CANARY" as const, steps: [{ percent: 25, pauseSeconds: 0 }], maxErrorRate: undefined, minRequests: 10 };
    const { task } = await updateDeployment(deps, alice, updateInput(created.deployment.name, { model, rollout }));
    const split = await waitFor("the canary's split in force", async () => {
      const d = toDeployment((await findDeploymentByName(tdb.db, "acme", created.deployment.name))!);
      return d.traffic.length === 2 ? d.traffic : undefined;
    });
    expect(split).toEqual([
      { revision: 1, percent: 75 },
      { revision: 2, percent: 25 },
    ]);
    await cancelTask(deps, alice, task.id);
    const done = await ended(task);
    expect(done).toMatchObject({ status: "CANCELLED", rolledBack: true });
    const after = toDeployment((await findDeploymentByName(tdb.db, "acme", created.deployment.name))!);
    expect(after).toMatchObject({ state: "RUNNING", servingRevision: 1, traffic: [{ revision: 1, percent: 100 }] });
    // The runtime follows: revision 1 takes every request again and revision 2 stops.
    await waitFor("revision 2 stopped on the runtime", async () => ((await noop.revisionStatus(uid, 2)).desired === 0 ? true : undefined));
    const serving = (await noop.observe()).find((o) => o.deploymentUid === uid);
    expect(serving?.servingRevision).toBe(1);
  });
});

describe("a canary whose worker stops mid-step", () => {
  it("resumes at the step it reached on the next attempt, never going back to an earlier split", async () => {
    const { deps, tdb } = pipeline;
    const created = await createDeployment(deps, alice, createInput({ suffix: "resume" }));
    expect((await ended(created.task)).status).toBe("COMPLETED");
    const uid = created.deployment.uid;
    perReading.set(uid, new Map([[2, [10, 0]]]));
    const model = { ...created.deployment.model, revision: "2", uri: "file:///nonexistent/canary-resume.onnx" };
    // Step 2's pause outlasts the worker's stop grace (5 s): the stop aborts the attempt in it.
    const rollout = {
      strategy: "CANARY" as const,
      steps: [
        { percent: 10, pauseSeconds: 0 },
        { percent: 50, pauseSeconds: 8 },
      ],
      maxErrorRate: undefined,
      minRequests: 10,
    };
    const { task } = await updateDeployment(deps, alice, updateInput(created.deployment.name, { model, rollout }));
    await waitFor("step 2 in force", async () => {
      const row = await findTask(tdb.db, task.id);
      return row && toTask(row).progress.rolloutStep === 2 ? true : undefined;
    });
    await pipeline.stopWorker();
    await pipeline.startWorker();
    const done = await ended(task);
    expect(done).toMatchObject({ status: "COMPLETED" });
    expect(done.attempt).toBeGreaterThanOrEqual(2);
    const percents = (splits.get(uid) ?? []).map((shares) => shares.find((x) => x.revision === 2)?.percent);
    expect(percents[0]).toBe(10);
    expect(percents.slice(1)).toEqual(percents.slice(1).map(() => 50));
    expect(percents.length).toBeGreaterThanOrEqual(3);
  });
});

describe("countedBetween", () => {
  const at = (epoch: string, requests: number, failures: number): DeploymentTraffic => ({
    deploymentUid: "u",
    epoch,
    inFlight: 0,
    inFlightSeconds: 0,
    arrivals: requests,
    revisions: [{ revision: 2, requests, failures }],
  });
  it("counts the difference within one runtime epoch, and from zero after a runtime restart", () => {
    expect(countedBetween(at("a", 10, 1), at("a", 25, 4), 2)).toEqual({ requests: 15, failures: 3 });
    expect(countedBetween(at("a", 100, 1), at("b", 7, 2), 2)).toEqual({ requests: 7, failures: 2 });
    expect(countedBetween(undefined, at("a", 5, 0), 2)).toEqual({ requests: 5, failures: 0 });
    expect(countedBetween(at("a", 5, 0), undefined, 2)).toEqual({ requests: 0, failures: 0 });
  });
});
