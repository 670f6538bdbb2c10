// Baseline: a create's five rows (deployment, revision, task, outbox, event)
// written by a tight loop with pg, N in flight over the API's pool size, one
// create per statement with the API's own SQL (db/create-deployment.ts), no
// RPC, no validation, no coalescing.
import { createDb } from "../../db/connect.js";
import { insertNewDeployments } from "../../db/create-deployment.js";
import { newDeploymentRows } from "./new-deployment.js";
import { finish, scriptArgs } from "./script.js";

const args = scriptArgs<{ url: string; poolMax: number; concurrency: number; durationMs: number; warmupMs: number }>();
const db = createDb({ url: args.url, poolMax: args.poolMax, connectTimeoutMs: 5000 });

async function loop(ms: number): Promise<number> {
  const end = performance.now() + ms;
  let n = 0;
  await Promise.all(
    Array.from({ length: args.concurrency }, async () => {
      while (performance.now() < end) {
        const [result] = await insertNewDeployments(db, [newDeploymentRows({ workspace: "bench", modelName: "bench/rawcreate", replicas: 1 })]);
        if (result === "NAME_TAKEN") throw new Error("a pg-create-loop deployment name was taken");
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
