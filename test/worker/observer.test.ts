// The observer against a real Postgres: it reads only the deployments that
// may need a correction (changed, owned by a task, touched, or due for a
// recheck), and still corrects what it must (a replica that died, a task that
// ended with counts the runtime no longer has). Only the runtime is a test
// double: a driver whose observations the test sets.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDeployment } from "../../src/deployments/create.js";
import { applyChange } from "../../src/db/changes.js";
import { findDeploymentByUid } from "../../src/db/deployments.js";
import { toDeployment } from "../../src/db/mappers.js";
import type { DeploymentEvent, Principal } from "../../src/domain/types.js";
import { silentLogger } from "../../src/log.js";
import { createEventBus, type EventBus } from "../../src/queue/event-bus.js";
import { connectNats, type NatsConnection } from "../../src/queue/nats.js";
import type { DeploymentObservation, RuntimeDriver } from "../../src/runtime/driver.js";
import { createNoopDriver } from "../../src/runtime/noop-driver.js";
import { startObserver, type Observer } from "../../src/worker/observer.js";
import { createInput, testApiDeps } from "../helpers/api-deps.js";
import { createTestDatabase, NATS_URL, randomName, type TestDatabase } from "../helpers/services.js";

const alice: Principal = { workspace: "acme", name: "alice", scopes: ["deployments:read", "deployments:write"] };
const serving = { desired: 1, ready: 1, pending: 0, restarts: 0 };

let tdb: TestDatabase;
let nc: NatsConnection;
let bus: EventBus;

beforeAll(async () => {
  tdb = await createTestDatabase();
  nc = await connectNats(NATS_URL, "observer-test");
  bus = createEventBus(nc, randomName("mdtest"));
});

afterAll(async () => {
  await bus?.close();
  await nc?.drain();
  await tdb?.drop();
});

/** RUNNING deployments with one ready replica, as a finished deploy leaves them. */
async function runningDeployments(n: number): Promise<string[]> {
  const deps = testApiDeps(tdb.db, bus);
  const uids: string[] = [];
  for (let i = 0; i < n; i++) {
    const { deployment } = await createDeployment(deps, alice, createInput());
    await applyChange(tdb.db, {
      deploymentUid: deployment.uid,
      type: "TASK_FINISHED",
      deployment: {
        state: "RUNNING",
        active_task_id: null,
        serving_revision: 1,
        target_revision: 1,
        instances: { ...serving },
        endpoint_url: `http://gw/${deployment.uid}`,
      },
    });
    uids.push(deployment.uid);
  }
  return uids;
}

/** A runtime whose observations the test sets. */
function observedRuntime(uids: string[]) {
  const observations = new Map<string, DeploymentObservation>(
    uids.map((uid) => [uid, { deploymentUid: uid, servingRevision: 1, endpointUrl: `http://gw/${uid}`, instances: { ...serving } }]),
  );
  const driver: RuntimeDriver = {
    ...createNoopDriver(),
    observe: async () => [...observations.values()].map((o) => ({ ...o, instances: { ...o.instances } })),
  };
  return {
    driver,
    set(uid: string, change: Partial<DeploymentObservation>) {
      observations.set(uid, { ...observations.get(uid)!, ...change });
    },
    remove(uid: string) {
      observations.delete(uid);
    },
  };
}

async function row(uid: string) {
  return toDeployment((await findDeploymentByUid(tdb.db, uid))!);
}

function observer(driver: RuntimeDriver, events: DeploymentEvent[], revisitPasses = 0): Observer {
  // An hour between passes: the test runs them.
  return startObserver({ db: tdb.db, sink: (e) => events.push(...e), driver, logger: silentLogger, intervalMs: 3_600_000, revisitPasses });
}

describe("observer", () => {
  it("reads only what changed, and corrects a replica that died", async () => {
    const uids = await runningDeployments(3);
    const runtime = observedRuntime(uids);
    const events: DeploymentEvent[] = [];
    const obs = observer(runtime.driver, events);
    try {
      // First sight: each is read once and agrees with its row.
      expect(await obs.observeOnce()).toEqual({ read: 3, corrected: 0 });
      expect(await obs.observeOnce()).toEqual({ read: 0, corrected: 0 });

      // The replica of the second one dies: only it is read, and corrected.
      runtime.set(uids[1]!, { endpointUrl: "", instances: { desired: 1, ready: 0, pending: 1, restarts: 1 } });
      expect(await obs.observeOnce()).toEqual({ read: 1, corrected: 1 });
      expect((await row(uids[1]!)).instances).toEqual({ desired: 1, ready: 0, pending: 1, restarts: 1 });
      expect((await row(uids[1]!)).endpointUrl).toBe("");
      expect(events.map((e) => [e.deploymentUid, e.type])).toEqual([[uids[1], "STATE_CHANGED"]]);
      expect(await obs.observeOnce()).toEqual({ read: 0, corrected: 0 });

      // A deployment a task of this process wrote is read on the next pass.
      obs.touched([uids[2]!]);
      expect(await obs.observeOnce()).toEqual({ read: 1, corrected: 0 });
      expect(await obs.observeOnce()).toEqual({ read: 0, corrected: 0 });
    } finally {
      await obs.stop();
    }
  });

  it("leaves a deployment to the task that owns it, and corrects what that task left behind", async () => {
    const [uid] = await runningDeployments(1);
    const runtime = observedRuntime([uid!]);
    const events: DeploymentEvent[] = [];
    const obs = observer(runtime.driver, events);
    try {
      expect(await obs.observeOnce()).toEqual({ read: 1, corrected: 0 });
      // Another process' task takes the deployment; meanwhile its replica dies.
      await applyChange(tdb.db, { deploymentUid: uid!, type: "STATE_CHANGED", deployment: { active_task_id: "task-elsewhere" } });
      runtime.set(uid!, { endpointUrl: "", instances: { desired: 1, ready: 0, pending: 0, restarts: 0 } });
      // The task owns the fields: read, not corrected; and read again while it runs.
      expect(await obs.observeOnce()).toEqual({ read: 1, corrected: 0 });
      expect(await obs.observeOnce()).toEqual({ read: 1, corrected: 0 });
      // The task ends, writing the counts it saw last (no touch: another process).
      await applyChange(tdb.db, {
        deploymentUid: uid!,
        type: "TASK_FINISHED",
        deployment: { active_task_id: null, instances: { ...serving }, endpoint_url: `http://gw/${uid}` },
      });
      expect(await obs.observeOnce()).toEqual({ read: 1, corrected: 1 });
      expect((await row(uid!)).instances.ready).toBe(0);
      expect(await obs.observeOnce()).toEqual({ read: 0, corrected: 0 });
    } finally {
      await obs.stop();
    }
  });

  it("rechecks a few settled deployments each pass, so a change nobody reported is found", async () => {
    const uids = await runningDeployments(3);
    const runtime = observedRuntime(uids);
    const obs = observer(runtime.driver, [], 3);
    try {
      expect(await obs.observeOnce()).toEqual({ read: 3, corrected: 0 });
      // A row changed behind the observer's back (no event reached it).
      await applyChange(tdb.db, {
        deploymentUid: uids[0]!,
        type: "STATE_CHANGED",
        deployment: { instances: { desired: 1, ready: 0, pending: 0, restarts: 0 } },
      });
      const passes = [await obs.observeOnce(), await obs.observeOnce(), await obs.observeOnce()];
      // One of three per pass, and each of them within three passes.
      expect(passes.map((p) => p.read)).toEqual([1, 1, 1]);
      expect(passes.reduce((n, p) => n + p.corrected, 0)).toBe(1);
      expect((await row(uids[0]!)).instances).toEqual(serving);
    } finally {
      await obs.stop();
    }
  });

  it("forgets deployments the runtime no longer runs", async () => {
    const uids = await runningDeployments(2);
    const runtime = observedRuntime(uids);
    // Every settled deployment rechecked on every pass.
    const obs = observer(runtime.driver, [], 1);
    try {
      expect(await obs.observeOnce()).toEqual({ read: 2, corrected: 0 });
      expect(await obs.observeOnce()).toEqual({ read: 2, corrected: 0 });
      runtime.remove(uids[0]!);
      expect(await obs.observeOnce()).toEqual({ read: 1, corrected: 0 });
    } finally {
      await obs.stop();
    }
  });
});
