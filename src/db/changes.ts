// Every change of a deployment (and of the task behind it) is written together
// with its event in one transaction: the deployment's sequence is bumped under
// its row lock, which keeps per-deployment sequences gapless.
import { sql, type UpdateObject } from "kysely";
import type { DeploymentEvent, EventType, Task } from "../domain/types.js";
import type { Database } from "./database.js";
import type { Executor } from "./executor.js";
import { toDeployment, toEvent, toTask } from "./mappers.js";

/** The task was claimed by a newer attempt (or finished): this writer must stop. */
export class FencedError extends Error {
  override readonly name = "FencedError";
  constructor(readonly taskId: string, readonly attempt: number) {
    super(`task ${taskId} attempt ${attempt} no longer holds the task`);
  }
}

export interface ChangeInput {
  deploymentUid: string;
  type: EventType;
  deployment?: UpdateObject<Database, "deployments">;
  /** Update of the task behind the change; fenced on attempt when given. */
  task?: { id: string; attempt?: number; patch: UpdateObject<Database, "tasks"> };
  /** Task to attach to the event without changing it. */
  taskId?: string;
}

export async function applyChange(trx: Executor, input: ChangeInput): Promise<DeploymentEvent> {
  let task: Task | null = null;
  if (input.task) {
    let q = trx.updateTable("tasks").set(input.task.patch).where("id", "=", input.task.id);
    if (input.task.attempt !== undefined) {
      q = q.where("attempt", "=", input.task.attempt).where("status", "in", ["PENDING", "RUNNING"]);
    }
    const row = await q.returningAll().executeTakeFirst();
    if (!row) throw new FencedError(input.task.id, input.task.attempt ?? -1);
    task = toTask(row);
  } else if (input.taskId) {
    const row = await trx.selectFrom("tasks").selectAll().where("id", "=", input.taskId).executeTakeFirst();
    task = row ? toTask(row) : null;
  }
  const depRow = await trx
    .updateTable("deployments")
    .set({ ...input.deployment, sequence: sql`sequence + 1`, update_time: sql`now()` })
    .where("uid", "=", input.deploymentUid)
    .returningAll()
    .executeTakeFirstOrThrow();
  const deployment = toDeployment(depRow);
  const eventRow = await trx
    .insertInto("events")
    .values({
      deployment_uid: deployment.uid,
      sequence: deployment.sequence,
      workspace: deployment.workspace,
      time: deployment.updateTime,
      type: input.type,
      deployment: JSON.stringify(deployment),
      task: task ? JSON.stringify(task) : null,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  return toEvent(eventRow);
}
