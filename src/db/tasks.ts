import { sql } from "kysely";
import type { TaskKind } from "../domain/types.js";
import { executePrepared, prepared } from "./connect.js";
import type { DeploymentRow, NewTaskRow, RevisionRow, TaskRow } from "./database.js";
import type { Executor } from "./executor.js";

export async function insertTask(db: Executor, row: NewTaskRow): Promise<TaskRow> {
  return db.insertInto("tasks").values(row).returningAll().executeTakeFirstOrThrow();
}

export async function findTask(db: Executor, id: string): Promise<TaskRow | undefined> {
  return db.selectFrom("tasks").selectAll().where("id", "=", id).executeTakeFirst();
}

export async function findTaskInWorkspace(db: Executor, workspace: string, id: string): Promise<TaskRow | undefined> {
  return db.selectFrom("tasks").selectAll().where("id", "=", id).where("workspace", "=", workspace).executeTakeFirst();
}

export async function findTaskByRequestId(db: Executor, workspace: string, requestId: string): Promise<TaskRow | undefined> {
  return db.selectFrom("tasks").selectAll().where("workspace", "=", workspace).where("request_id", "=", requestId).executeTakeFirst();
}

export async function latestTaskOfKinds(db: Executor, deploymentUid: string, kinds: TaskKind[]): Promise<TaskRow | undefined> {
  return db
    .selectFrom("tasks")
    .selectAll()
    .where("deployment_uid", "=", deploymentUid)
    .where("kind", "in", kinds)
    .orderBy("create_time", "desc")
    .orderBy("id", "desc")
    .limit(1)
    .executeTakeFirst();
}

export type ClaimResult =
  | { kind: "claimed"; task: TaskRow; deployment: DeploymentRow | undefined; revision: RevisionRow | undefined }
  | { kind: "terminal"; task: TaskRow }
  | { kind: "leased"; task: TaskRow; retryInMs: number }
  | { kind: "missing" };

interface ClaimRow {
  task: TaskRow;
  dep: DeploymentRow | null;
  rev: RevisionRow | null;
}

/**
 * Takes the task's lease and bumps its attempt: every later write of this
 * attempt is fenced on (id, attempt), so a worker that lost the lease cannot
 * overwrite a newer attempt. The same statement reads the task's deployment
 * and revision, which the worker needs next (one round trip, not three).
 */
export async function claimTask(db: Executor, id: string, owner: string, leaseMs: number): Promise<ClaimResult> {
  const query = db
    .with("c", (qb) => qb
      .updateTable("tasks")
      .set({
        attempt: sql`attempt + 1`,
        lease_owner: owner,
        lease_expires_at: sql`now() + ${leaseMs} * interval '1 millisecond'`,
      })
      .where("id", "=", id)
      .where("status", "in", ["PENDING", "RUNNING"])
      .where((eb) => eb.or([eb("lease_expires_at", "is", null), eb("lease_expires_at", "<", sql<Date>`now()`)]))
      .returningAll())
    .selectFrom("c")
    .select(sql<TaskRow>`to_jsonb(c)`.as("task"))
    .select(sql<DeploymentRow | null>`(select to_jsonb(d) from deployments d where d.uid = c.deployment_uid)`.as("dep"))
    .select(sql<RevisionRow | null>`(select to_jsonb(r) from revisions r where r.deployment_uid = c.deployment_uid and r.number = c.revision)`.as("rev"));
  const [claimed] = (await executePrepared(db, query)) as ClaimRow[];
  if (claimed) return { kind: "claimed", task: claimed.task, deployment: claimed.dep ?? undefined, revision: claimed.rev ?? undefined };
  const row = await findTask(db, id);
  if (!row) return { kind: "missing" };
  if (!["PENDING", "RUNNING"].includes(row.status)) return { kind: "terminal", task: row };
  const expires = row.lease_expires_at ? new Date(row.lease_expires_at).getTime() : Date.now();
  return { kind: "leased", task: row, retryInMs: Math.max(expires - Date.now(), 100) };
}

/** Extends the lease; false when this attempt no longer owns the task. */
export async function renewLease(db: Executor, id: string, attempt: number, leaseMs: number): Promise<boolean> {
  const r = await db.executeQuery(prepared(db
    .updateTable("tasks")
    .set({ lease_expires_at: sql`now() + ${leaseMs} * interval '1 millisecond'` })
    .where("id", "=", id)
    .where("attempt", "=", attempt)
    .where("status", "in", ["PENDING", "RUNNING"])));
  return Number(r.numAffectedRows ?? 0) === 1;
}

/** Gives the lease back (shutdown, nak) so another worker need not wait it out. */
export async function releaseLease(db: Executor, id: string, attempt: number): Promise<void> {
  await db
    .updateTable("tasks")
    .set({ lease_expires_at: null, lease_owner: null })
    .where("id", "=", id)
    .where("attempt", "=", attempt)
    .execute();
}
