import type { DeploymentEvent } from "../domain/types.js";
import type { Executor } from "./executor.js";
import { toEvent } from "./mappers.js";

export async function eventsAfter(db: Executor, deploymentUid: string, afterSequence: number, limit: number): Promise<DeploymentEvent[]> {
  const rows = await db
    .selectFrom("events")
    .selectAll()
    .where("deployment_uid", "=", deploymentUid)
    .where("sequence", ">", afterSequence)
    .orderBy("sequence")
    .limit(limit)
    .execute();
  return rows.map(toEvent);
}
