// What waits to be done, for the worker's metrics: tasks not yet claimed,
// how long the oldest of them has waited, and outbox rows not yet published.
import { sql } from "kysely";
import type { Executor } from "./executor.js";

export interface TaskBacklog {
  pending: number;
  running: number;
  /** Seconds since the oldest PENDING task was created; 0 when none is. */
  oldestPendingAgeSeconds: number;
  outboxRows: number;
}

export async function readTaskBacklog(db: Executor): Promise<TaskBacklog> {
  // The partial index tasks_open holds exactly the PENDING and RUNNING tasks.
  const { rows } = await sql<{ pending: string; running: string; oldest_age: number | null; outbox: string }>`
    select count(*) filter (where status = 'PENDING') as pending,
           count(*) filter (where status = 'RUNNING') as running,
           extract(epoch from now() - min(create_time) filter (where status = 'PENDING'))::float8 as oldest_age,
           (select count(*) from outbox) as outbox
    from tasks where status in ('PENDING', 'RUNNING')`.execute(db);
  const r = rows[0];
  return {
    pending: Number(r?.pending ?? 0),
    running: Number(r?.running ?? 0),
    oldestPendingAgeSeconds: Math.max(0, r?.oldest_age ?? 0),
    outboxRows: Number(r?.outbox ?? 0),
  };
}
