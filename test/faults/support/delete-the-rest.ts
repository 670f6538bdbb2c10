// The final sweep: whatever the load left (creates whose answer was lost,
// deletes that never got one) is deleted through a live API, so that every
// case ends with everything deleted.
import { createApis, statusName } from "../../../src/loadgen/api.js";
import type { FaultSystem } from "./system.js";
import { sleep } from "./wait.js";

/** Deletes every deployment that is neither DELETED nor being deleted; the ones it could not, as a violation. */
export async function deleteTheRest(sys: FaultSystem, boundMs: number): Promise<string[]> {
  const targets = sys.apis.filter((a) => a.alive()).map((a) => String(a.ready["grpc"]));
  if (targets.length === 0) return ["no API process left to delete the remaining deployments"];
  const apis = createApis(targets, sys.apiKey);
  const end = Date.now() + boundMs;
  let left: string[] = [];
  while (Date.now() < end) {
    left = (
      await sys.db.query<{ name: string }>(
        `select d.name from deployments d where d.state <> 'DELETED'
          and not exists (select 1 from tasks t where t.deployment_uid = d.uid and t.kind = 'DELETE')`,
      )
    ).rows.map((r) => r.name);
    if (left.length === 0) return [];
    await Promise.all(
      left.map(async (name) => {
        try {
          await apis.next().deletions.deleteDeployment({ name, requestId: `sweep-${name}` }, { timeoutMs: 5000 });
        } catch (err) {
          if (statusName(err) === "NOT_FOUND") return;
        }
      }),
    );
    await sleep(200);
  }
  return [`deployments the final sweep could not delete within ${boundMs / 1000} s: ${left.slice(0, 8).join(", ")}`];
}
