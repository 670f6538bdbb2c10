// The runtime host's memory, checked before anything is queued: a request
// the host cannot hold beside every live deployment is RESOURCE_EXHAUSTED at
// the call and writes nothing; scaling down frees room; a stopped deployment
// holds none. Real Postgres; the host is given (the worker reports the real
// one: test/e2e/rollout.test.ts).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApiDeps } from "../../src/api/deps.js";
import { applyChange } from "../../src/db/changes.js";
import { defaultReplicaMemoryBytes } from "../../src/deployments/capacity.js";
import { createDb } from "../../src/db/connect.js";
import { cachedHostCapacity, reportHostCapacity } from "../../src/db/host-capacity.js";
import { createDeployment } from "../../src/deployments/create.js";
import { rollbackDeployment } from "../../src/deployments/rollback.js";
import { updateDeployment } from "../../src/deployments/update.js";
import type { Principal } from "../../src/domain/types.js";
import { createEventBus, type EventBus } from "../../src/queue/event-bus.js";
import { createInput, refused, scaleInput, testApiDeps, updateInput, replicas } from "../helpers/api-deps.js";
import { createTestDatabase, createTestQueue, type TestDatabase, type TestQueue } from "../helpers/services.js";

let tdb: TestDatabase;
let tq: TestQueue;
let bus: EventBus;
let deps: ApiDeps;
const alice: Principal = { workspace: "acme", name: "alice", scopes: ["deployments:read", "deployments:write"] };
// A host that runs 16 replicas of the default size.
const host = { cpu: 4, memoryBytes: 16 * defaultReplicaMemoryBytes, reportedAt: new Date() };

beforeAll(async () => {
  tdb = await createTestDatabase();
  tq = await createTestQueue();
  bus = createEventBus(tq.nc, tq.prefix);
  deps = testApiDeps(tdb.db, bus, { hostCapacity: async () => host });
});

afterAll(async () => {
  await bus?.close();
  await tq?.drop();
  await tdb?.drop();
});

const withReplicas = (suffix: string, n: number, memory = "", cpu = 1) =>
  createInput({ suffix, scaling: replicas(n, n), resources: { ...createInput().resources, memory, cpu } });

const count = async () =>
  Number(
    (
      await tdb.db
        .selectFrom("deployments")
        .select((eb) => eb.fn.countAll<string>().as("n"))
        .executeTakeFirstOrThrow()
    ).n,
  );

describe("the runtime host's capacity", () => {
  it("refuses at the call what the host cannot hold, and counts what live deployments reserve", async () => {
    const before = await count();
    const huge = await refused(createDeployment(deps, alice, withReplicas("huge", 100)));
    expect(huge).toMatchObject({ kind: "resource_exhausted", reason: "MEMORY_CAPACITY_EXHAUSTED" });
    expect(huge.message).toContain("100 replica(s) of 256MiB");
    expect(huge.metadata).toMatchObject({ requestedMemoryBytes: String(100 * defaultReplicaMemoryBytes), availableMemoryBytes: String(host.memoryBytes) });
    expect(await count()).toBe(before);

    const a = await createDeployment(deps, alice, withReplicas("a", 10));
    await createDeployment(deps, alice, withReplicas("b", 3, "512MiB"));
    // 10 + 3 × 2 = 16 of 16 held: one more replica does not fit.
    expect(await refused(createDeployment(deps, alice, withReplicas("c", 1)))).toMatchObject({ reason: "MEMORY_CAPACITY_EXHAUSTED" });
    // A deployment asking for 0 replicas holds nothing and always fits.
    await createDeployment(deps, alice, withReplicas("stopped", 0));
    // Its deploy done (as a worker would write it), a scale past the host is refused at the call.
    await applyChange(tdb.db, {
      deploymentUid: a.deployment.uid,
      type: "TASK_FINISHED",
      task: { id: a.task.id, patch: { status: "COMPLETED", phase: "DONE", end_time: new Date() } },
      deployment: { state: "RUNNING", active_task_id: null, serving_revision: 1 },
    });
    const up = await refused(updateDeployment(deps, alice, scaleInput(a.deployment.name, 12)));
    expect(up.reason).toBe("MEMORY_CAPACITY_EXHAUSTED");
    // Scaling it down fits; once done (as the worker writes it), the room is free for another deployment.
    const down = await updateDeployment(deps, alice, scaleInput(a.deployment.name, 4));
    expect(await refused(createDeployment(deps, alice, withReplicas("early", 6)))).toMatchObject({ reason: "MEMORY_CAPACITY_EXHAUSTED" });
    await applyChange(tdb.db, {
      deploymentUid: a.deployment.uid,
      type: "TASK_FINISHED",
      task: { id: down.task.id, patch: { status: "COMPLETED", phase: "DONE", end_time: new Date() } },
      deployment: { state: "RUNNING", active_task_id: null, scaling: replicas(4, 4) },
    });
    expect((await createDeployment(deps, alice, withReplicas("later", 6))).deployment.scaling.maxReplicas).toBe(6);
  });

  it("checks nothing where no host reported (e.g. the no-op runtime)", async () => {
    const unknown = testApiDeps(tdb.db, bus);
    expect((await createDeployment(unknown, alice, withReplicas("unbounded", 100))).deployment.scaling.maxReplicas).toBe(100);
  });

  it("reserves CPU against the host's cores × the allocation ratio; a replica that names no cpu reserves none", async () => {
    const own = await createTestDatabase();
    try {
      // 4 cores × ratio 1: 4 cores to reserve.
      const d = testApiDeps(own.db, bus, { hostCapacity: async () => host, cpuAllocationRatio: 1 });
      await createDeployment(d, alice, withReplicas("half", 2, "", 1.5));
      const over = await refused(createDeployment(d, alice, withReplicas("over", 2, "", 0.75)));
      expect(over).toMatchObject({ kind: "resource_exhausted", reason: "CPU_CAPACITY_EXHAUSTED" });
      expect(over.message).toContain("2 replica(s) of 0.75 CPU: 1.5 asked, 1 of 4 free (4 cores × allocation ratio 1)");
      expect(over.metadata).toMatchObject({ requestedCpu: "1.5", availableCpu: "1", hostCpu: "4", cpuAllocationRatio: "1" });
      await createDeployment(d, alice, withReplicas("fits", 2, "", 0.5));
      // Best effort: no cpu named, none reserved.
      await createDeployment(d, alice, withReplicas("besteffort", 4, "", 0));
      // The default ratio (4) offers 16 of these cores.
      const roomy = testApiDeps(own.db, bus, { hostCapacity: async () => host });
      await createDeployment(roomy, alice, withReplicas("roomy", 3, "", 4));
    } finally {
      await own.drop();
    }
  });

  it("checks a rollback to other resources as it checks an update", async () => {
    const own = await createTestDatabase();
    try {
      const d = testApiDeps(own.db, bus, { hostCapacity: async () => host, cpuAllocationRatio: 1 });
      // Revision 1: 2 × 1 core; revision 2: 2 × 0.5 cores.
      const r = await createDeployment(d, alice, withReplicas("r", 2, "", 1));
      await applyChange(own.db, {
        deploymentUid: r.deployment.uid,
        type: "TASK_FINISHED",
        task: { id: r.task.id, patch: { status: "COMPLETED", phase: "DONE", end_time: new Date() } },
        deployment: { state: "RUNNING", active_task_id: null, serving_revision: 1 },
      });
      const small = { ...r.deployment.resources, cpu: 0.5 };
      const up = await updateDeployment(d, alice, updateInput(r.deployment.name, { resources: small }));
      await applyChange(own.db, {
        deploymentUid: r.deployment.uid,
        type: "TASK_FINISHED",
        task: { id: up.task.id, patch: { status: "COMPLETED", phase: "DONE", end_time: new Date() } },
        deployment: { state: "RUNNING", active_task_id: null, serving_revision: 2, resources: small },
      });
      // Another deployment takes 3 of the 4 cores: 1 core stays free beside revision 2's.
      await createDeployment(d, alice, withReplicas("other", 2, "", 1.5));
      const back = await refused(rollbackDeployment(d, alice, { name: r.deployment.name, revision: 1, requestId: "" }));
      expect(back).toMatchObject({ kind: "resource_exhausted", reason: "CPU_CAPACITY_EXHAUSTED", metadata: { requestedCpu: "2", availableCpu: "1" } });
    } finally {
      await own.drop();
    }
  });

  it("reads the host inside a change's own transaction: on one connection (the embedded database) a change never waits for a second", async () => {
    const own = await createTestDatabase();
    const one = createDb({ url: own.url, poolMax: 1, connectTimeoutMs: 2000 });
    try {
      await reportHostCapacity(own.db, "local", { cpu: 4, memoryBytes: host.memoryBytes });
      // No cache: every check reads the host.
      const d = testApiDeps(one, bus, { hostCapacity: cachedHostCapacity(0) });
      const r = await createDeployment(d, alice, withReplicas("one", 0));
      await applyChange(own.db, {
        deploymentUid: r.deployment.uid,
        type: "TASK_FINISHED",
        task: { id: r.task.id, patch: { status: "COMPLETED", phase: "DONE", end_time: new Date() } },
        deployment: { state: "STOPPED", active_task_id: null, serving_revision: 1 },
      });
      const up = await updateDeployment(d, alice, scaleInput(r.deployment.name, 1));
      expect(up.task.kind).toBe("SCALE");
      await applyChange(own.db, {
        deploymentUid: r.deployment.uid,
        type: "TASK_FINISHED",
        task: { id: up.task.id, patch: { status: "COMPLETED", phase: "DONE", end_time: new Date() } },
        deployment: { state: "RUNNING", active_task_id: null, scaling: replicas(1, 1) },
      });
      const over = await refused(updateDeployment(d, alice, scaleInput(r.deployment.name, 100)));
      expect(over.reason).toBe("MEMORY_CAPACITY_EXHAUSTED");
    } finally {
      await one.destroy();
      await own.drop();
    }
  });
});
