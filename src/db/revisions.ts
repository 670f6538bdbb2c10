import type { ModelSource, Resources } from "../domain/types.js";
import type { RevisionRow } from "./database.js";
import type { Executor } from "./executor.js";

export interface RevisionRecord {
  number: number;
  model: ModelSource;
  resources: Resources;
  taskId: string;
  createTime: Date;
}

export async function loadRevision(db: Executor, deploymentUid: string, number: number): Promise<RevisionRecord> {
  const row = await db
    .selectFrom("revisions")
    .selectAll()
    .where("deployment_uid", "=", deploymentUid)
    .where("number", "=", number)
    .executeTakeFirstOrThrow();
  return toRevisionRecord(row);
}

/** A revisions row (as selected, or through to_jsonb) as a record. */
export function toRevisionRecord(row: RevisionRow): RevisionRecord {
  return {
    number: row.number,
    model: row.model,
    resources: row.resources,
    taskId: row.task_id,
    createTime: new Date(row.create_time),
  };
}

/** Every revision of the deployment, oldest first. */
export async function listRevisions(db: Executor, deploymentUid: string): Promise<RevisionRecord[]> {
  const rows = await db.selectFrom("revisions").selectAll().where("deployment_uid", "=", deploymentUid).orderBy("number").execute();
  return rows.map(toRevisionRecord);
}
