import { sql } from "kysely";
import type { Executor } from "./executor.js";

/** `callContext`: headers of the task's message from the call that queued it (telemetry/call-context.ts), or null. */
export async function insertOutbox(db: Executor, taskId: string, msgId: string, callContext: Record<string, string> | null = null): Promise<OutboxEntry> {
  const context = callContext === null ? null : JSON.stringify(callContext);
  const row = await db.insertInto("outbox").values({ task_id: taskId, msg_id: msgId, call_context: context }).returning("id").executeTakeFirstOrThrow();
  return { id: String(row.id), taskId, msgId, callContext };
}

export interface OutboxEntry {
  id: string;
  taskId: string;
  msgId: string;
  /** As written by insertOutbox (unchecked: the reader validates it). */
  callContext: unknown;
}

/**
 * Locks up to `limit` outbox rows for publishing; `publish` runs inside the
 * transaction and returns the rows it published, which are deleted only then.
 * A crash in between republishes them, which the queue's de-duplication
 * absorbs. Returns how many rows it published.
 */
export async function drainOutbox(db: Executor, limit: number, publish: (entries: OutboxEntry[]) => Promise<readonly OutboxEntry[]>): Promise<number> {
  return db.transaction().execute(async (trx) => {
    const rows = await trx
      .selectFrom("outbox")
      .select(["id", "task_id", "msg_id", "call_context"])
      .orderBy("id")
      .limit(limit)
      .forUpdate()
      .skipLocked()
      .execute();
    if (rows.length === 0) return 0;
    const published = await publish(rows.map((r) => ({ id: String(r.id), taskId: r.task_id, msgId: r.msg_id, callContext: r.call_context })));
    await deleteOutboxRows(
      trx,
      published.map((e) => e.id),
    );
    return published.length;
  });
}

/** Removes published rows (one statement, whatever the count). */
export async function deleteOutboxRows(db: Executor, ids: readonly string[]): Promise<void> {
  if (ids.length === 0) return;
  await db
    .deleteFrom("outbox")
    .where(sql<boolean>`id = any(${ids}::bigint[])`)
    .execute();
}
