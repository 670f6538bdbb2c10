import { withTokenDefaults, type ModelSource, type Resources } from "../domain/types.js";
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
  const row = await db.selectFrom("revisions").selectAll().where("deployment_uid", "=", deploymentUid).where("number", "=", number).executeTakeFirstOrThrow();
  return toRevisionRecord(row);
}

/** A revisions row (as selected, or through to_jsonb) as a record. */
export function toRevisionRecord(row: RevisionRow): RevisionRecord {
  return {
    number: row.number,
    model: withTokenDefaults(row.model),
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

/** The revisions row of a deployment's revision record. */
export function revisionToRow(deploymentUid: string, r: RevisionRecord) {
  return { deployment_uid: deploymentUid, number: r.number, model: r.model, resources: r.resources, task_id: r.taskId, create_time: r.createTime };
}

export async function insertRevision(db: Executor, deploymentUid: string, r: RevisionRecord): Promise<void> {
  await db.insertInto("revisions").values(revisionToRow(deploymentUid, r)).execute();
}

/** The number the next revision gets (revisions are never deleted, so numbers are never reused). */
export async function nextRevisionNumber(db: Executor, deploymentUid: string): Promise<number> {
  const row = await db
    .selectFrom("revisions")
    .select((eb) => eb.fn.max("number").as("last"))
    .where("deployment_uid", "=", deploymentUid)
    .executeTakeFirst();
  return Number(row?.last ?? 0) + 1;
}

/** The newest revision before `before` whose task completed: the one that served before it. */
export async function previousServedRevision(db: Executor, deploymentUid: string, before: number): Promise<RevisionRecord | undefined> {
  const row = await db
    .selectFrom("revisions")
    .innerJoin("tasks", "tasks.id", "revisions.task_id")
    .selectAll("revisions")
    .where("revisions.deployment_uid", "=", deploymentUid)
    .where("revisions.number", "<", before)
    .where("tasks.status", "=", "COMPLETED")
    .orderBy("revisions.number", "desc")
    .limit(1)
    .executeTakeFirst();
  return row ? toRevisionRecord(row) : undefined;
}

export async function findRevision(db: Executor, deploymentUid: string, number: number): Promise<RevisionRecord | undefined> {
  const row = await db.selectFrom("revisions").selectAll().where("deployment_uid", "=", deploymentUid).where("number", "=", number).executeTakeFirst();
  return row ? toRevisionRecord(row) : undefined;
}
