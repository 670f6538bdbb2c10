// Baseline: a create's five rows (deployment, revision, task, outbox, event)
// written by a tight loop with pg, N in flight over the API's pool size, no
// RPC, no validation, no coalescing. Two shapes:
// - "statement": one create per statement with the API's own SQL
//   (db/create-deployment.ts), the strict limit;
// - "transaction": the textbook way, BEGIN, one INSERT per row, COMMIT.
import { sql } from "kysely";
import { createDb } from "../../db/connect.js";
import { insertNewDeployments, type NewDeployment } from "../../db/create-deployment.js";
import { deploymentToRow, taskToRow } from "../../db/mappers.js";
import { insertOutbox } from "../../db/outbox.js";
import { insertRevision } from "../../db/revisions.js";
import { newDeploymentRows } from "./new-deployment.js";
import { finish, scriptArgs } from "./script.js";

const args = scriptArgs<{ url: string; poolMax: number; concurrency: number; durationMs: number; warmupMs: number; shape: "statement" | "transaction" }>();
const db = createDb({ url: args.url, poolMax: args.poolMax, connectTimeoutMs: 5000 });

const json = (v: unknown) => JSON.stringify(v);

async function inTransaction(n: NewDeployment): Promise<void> {
  const d = deploymentToRow(n.deployment);
  const t = taskToRow(n.task, { requestHash: n.requestHash, enqueuedAt: n.task.createTime });
  await db.transaction().execute(async (tx) => {
    await sql`insert into deployments select * from jsonb_populate_record(null::deployments, ${json(d)}::jsonb)`.execute(tx);
    await insertRevision(tx, d.uid, n.revision);
    await sql`insert into tasks select * from jsonb_populate_record(null::tasks, ${json(t)}::jsonb)`.execute(tx);
    await insertOutbox(tx, t.id, t.id);
    await sql`insert into events (deployment_uid, sequence, workspace, time, type, deployment, task)
      values (${d.uid}, 1, ${d.workspace}, ${d.update_time}, 'STATE_CHANGED', ${json(d)}::jsonb, ${json(t)}::jsonb)`.execute(tx);
  });
}

async function loop(ms: number): Promise<number> {
  const end = performance.now() + ms;
  let n = 0;
  await Promise.all(
    Array.from({ length: args.concurrency }, async () => {
      while (performance.now() < end) {
        const rows = newDeploymentRows({ workspace: "bench", modelName: "bench/rawcreate", replicas: 1 });
        if (args.shape === "transaction") await inTransaction(rows);
        else {
          const [result] = await insertNewDeployments(db, [rows]);
          if (result === "NAME_TAKEN") throw new Error("a pg-create-loop deployment name was taken");
        }
        n++;
      }
    }),
  );
  return n;
}

await loop(args.warmupMs);
const t0 = performance.now();
const n = await loop(args.durationMs);
const seconds = (performance.now() - t0) / 1000;
await db.destroy();
await finish({ rate: n / seconds, n, seconds });
