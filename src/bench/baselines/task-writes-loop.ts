// Baseline: a worker's Postgres writes for no-op deploy tasks, without the
// queue: tasks are written first (untimed), then each is claimed and run by
// the worker's own runTask on the no-op driver (the same claim and fenced
// writes, the same write coalescer), N in flight like one worker.
import { createAttemptChangeWriter } from "../../db/attempt-changes.js";
import { createDb } from "../../db/connect.js";
import { insertNewDeployments } from "../../db/create-deployment.js";
import { toTask } from "../../db/mappers.js";
import { claimTask } from "../../db/tasks.js";
import { silentLogger } from "../../log.js";
import { createNoopDriver } from "../../runtime/noop-driver.js";
import { runTask } from "../../worker/run-task.js";
import { newDeploymentRows } from "./new-deployment.js";
import { finish, scriptArgs } from "./script.js";

const args = scriptArgs<{ url: string; tasks: number; concurrency: number }>();
const db = createDb({ url: args.url, poolMax: 10, connectTimeoutMs: 5000 });
const items = Array.from({ length: args.tasks }, () => newDeploymentRows({ workspace: "bench", modelName: "bench/rawdrain", replicas: 1 }));
for (let i = 0; i < items.length; i += 200) {
  const results = await insertNewDeployments(db, items.slice(i, i + 200));
  if (results.includes("NAME_TAKEN")) throw new Error("a task-writes-loop deployment name was taken");
}

const changes = createAttemptChangeWriter(db);
const driver = createNoopDriver();
const logger = silentLogger;
const ids = items.map((i) => i.task.id);
const t0 = performance.now();
await Promise.all(
  Array.from({ length: args.concurrency }, async () => {
    for (let id = ids.pop(); id !== undefined; id = ids.pop()) {
      const claim = await claimTask(db, id, "bench-loop", 30_000);
      if (claim.kind !== "claimed") throw new Error(`task ${id} not claimed: ${claim.kind}`);
      await runTask({ db, changes, sink: () => {}, driver, logger, healthPollMs: 250 }, toTask(claim.task), new AbortController().signal, claim);
    }
  }),
);
const seconds = (performance.now() - t0) / 1000;
await driver.close();
await db.destroy();
await finish({ rate: args.tasks / seconds, seconds });
