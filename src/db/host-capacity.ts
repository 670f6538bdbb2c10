// The runtime host's capacity as its workers report it, and what live
// deployments ask of it.
import { sql } from "kysely";
import type { Executor } from "./executor.js";

export interface HostCapacityRow {
  cpu: number;
  memoryBytes: number;
  reportedAt: Date;
}

export async function reportHostCapacity(db: Executor, runtime: string, c: { cpu: number; memoryBytes: number }): Promise<void> {
  await db
    .insertInto("host_capacity")
    .values({ runtime, cpu: c.cpu, memory_bytes: c.memoryBytes })
    .onConflict((oc) => oc.column("runtime").doUpdateSet({ cpu: c.cpu, memory_bytes: c.memoryBytes, reported_at: sql<string>`now()` }))
    .execute();
}

/** The smallest host any runtime reported (one local runtime: its host); undefined when none did. */
export async function readHostCapacity(db: Executor): Promise<HostCapacityRow | undefined> {
  const row = await db
    .selectFrom("host_capacity")
    .selectAll()
    .orderBy(sql`memory_bytes`)
    .limit(1)
    .executeTakeFirst();
  return row ? { cpu: row.cpu, memoryBytes: Number(row.memory_bytes), reportedAt: new Date(row.reported_at) } : undefined;
}

/** Memory, CPU and max replicas of every live deployment but `exceptUid` (the one being changed). */
export async function liveReservations(db: Executor, exceptUid: string): Promise<{ memory: string; cpu: number; maxReplicas: number }[]> {
  const rows = await db
    .selectFrom("deployments")
    .select([
      sql<string>`resources->>'memory'`.as("memory"),
      sql<number>`coalesce((resources->>'cpu')::float8, 0)`.as("cpu"),
      sql<number>`(scaling->>'maxReplicas')::int`.as("max_replicas"),
    ])
    .where("state", "not in", ["DELETED", "FAILED"])
    .where("uid", "<>", exceptUid)
    .execute();
  return rows.map((r) => ({ memory: r.memory, cpu: Number(r.cpu), maxReplicas: Number(r.max_replicas) }));
}

/**
 * readHostCapacity, read again at most every `ttlMs` (creates are hot; the
 * host changes rarely), through the executor given: inside a transaction,
 * that transaction's own connection (the embedded database has only one).
 */
export function cachedHostCapacity(ttlMs = 10_000): (db: Executor) => Promise<HostCapacityRow | undefined> {
  let cached: { at: number; value: Promise<HostCapacityRow | undefined> } | undefined;
  return (db) => {
    const now = Date.now();
    if (cached === undefined || now - cached.at > ttlMs) {
      const value = readHostCapacity(db);
      cached = { at: now, value };
      // A failed read is not kept: the next call tries again.
      value.catch(() => (cached = undefined));
    }
    return cached.value;
  };
}
