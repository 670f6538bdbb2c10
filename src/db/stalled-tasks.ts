// Open tasks that look stuck, for the sweeper to re-publish, and the record
// that it did. Reading and marking are apart so that a publish that failed is
// never counted as an enqueue, and no row lock is held across a network call.
import { sql, type ExpressionBuilder } from "kysely";
import type { Database } from "./database.js";
import type { Executor } from "./executor.js";

export interface StalledTask {
  id: string;
  attempt: number;
  enqueueCount: number;
  enqueuedAt: Date;
  /** Its outbox row is still there: the relay has not published it (yet). */
  inOutbox: boolean;
}

export interface StalledTaskQuery {
  /** Tasks last enqueued before this (see stalledCutoff): fixed for a sweep, so one it re-published is not taken again. */
  enqueuedBefore: Date;
  limit: number;
  /**
   * Never-claimed tasks (attempt 0) are taken only if enqueued before this
   * time (their message went with an older stream) or still in the outbox;
   * undefined takes them all.
   */
  neverClaimedEnqueuedBefore?: Date;
}

/** The database's now() minus `olderThanMs`: tasks enqueued before it count as stalled. */
export async function stalledCutoff(db: Executor, olderThanMs: number): Promise<Date> {
  const { rows } = await sql<{ cutoff: Date }>`select now() - ${olderThanMs} * interval '1 millisecond' as cutoff`.execute(db);
  return new Date(rows[0]!.cutoff);
}

/** PENDING or RUNNING tasks enqueued before the cutoff and not leased, oldest first. */
export async function findStalledTasks(db: Executor, q: StalledTaskQuery): Promise<StalledTask[]> {
  const before = q.neverClaimedEnqueuedBefore;
  // An uncorrelated IN: Postgres reads the (normally tiny) outbox once, hashed.
  const inOutbox = (eb: ExpressionBuilder<Database, "tasks">) => eb("tasks.id", "in", eb.selectFrom("outbox").select("outbox.task_id"));
  const rows = await db
    .selectFrom("tasks")
    .select((eb) => ["id", "attempt", "enqueue_count", "enqueued_at", inOutbox(eb).as("in_outbox")])
    .where("status", "in", ["PENDING", "RUNNING"])
    .where("enqueued_at", "<", q.enqueuedBefore)
    .where((w) => w.or([w("lease_expires_at", "is", null), w("lease_expires_at", "<", sql<Date>`now()`)]))
    .$if(before !== undefined, (qb) => qb.where((w) => w.or([w("attempt", ">", 0), w("enqueued_at", "<", before!), inOutbox(w)])))
    .orderBy("enqueued_at")
    .limit(q.limit)
    .execute();
  return rows.map((r) => ({
    id: r.id,
    attempt: r.attempt,
    enqueueCount: r.enqueue_count,
    enqueuedAt: new Date(r.enqueued_at),
    inOutbox: r.in_outbox === true,
  }));
}

/**
 * Records a re-publish of each task: enqueued now, one more enqueue. A task
 * another sweeper marked since it was read (its count moved) is left alone,
 * so concurrent sweepers count one re-publish once.
 */
export async function markRequeued(db: Executor, tasks: ReadonlyArray<Pick<StalledTask, "id" | "enqueueCount">>): Promise<number> {
  if (tasks.length === 0) return 0;
  const result = await db
    .updateTable("tasks")
    .set({ enqueued_at: sql`now()`, enqueue_count: sql`enqueue_count + 1` })
    .where(sql<boolean>`(id, enqueue_count) in (select * from unnest(${tasks.map((t) => t.id)}::text[], ${tasks.map((t) => t.enqueueCount)}::int[]))`)
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
}
