// The worker's writes: each is one attempt's change of its task and of the
// task's deployment, plus the event that records it. Concurrent writes of
// different tasks go out together as ONE statement with fixed SQL (the rows
// travel as JSON; jsonb_populate_record applies each patch onto the current
// row), so a worker running many tasks pays one round trip per batch and no
// query building per write. Fencing is per item: a task whose attempt no
// longer holds it matches no row, and its deployment is left untouched.
//
// The rows are found through `= any($ids)`: joined to the JSON rows alone,
// the planner (its statistics lagging a burst of new tasks) chose a scan of
// every open task, 10 ms per statement with 10,000 queued; and the status
// test sits in a CASE so that the partial index tasks_open is not scanned in
// full beside the primary key.
//
// Lock order: deployment, then task, as DeleteDeployment and every other
// writer take them. Data-modifying CTEs have no guaranteed order, and `d`
// joins `t`, so left alone this statement would lock the task first and
// deadlock against a delete cancelling it. `l` locks the deployments (in uid
// order, so two batches agree too; the same lock strength as the update in
// `d`), and `t` is gated on an uncorrelated
// scalar subquery over `l`: an InitPlan, evaluated before its scan yields
// (and locks) any task. count(*) reads `l` to the end, locking every row.
import type { DeploymentEvent, EventType } from "../domain/types.js";
import { eventFromRows, FencedError } from "./changes.js";
import { retryWriteConflicts } from "./conflict-retry.js";
import { executePreparedSql } from "./connect.js";
import type { DeploymentPatch, DeploymentRow, TaskPatch, TaskRow } from "./database.js";
import type { Executor } from "./executor.js";
import { createCoalescer, type Coalescer } from "./coalescer.js";

export interface AttemptChange {
  deploymentUid: string;
  type: EventType;
  taskId: string;
  attempt: number;
  /** jsonb columns as objects, not JSON text. */
  task: TaskPatch;
  deployment: DeploymentPatch;
}

/** The event; FencedError when the attempt lost the task; another Error when its statement failed after an earlier one of the batch committed. */
export type AttemptChangeResult = DeploymentEvent | FencedError | Error;

// The columns an attempt may change; sequence and update_time always move.
const TASK_COLUMNS = ["status", "phase", "progress", "result", "failure", "rolled_back", "start_time", "end_time", "progress_deadline"] as const;
const DEPLOYMENT_COLUMNS = [
  "state",
  "failure",
  "instances",
  "endpoint_url",
  "serving_revision",
  "target_revision",
  "active_task_id",
  "modifier",
  "model",
  "resources",
  "scaling",
  "traffic",
] as const;

const list = (columns: readonly string[], prefix = "") => columns.map((c) => prefix + c).join(", ");

const APPLY_ATTEMPT_CHANGES = `
with x as (
  select * from jsonb_to_recordset($1::jsonb)
    as x(n int, deployment_uid text, type text, task_id text, attempt int, task jsonb, dep jsonb)),
l as materialized (
  select uid from deployments where uid = any($3::text[]) order by uid for no key update),
t as (
  update tasks set (${list(TASK_COLUMNS)}) = (select ${list(TASK_COLUMNS, "p.")} from jsonb_populate_record(tasks, x.task) p)
  from x
  where tasks.id = any($2::text[]) and tasks.id = x.task_id and tasks.attempt = x.attempt
    and case when tasks.status in ('PENDING', 'RUNNING') then true else false end
    and (select count(*) from l) >= 0
  returning x.n, to_jsonb(tasks) as task),
d as (
  update deployments set (${list(DEPLOYMENT_COLUMNS)}) = (select ${list(DEPLOYMENT_COLUMNS, "p.")} from jsonb_populate_record(deployments, x.dep) p),
    sequence = deployments.sequence + 1, update_time = now()
  from x join t on t.n = x.n
  where deployments.uid = any($3::text[]) and deployments.uid = x.deployment_uid
  returning x.n, x.type, deployments.uid, deployments.sequence, deployments.workspace, deployments.update_time, to_jsonb(deployments) as dep),
e as (
  insert into events (deployment_uid, sequence, workspace, time, type, deployment, task)
  select d.uid, d.sequence, d.workspace, d.update_time, d.type, d.dep, t.task from d join t on t.n = d.n
  returning deployment_uid, cursor)
select d.n, d.dep, t.task, e.cursor from d join t on t.n = d.n join e on e.deployment_uid = d.uid`;

interface ChangedRow {
  n: number;
  dep: DeploymentRow;
  task: TaskRow;
  cursor: string;
}

function checkColumns(patch: object, allowed: readonly string[], what: string): void {
  for (const key of Object.keys(patch)) {
    if (!allowed.includes(key)) throw new Error(`an attempt may not change ${what}.${key}`);
  }
}

/** Applies the changes in order; one result per change. */
export async function applyAttemptChanges(db: Executor, changes: readonly AttemptChange[]): Promise<AttemptChangeResult[]> {
  const results: AttemptChangeResult[] = new Array(changes.length);
  // A statement updates a row once: a second change of the same deployment
  // waits for the next statement (order is kept).
  let pending = changes.map((change, index) => ({ change, index }));
  while (pending.length > 0) {
    const seen = new Set<string>();
    const now: typeof pending = [];
    const later: typeof pending = [];
    for (const p of pending) {
      if (seen.has(p.change.deploymentUid)) later.push(p);
      else {
        seen.add(p.change.deploymentUid);
        now.push(p);
      }
    }
    const input = now.map(({ change: c }, n) => {
      checkColumns(c.task, TASK_COLUMNS, "task");
      checkColumns(c.deployment, DEPLOYMENT_COLUMNS, "deployment");
      return { n, deployment_uid: c.deploymentUid, type: c.type, task_id: c.taskId, attempt: c.attempt, task: c.task, dep: c.deployment };
    });
    let rows: ChangedRow[];
    try {
      // One statement is atomic: after a deadlock it can simply run again.
      rows = await retryWriteConflicts("a batch of task writes", () =>
        executePreparedSql<ChangedRow>(db, APPLY_ATTEMPT_CHANGES, [JSON.stringify(input), input.map((i) => i.task_id), input.map((i) => i.deployment_uid)]),
      );
    } catch (err) {
      // Nothing committed yet: the caller may write the batch again. After
      // an earlier statement committed, that would apply its changes twice:
      // the rest get the error as their result instead.
      if (pending.length === changes.length) throw err;
      for (const p of pending) results[p.index] = err instanceof Error ? err : new Error(String(err));
      return results;
    }
    const byN = new Map(rows.map((r) => [r.n, r]));
    now.forEach(({ change, index }, n) => {
      const row = byN.get(n);
      results[index] = row ? eventFromRows(row.dep, row.task, row.cursor, change.type) : new FencedError(change.taskId, change.attempt);
    });
    pending = later;
  }
  return results;
}

/**
 * The worker's writes, concurrent ones joined (see coalescer.ts). One
 * statement in flight: the batch grows with the tasks running, and progress
 * writes never hold more than one connection's share of Postgres, which the
 * API's creates share (measured by npm run bench on this 2-core machine: 2 in
 * flight drained ~30 % more tasks during the create burst, and the API
 * accepted ~20 % fewer creates meanwhile). 200 rows: every task of a worker
 * at the default concurrency (128) fits one statement.
 */
export function createAttemptChangeWriter(db: Executor): Coalescer<AttemptChange, AttemptChangeResult> {
  return createCoalescer({ runBatch: (items) => applyAttemptChanges(db, items), maxBatch: 200, maxInFlight: 1 });
}
