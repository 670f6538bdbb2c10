import { sql } from "kysely";
import type { DeploymentEvent, TaskKind, TaskStatus } from "../domain/types.js";
import { eventFromRows } from "./changes.js";
import { retryWriteConflicts } from "./conflict-retry.js";
import { executePreparedSql, prepared } from "./connect.js";
import type { DeploymentRow, NewTaskRow, RevisionRow, TaskRow } from "./database.js";
import type { Executor } from "./executor.js";
import { createCoalescer, type Coalescer } from "./coalescer.js";

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
  | {
      kind: "claimed";
      task: TaskRow;
      deployment: DeploymentRow | undefined;
      revision: RevisionRow | undefined;
      /** A fresh deploy started by its claim (see CLAIM_TASKS): the event of that change. */
      started: DeploymentEvent | undefined;
    }
  | { kind: "terminal"; task: TaskRow }
  | { kind: "leased"; task: TaskRow; retryInMs: number }
  | { kind: "missing" };

interface ClaimRow {
  task: TaskRow;
  dep: DeploymentRow | null;
  rev: RevisionRow | null;
  /** Set when the claim started the task (a fresh deploy). */
  cursor: string | null;
}

// Takes each task's lease and bumps its attempt: every later write of the
// attempt is fenced on (id, attempt), so a worker that lost the lease cannot
// overwrite a newer attempt. The same statement reads the task's deployment
// and revision, which the worker needs next (one round trip, not three).
//
// A fresh deploy (PENDING, its deadline not passed) also starts with its
// claim, the change task-phases.ts deployStarted writes for a resumed one:
// task RUNNING in VALIDATING, its deadline counted from now; deployment
// INITIALIZING toward the task's revision, desired replicas as
// initialReplicas() counts them; and the event. One write less per task.
// `start_time = now()` marks the tasks it started (now() is the
// transaction's start, which no earlier claim had).
//
// Lock order: deployment, then task, as in attempt-changes.ts: `l` locks the
// deployments of the fresh deploys (uid order) before `c` locks any task
// (id order, the primary key's scan of `= any`); other tasks' deployments
// are not locked. The status test sits in a CASE as in attempt-changes.ts,
// so that the planner uses the primary key.
const CLAIM_TASKS = `
with l as materialized (
  select uid from deployments
  where uid in (select deployment_uid from tasks where id = any($1::text[]) and kind = 'DEPLOY' and status = 'PENDING')
  order by uid for no key update),
c as (
  update tasks set attempt = attempt + 1, lease_owner = $2, lease_expires_at = now() + $3 * interval '1 millisecond',
    (status, phase, start_time, progress_deadline, progress) = (
      select
        case when fresh then 'RUNNING' else tasks.status end,
        case when fresh then 'VALIDATING' else tasks.phase end,
        case when fresh then now() else tasks.start_time end,
        case when fresh then now() + tasks.deadline_seconds * interval '1 second' else tasks.progress_deadline end,
        case when fresh then tasks.progress || jsonb_build_object('message', 'validating (attempt ' || (tasks.attempt + 1) || ')') else tasks.progress end
      from (select tasks.kind = 'DEPLOY' and tasks.status = 'PENDING' and coalesce(tasks.progress_deadline >= now(), true) as fresh) f)
  where id = any($1::text[])
    and case when status in ('PENDING', 'RUNNING') then true else false end
    and (lease_expires_at is null or lease_expires_at < now())
    and (select count(*) from l) >= 0
  returning *),
d as (
  update deployments set state = 'INITIALIZING', target_revision = c.revision,
    instances = jsonb_build_object(
      'desired', case when (deployments.scaling->>'maxReplicas')::int = 0 then 0 else greatest((deployments.scaling->>'minReplicas')::int, 1) end,
      'ready', 0, 'pending', 0, 'restarts', 0),
    sequence = deployments.sequence + 1, update_time = now()
  from c
  where c.start_time = now() and deployments.uid = c.deployment_uid
  returning c.id as task_id, deployments.*),
e as (
  insert into events (deployment_uid, sequence, workspace, time, type, deployment, task)
  select d.uid, d.sequence, d.workspace, d.update_time, 'STATE_CHANGED', to_jsonb(d) - 'task_id', to_jsonb(c)
  from d join c on c.id = d.task_id
  returning deployment_uid, cursor)
select to_jsonb(c) as task,
  coalesce(s.dep, (select to_jsonb(d) from deployments d where d.uid = c.deployment_uid)) as dep,
  (select to_jsonb(r) from revisions r where r.deployment_uid = c.deployment_uid and r.number = c.revision) as rev,
  s.cursor
from c left join (select d.task_id, to_jsonb(d) - 'task_id' as dep, e.cursor from d join e on e.deployment_uid = d.uid) s on s.task_id = c.id`;

/** Claims one task: claimTasks for one id. */
export async function claimTask(db: Executor, id: string, owner: string, leaseMs: number): Promise<ClaimResult> {
  const [result] = await claimTasks(db, [id], owner, leaseMs);
  return result!;
}

/** Claims each id, in one statement (plus one read for those not claimed); one result per id. */
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
      const started = row.cursor !== null && row.dep !== null ? eventFromRows(row.dep, row.task, row.cursor, "STATE_CHANGED") : undefined;
      return { kind: "claimed", task: row.task, deployment: row.dep ?? undefined, revision: row.rev ?? undefined, started };
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
 * coalescer.ts): the messages of a pull arrive together.
 */
export function createTaskClaimer(db: Executor, owner: string, leaseMs: number): Coalescer<string, ClaimResult> {
  return createCoalescer({ runBatch: (ids) => claimTasks(db, ids, owner, leaseMs), maxBatch: 200, maxInFlight: 1 });
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
