import type { Executor } from "./executor.js";

/** `callContext`: headers of the task's message from the call that queued it (telemetry/call-context.ts), or null. */
export async function insertOutbox(db: Executor, taskId: string, msgId: string, callContext: Record<string, string> | null = null): Promise<void> {
  await db
    .insertInto("outbox")
    .values({ task_id: taskId, msg_id: msgId, call_context: callContext === null ? null : JSON.stringify(callContext) })
    .execute();
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
 * transaction and the rows are deleted only after it succeeds. A crash in
 * between republishes them, which the queue's de-duplication absorbs.
 */
export async function drainOutbox(db: Executor, limit: number, publish: (entries: OutboxEntry[]) => Promise<void>): Promise<number> {
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
    await publish(rows.map((r) => ({ id: String(r.id), taskId: r.task_id, msgId: r.msg_id, callContext: r.call_context })));
    await trx
      .deleteFrom("outbox")
      .where(
        "id",
        "in",
        rows.map((r) => r.id),
      )
      .execute();
    return rows.length;
  });
}
