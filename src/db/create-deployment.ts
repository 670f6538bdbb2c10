// A new deployment, its first revision, its deploy task, the outbox row and
// its first event, written by ONE statement (data-modifying CTEs are atomic
// and cost one round trip instead of nine): the create path is the API's
// hottest write.
import { sql } from "kysely";
import type { Deployment, DeploymentEvent, Task } from "../domain/types.js";
import { executePrepared } from "./connect.js";
import type { DeploymentRow, TaskRow } from "./database.js";
import type { Executor } from "./executor.js";
import { deploymentToRow, taskToRow, toDeployment, toTask } from "./mappers.js";
import type { RevisionRecord } from "./revisions.js";

export async function insertNewDeployment(
  db: Executor,
  input: { deployment: Deployment; revision: RevisionRecord; task: Task; requestHash: string },
): Promise<DeploymentEvent> {
  const { deployment, revision, task } = input;
  const query = db
    .with("d", (q) => q.insertInto("deployments").values(deploymentToRow(deployment)).returningAll())
    .with("r", (q) => q.insertInto("revisions").values({
      deployment_uid: deployment.uid,
      number: revision.number,
      model: JSON.stringify(revision.model),
      resources: JSON.stringify(revision.resources),
      task_id: revision.taskId,
      create_time: revision.createTime,
    }).returning("number"))
    .with("t", (q) => q.insertInto("tasks").values(taskToRow(task, { requestHash: input.requestHash, enqueuedAt: task.createTime })).returningAll())
    .with("o", (q) => q.insertInto("outbox").values({ task_id: task.id, msg_id: task.id }).returning("id"))
    .with("e", () => sql`(
      insert into events (deployment_uid, sequence, workspace, time, type, deployment, task)
      select d.uid, d.sequence, d.workspace, d.update_time, 'STATE_CHANGED', to_jsonb(d), to_jsonb(t)
      from d, t
      returning cursor)`)
    .selectFrom("d")
    .select(sql<DeploymentRow>`to_jsonb(d)`.as("dep"))
    .select(sql<TaskRow>`(select to_jsonb(t) from t)`.as("task"))
    .select(sql<string>`(select cursor from e)`.as("cursor"));
  const [row] = await executePrepared(db, query);
  if (!row) throw new Error(`deployment ${deployment.uid} was not inserted`);
  const created = toDeployment(row.dep);
  return {
    deploymentUid: created.uid,
    workspace: created.workspace,
    sequence: created.sequence,
    cursor: String(row.cursor),
    time: created.updateTime,
    type: "STATE_CHANGED",
    deployment: created,
    task: toTask(row.task),
  };
}
