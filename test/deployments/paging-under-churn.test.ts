// Paging stays stable and complete while the lists change: ListDeployments
// while other deployments are created and deleted, ListDeploymentTasks while
// new tasks are queued, each through the real queue and a worker.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApiDeps } from "../../src/api/deps.js";
import { createDeployment } from "../../src/deployments/create.js";
import { deleteDeployment } from "../../src/deployments/delete.js";
import { listDeployments, listTasks } from "../../src/deployments/reads.js";
import { updateDeployment } from "../../src/deployments/update.js";
import { RefusedError } from "../../src/domain/errors.js";
import type { Principal, Task } from "../../src/domain/types.js";
import { createInput, scaleInput } from "../helpers/api-deps.js";
import { startTestPipeline, type TestPipeline } from "../helpers/pipeline.js";
import { waitFor, type TestDatabase } from "../helpers/services.js";

let pipeline: TestPipeline;
let tdb: TestDatabase;
let deps: ApiDeps;
const alice: Principal = { workspace: "churn", name: "alice", scopes: ["deployments:read", "deployments:write"] };

beforeAll(async () => {
  pipeline = await startTestPipeline({ concurrency: 8 });
  ({ tdb, deps } = pipeline);
});

afterAll(async () => {
  await pipeline?.close();
});

async function ended(task: Task): Promise<void> {
  await waitFor(`task ${task.id} to end`, async () => {
    const t = await tdb.db.selectFrom("tasks").select("status").where("id", "=", task.id).executeTakeFirst();
    return t && !["PENDING", "RUNNING"].includes(t.status) ? true : undefined;
  });
}

/** Creates and deletes other deployments until `stop` is set. */
function churn(prefix: string, stop: { done: boolean }): Promise<number> {
  return (async () => {
    let n = 0;
    while (!stop.done) {
      const { deployment } = await createDeployment(deps, alice, createInput({ suffix: `${prefix}${n++}` }));
      await deleteDeployment(deps, alice, deployment.name, "").catch((err: unknown) => {
        if (!(err instanceof RefusedError)) throw err;
      });
    }
    return n;
  })();
}

describe("paging under churn", () => {
  it("ListDeployments: every deployment that stays is listed exactly once while others come and go", async () => {
    const stable = new Set<string>();
    for (let i = 0; i < 30; i++) stable.add((await createDeployment(deps, alice, createInput({ suffix: `stay${i}` }))).deployment.uid);
    const stop = { done: false };
    const churning = churn("go", stop);
    const seen: string[] = [];
    let afterUid: string | undefined;
    try {
      do {
        const page = await listDeployments(tdb.db, { workspace: "churn", states: [], labels: {}, afterUid, pageSize: 4 });
        seen.push(...page.deployments.map((d) => d.uid));
        afterUid = page.nextAfterUid;
        // Let the churn land between pages.
        await createDeployment(deps, alice, createInput({ suffix: `between${seen.length}` }));
      } while (afterUid !== undefined);
    } finally {
      stop.done = true;
    }
    expect(await churning).toBeGreaterThan(0);
    expect(new Set(seen).size).toBe(seen.length);
    for (const uid of stable) expect(seen).toContain(uid);
  });

  it("ListDeploymentTasks: the tasks there at the start are listed once each, newest first, while new ones are queued", async () => {
    const { deployment, task } = await createDeployment(deps, alice, createInput({ suffix: "tasks" }));
    await ended(task);
    const before: string[] = [task.id];
    for (let i = 0; i < 10; i++) {
      const replicas = (i % 2) + 2;
      const t = (await updateDeployment(deps, alice, scaleInput(deployment.name, replicas))).task;
      await ended(t);
      before.unshift(t.id);
    }
    const seen: string[] = [];
    let beforeId: string | undefined;
    let i = 0;
    do {
      const page = await listTasks(tdb.db, { workspace: "churn", name: deployment.name, statuses: [], beforeId, pageSize: 3 });
      seen.push(...page.tasks.map((t) => t.id));
      beforeId = page.nextBeforeId;
      // A new task queued between pages is newer than any page still to come.
      const replicas = (i++ % 2) + 4;
      const t = (await updateDeployment(deps, alice, scaleInput(deployment.name, replicas))).task;
      await ended(t);
    } while (beforeId !== undefined);
    // The first page may already hold tasks newer than the start; the rest are exactly the tasks of the start, in order.
    const fromStart = seen.filter((id) => before.includes(id));
    expect(fromStart).toEqual(before);
    expect(new Set(seen).size).toBe(seen.length);
  });
});
