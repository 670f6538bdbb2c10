import { sql } from "kysely";
import type { TaskKind, TaskStatus } from "../domain/types.js";
import { retryWriteConflicts } from "./conflict-retry.js";
import { executePrepared, executePreparedSql, prepared } from "./connect.js";
import type { DeploymentRow, NewTaskRow, RevisionRow, TaskRow } from "./database.js";
import type { Executor } from "./executor.js";
import { createWriteCoalescer, type WriteCoalescer } from "./write-coalescer.js";

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
    .with("c", (qb) =>
      qb
        .updateTable("tasks")
        .set({
          attempt: sql`attempt + 1`,
          lease_owner: owner,
          lease_expires_at: sql`now() + ${leaseMs} * interval '1 millisecond'`,
        })
        .where("id", "=", id)
        .where("status", "in", ["PENDING", "RUNNING"])
        .where((eb) => eb.or([eb("lease_expires_at", "is", null), eb("lease_expires_at", "<", sql<Date>`now()`)]))
        .returningAll(),
    )
    .selectFrom("c")
    .select(sql<TaskRow>`to_jsonb(c)`.as("task"))
    .select(sql<DeploymentRow | null>`(select to_jsonb(d) from deployments d where d.uid = c.deployment_uid)`.as("dep"))
    .select(sql<RevisionRow | null>`(select to_jsonb(r) from revisions r where r.deployment_uid = c.deployment_uid and r.number = c.revision)`.as("rev"));
  const [claimed] = (await executePrepared(db, query)) as ClaimRow[];
  if (claimed) return { kind: "claimed", task: claimed.task, deployment: claimed.dep ?? undefined, revision: claimed.rev ?? undefined };
  const row = await findTask(db, id);
  return row ? notClaimed(row) : { kind: "missing" };
}

// claimTask for many tasks in one statement, with fixed SQL. Task rows are
// locked in id order (the primary key's scan of `= any`), and no deployment
// row is locked: a claim never waits for a task while it holds anything a
// deployment's writer needs. The status test sits in a CASE as in
// attempt-changes.ts, so that the planner uses the primary key.
const CLAIM_TASKS = `
with c as (
  update tasks set attempt = attempt + 1, lease_owner = $2, lease_expires_at = now() + $3 * interval '1 millisecond'
  where id = any($1::text[])
    and case when status in ('PENDING', 'RUNNING') then true else false end
    and (lease_expires_at is null or lease_expires_at < now())
  returning *)
select to_jsonb(c) as task,
  (select to_jsonb(d) from deployments d where d.uid = c.deployment_uid) as dep,
  (select to_jsonb(r) from revisions r where r.deployment_uid = c.deployment_uid and r.number = c.revision) as rev
from c`;

/** claimTask for each id, in one statement (plus one read for those not claimed); one result per id. */
export async function claimTasks(db: Executor, ids: readonly string[], owner: string, leaseMs: number): Promise<ClaimResult[]> {
  const unique = [...new Set(ids)].sort();
  const claimed = new Map<string, ClaimRow>();
  // One statement: after a deadlock it can simply run again.
  const rows = await retryWriteConflicts("a batch of task claims", () => executePreparedSql<ClaimRow>(db, CLAIM_TASKS, [unique, owner, leaseMs]));
  for (const row of rows) claimed.set(row.task.id, row);
  const others = unique.filter((id) => !claimed.has(id));
  const found = new Map((others.length > 0 ? await findTasks(db, others) : []).map((t) => [t.id, t]));
  const given = new Set<string>();
  return ids.map((id): ClaimResult => {
    const row = claimed.get(id);
    // The same task twice in one batch: the first copy holds it, the second is a duplicate.
    if (row && !given.has(id)) {
      given.add(id);
      return { kind: "claimed", task: row.task, deployment: row.dep ?? undefined, revision: row.rev ?? undefined };
    }
    const task = row?.task ?? found.get(id);
    if (!task) return { kind: "missing" };
    return notClaimed(task);
  });
}

async function findTasks(db: Executor, ids: readonly string[]): Promise<TaskRow[]> {
  return executePreparedSql<TaskRow>(db, "select * from tasks where id = any($1::text[])", [ids]);
}

function notClaimed(row: TaskRow): ClaimResult {
  if (!["PENDING", "RUNNING"].includes(row.status)) return { kind: "terminal", task: row };
  const expires = row.lease_expires_at ? new Date(row.lease_expires_at).getTime() : Date.now();
  return { kind: "leased", task: row, retryInMs: Math.max(expires - Date.now(), 100) };
}

/**
 * A worker's claims, concurrent ones joined into one statement (see
 * write-coalescer.ts): the messages of a pull arrive together.
 */
export function createTaskClaimer(db: Executor, owner: string, leaseMs: number): WriteCoalescer<string, ClaimResult> {
  return createWriteCoalescer({ writeBatch: (ids) => claimTasks(db, ids, owner, leaseMs), maxBatch: 200, maxInFlight: 1 });
}

/** Extends the lease; false when this attempt no longer owns the task. */
export async function renewLease(db: Executor, id: string, attempt: number, leaseMs: number): Promise<boolean> {
  const r = await db.executeQuery(
    prepared(
      db
        .updateTable("tasks")
        .set({ lease_expires_at: sql`now() + ${leaseMs} * interval '1 millisecond'` })
        .where("id", "=", id)
        .where("attempt", "=", attempt)
        .where("status", "in", ["PENDING", "RUNNING"]),
    ),
  );
  return Number(r.numAffectedRows ?? 0) === 1;
}

/** Gives the lease back (shutdown, nak) so another worker need not wait it out. */
export async function releaseLease(db: Executor, id: string, attempt: number): Promise<void> {
  await db.updateTable("tasks").set({ lease_expires_at: null, lease_owner: null }).where("id", "=", id).where("attempt", "=", attempt).execute();
}

export interface TaskPageQuery {
  deploymentUid: string;
  /** Empty: any status. */
  statuses: TaskStatus[];
  /** Keyset: ids are time-ordered, so newest first is id order, and pages neither repeat nor skip. */
  beforeId: string | undefined;
  limit: number;
}

/** A deployment's tasks, newest first. */
export async function listTasksOfDeployment(db: Executor, q: TaskPageQuery): Promise<TaskRow[]> {
  let query = db.selectFrom("tasks").selectAll().where("deployment_uid", "=", q.deploymentUid);
  if (q.statuses.length > 0) query = query.where("status", "in", q.statuses);
  if (q.beforeId !== undefined) query = query.where("id", "<", q.beforeId);
  return query.orderBy("id", "desc").limit(q.limit).execute();
}
