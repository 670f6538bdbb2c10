// Every change of a deployment (and of the task behind it) is written together
// with its event by ONE statement (data-modifying CTEs are atomic): the task
// update is fenced on its attempt, the deployment's sequence is bumped under
// its row lock (gapless per deployment), and the event stores both rows as
// they are after the change. One round trip instead of five: on this machine
// loopback round trips, not SQL, dominate the cost of a write.
import { sql, type UpdateObject } from "kysely";
import type { DeploymentEvent, EventType } from "../domain/types.js";
import { executePrepared } from "./connect.js";
import type { Database, DeploymentRow, TaskRow } from "./database.js";
import type { Executor } from "./executor.js";
import { toDeployment, toTask } from "./mappers.js";

/** The task was claimed by a newer attempt (or finished): this writer must stop. */
export class FencedError extends Error {
  override readonly name = "FencedError";
  constructor(
    readonly taskId: string,
    readonly attempt: number,
  ) {
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
  /** Why, when no task says it (an autoscaler change's reason). */
  message?: string;
}

interface ChangeResult {
  dep: DeploymentRow;
  task: TaskRow | null;
  cursor: string;
}

export async function applyChange(db: Executor, input: ChangeInput): Promise<DeploymentEvent> {
  const fenced = input.task !== undefined;
  const query = db
    // Lock order: deployment, then task (see attempt-changes.ts). `t` is
    // gated on `l` through an uncorrelated subquery, evaluated before `t`
    // locks its row; a no-op where the caller holds the lock already.
    .with(
      (cte) => cte("l").materialized(),
      (qb) => qb.selectFrom("deployments").select("uid").where("uid", "=", input.deploymentUid).forNoKeyUpdate(),
    )
    .with("t", (qb) => {
      if (input.task) {
        let q = qb
          .updateTable("tasks")
          .set(input.task.patch)
          .where("id", "=", input.task.id)
          .where(sql<boolean>`exists (select 1 from l)`);
        if (input.task.attempt !== undefined) {
          q = q.where("attempt", "=", input.task.attempt).where("status", "in", ["PENDING", "RUNNING"]);
        }
        return q.returningAll();
      }
      return qb
        .selectFrom("tasks")
        .selectAll()
        .where("id", "=", input.taskId ?? "");
    })
    .with("d", (qb) => {
      let q = qb
        .updateTable("deployments")
        .set({ ...input.deployment, sequence: sql`sequence + 1`, update_time: sql`now()` })
        .where("uid", "=", input.deploymentUid);
      // A fenced task update that matched nothing changes nothing at all.
      if (fenced) q = q.where(sql<boolean>`exists (select 1 from t)`);
      return q.returningAll();
    })
    .with(
      "e",
      () => sql`(
      insert into events (deployment_uid, sequence, workspace, time, type, deployment, task, message)
      select d.uid, d.sequence, d.workspace, d.update_time, ${input.type}, to_jsonb(d), (select to_jsonb(t) from t), ${input.message ?? ""}
      from d
      returning cursor)`,
    )
    .selectFrom("d")
    .select(sql<DeploymentRow>`to_jsonb(d)`.as("dep"))
    .select(sql<TaskRow | null>`(select to_jsonb(t) from t)`.as("task"))
    .select(sql<string>`(select cursor from e)`.as("cursor"));
  const [row] = (await executePrepared(db, query)) as ChangeResult[];
  if (!row) {
    if (input.task) throw new FencedError(input.task.id, input.task.attempt ?? -1);
    throw new Error(`deployment ${input.deploymentUid} does not exist`);
  }
  return eventFromRows(row.dep, row.task, row.cursor, input.type, input.message);
}

/** The event a write returns: the rows as they are after it, and its cursor. */
export function eventFromRows(depRow: DeploymentRow, taskRow: TaskRow | null, cursor: string, type: EventType, message = ""): DeploymentEvent {
  const deployment = toDeployment(depRow);
  return {
    deploymentUid: deployment.uid,
    workspace: deployment.workspace,
    sequence: deployment.sequence,
    cursor: String(cursor),
    time: deployment.updateTime,
    type,
    deployment,
    task: taskRow ? toTask(taskRow) : null,
    message,
  };
}
