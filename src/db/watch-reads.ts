// What a WatchDeployment reads when it opens: everything in one query, since
// thousands of watches may open at once (a dashboard reloads, an API restarts).
import { sql } from "kysely";
import type { TaskKind } from "../domain/types.js";
import type { DeploymentRow, TaskRow } from "./database.js";
import type { Executor } from "./executor.js";

export interface WatchSnapshotRow {
  deployment: DeploymentRow;
  /** The active task, else the latest of the given kinds (a to_jsonb row: dates as text). */
  task: TaskRow | null;
  /** The cursor of the event at the deployment's sequence ("" before the first). */
  cursor: string;
}

/** The deployment a name means (the live one before a deleted one), its task and its last event's cursor. */
export async function readWatchSnapshot(db: Executor, workspace: string, name: string, kinds: readonly TaskKind[]): Promise<WatchSnapshotRow | undefined> {
  const row = await db
    .selectFrom("deployments as d")
    .selectAll("d")
    .select([
      sql<TaskRow | null>`case when d.active_task_id is not null
        then (select to_jsonb(t) from tasks t where t.id = d.active_task_id)
        else (select to_jsonb(t) from tasks t where t.deployment_uid = d.uid and t.kind = any(${[...kinds]}::text[])
              order by t.create_time desc, t.id desc limit 1) end`.as("snapshot_task"),
      sql<string | null>`(select e.cursor::text from events e where e.deployment_uid = d.uid and e.sequence = d.sequence)`.as("snapshot_cursor"),
    ])
    .where("d.workspace", "=", workspace)
    .where("d.name", "=", name)
    .orderBy(sql`d.state = 'DELETED'`)
    .orderBy("d.create_time", "desc")
    .limit(1)
    .executeTakeFirst();
  if (row === undefined) return undefined;
  const { snapshot_task, snapshot_cursor, ...deployment } = row;
  return { deployment, task: snapshot_task, cursor: snapshot_cursor ?? "" };
}

/** The uid and current sequence of the deployment a name means. */
export async function readWatchPosition(db: Executor, workspace: string, name: string): Promise<{ uid: string; sequence: number } | undefined> {
  return db
    .selectFrom("deployments")
    .select(["uid", "sequence"])
    .where("workspace", "=", workspace)
    .where("name", "=", name)
    .orderBy(sql`state = 'DELETED'`)
    .orderBy("create_time", "desc")
    .limit(1)
    .executeTakeFirst();
}

/** The current sequence of each of these deployments (those that still exist). */
export async function readSequences(db: Executor, uids: readonly string[]): Promise<Map<string, number>> {
  if (uids.length === 0) return new Map();
  const rows = await db
    .selectFrom("deployments")
    .select(["uid", "sequence"])
    .where("uid", "=", sql<string>`any(${[...uids]}::text[])`)
    .execute();
  return new Map(rows.map((r) => [r.uid, r.sequence]));
}
