// The autoscaler against real Postgres and NATS, on the no-op runtime with
// gateway counts the test drives: up under load with a SCALED event saying
// why, to zero (IDLE, endpoint kept) without requests, back to RUNNING when a
// request wakes a replica (the observer), and never while a task owns the
// deployment.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { findDeploymentByName } from "../../src/db/deployments.js";
import { eventsAfter } from "../../src/db/events.js";
import { toDeployment, toTask } from "../../src/db/mappers.js";
import { findTask } from "../../src/db/tasks.js";
import { createDeployment } from "../../src/deployments/create.js";
import { updateDeployment } from "../../src/deployments/update.js";
import type { Deployment, Principal, Task } from "../../src/domain/types.js";
import { silentLogger } from "../../src/log.js";
import type { DeploymentTraffic, RuntimeDriver } from "../../src/runtime/driver.js";
import { createNoopDriver } from "../../src/runtime/noop-driver.js";
import { startAutoscaler, type Autoscaler } from "../../src/worker/autoscaler.js";
import { startObserver, type Observer } from "../../src/worker/observer.js";
import { createInput, updateInput } from "../helpers/api-deps.js";
import { startTestPipeline, type TestPipeline } from "../helpers/pipeline.js";
import { waitFor } from "../helpers/services.js";

const alice: Principal = { workspace: "acme", name: "alice", scopes: ["deployments:read", "deployments:write"] };

/** Per deployment: requests in flight now; each reading integrates it over real time and counts arrivals while it is above 0. */
const load = new Map<string, number>();
const counters = new Map<string, DeploymentTraffic & { at: number }>();
const noop = createNoopDriver();
const driver: RuntimeDriver = {
  ...noop,
  name: "loaded-noop",
  async trafficStats(uid) {
    const now = Date.now();
    const inFlight = load.get(uid) ?? 0;
    const c = counters.get(uid) ?? { deploymentUid: uid, epoch: "e1", inFlight, inFlightSeconds: 0, arrivals: 0, revisions: [], at: now };
    c.inFlightSeconds += (c.inFlight * (now - c.at)) / 1000;
    c.arrivals += inFlight > 0 ? 1 : 0;
    c.inFlight = inFlight;
    c.at = now;
    counters.set(uid, c);
    const { at: _at, ...traffic } = c;
    return structuredClone(traffic);
  },
};

let pipeline: TestPipeline;
let autoscaler: Autoscaler;
let observer: Observer;
beforeAll(async () => {
  pipeline = await startTestPipeline({ driver });
  autoscaler = startAutoscaler({ db: pipeline.tdb.db, sink: pipeline.deps.sink, driver, logger: silentLogger, intervalMs: 200 });
  observer = startObserver({ db: pipeline.tdb.db, sink: pipeline.deps.sink, driver, logger: silentLogger, intervalMs: 200, revisitPasses: 1 });
});
afterAll(async () => {
  await autoscaler?.stop();
  await observer?.stop();
  await pipeline?.close();
});

async function ended(task: Task): Promise<Task> {
  return waitFor(`task ${task.id} to end`, async () => {
    const row = await findTask(pipeline.tdb.db, task.id);
    const t = row && toTask(row);
    return t && ["COMPLETED", "FAILED", "CANCELLED"].includes(t.status) ? t : undefined;
  });
}

const current = async (name: string): Promise<Deployment> => toDeployment((await findDeploymentByName(pipeline.tdb.db, "acme", name))!);
const until = (what: string, name: string, ok: (d: Deployment) => boolean) =>
  waitFor(what, async () => {
    const d = await current(name);
    return ok(d) ? d : undefined;
  });

describe("the autoscaler", () => {
  it("scales up under load, to zero without requests (IDLE, endpoint kept), and the observer records a wake", async () => {
    const scaling = { minReplicas: 0, maxReplicas: 3, targetInFlight: 1, scaleDownDelaySeconds: 1, wakeTimeoutSeconds: 30 };
    const { deployment, task } = await createDeployment(pipeline.deps, alice, createInput({ suffix: "auto", scaling }));
    expect((await ended(task)).status).toBe("COMPLETED");
    const name = deployment.name;
    const endpoint = (await current(name)).endpointUrl;
    expect(endpoint).not.toBe("");

    load.set(deployment.uid, 5);
    const up = await until("a scale-up to 3", name, (d) => d.instances.desired === 3);
    expect(up.state).toBe("RUNNING");
    expect(await noop.revisionStatus(deployment.uid, 1)).toMatchObject({ desired: 3 });

    load.set(deployment.uid, 0);
    const idle = await until("IDLE", name, (d) => d.state === "IDLE");
    expect(idle).toMatchObject({ endpointUrl: endpoint, instances: { desired: 0, ready: 0 } });
    expect(await noop.revisionStatus(deployment.uid, 1)).toMatchObject({ desired: 0 });

    const scaled = (await eventsAfter(pipeline.tdb.db, deployment.uid, 0, 1000)).filter((e) => e.type === "SCALED");
    expect(scaled[0]!.message).toMatch(/^scaled to 3 replica\(s\): in-flight [\d.]+ per replica > 1 for \d+ s$/);
    expect(scaled.at(-1)!.message).toMatch(/^scaled to 0 replica\(s\): no requests for \d+ s$/);
    expect(scaled.at(-1)!.deployment.state).toBe("IDLE");

    // A request wakes one replica on the runtime (the gateway's doing): the observer records it.
    await noop.scaleRevision(deployment.uid, 1, 1);
    const woken = await until("RUNNING after the wake", name, (d) => d.state === "RUNNING");
    expect(woken).toMatchObject({ endpointUrl: endpoint, instances: { desired: 1, ready: 1 } });
  });

  it("holds while a task owns the deployment", async () => {
    const scaling = { minReplicas: 1, maxReplicas: 3, targetInFlight: 1, scaleDownDelaySeconds: 1, wakeTimeoutSeconds: 60 };
    const { deployment, task } = await createDeployment(pipeline.deps, alice, createInput({ suffix: "held", scaling }));
    expect((await ended(task)).status).toBe("COMPLETED");
    await pipeline.stopWorker();
    try {
      const model = { ...deployment.model, revision: "2", uri: "file:///nonexistent/held-v2.onnx" };
      const update = await updateDeployment(pipeline.deps, alice, updateInput(deployment.name, { model }));
      load.set(deployment.uid, 10);
      // Passes of its own: however many, none changes a deployment a task owns.
      for (let i = 0; i < 5; i++) await autoscaler.scaleOnce();
      expect(await current(deployment.name)).toMatchObject({ activeTaskId: update.task.id, instances: { desired: 1 } });
    } finally {
      load.set(deployment.uid, 0);
      await pipeline.startWorker();
    }
  });
});
