// Migrations are listed statically (no filesystem scan) so they work from dist/.
import { Migrator, type Migration, type MigrationProvider } from "kysely";
import type { Db } from "./connect.js";
import * as initial from "./migrations/2026-11-25-0001-initial.js";
import * as taskScaling from "./migrations/2026-11-30-0001-task-scaling.js";
import * as eventTxid from "./migrations/2026-11-30-0002-event-txid.js";
import * as hostCapacity from "./migrations/2026-11-30-0003-host-capacity.js";
import * as outboxCallContext from "./migrations/2026-11-30-0004-outbox-call-context.js";
import * as traffic from "./migrations/2026-11-30-0005-traffic.js";
import * as autoscaledIndex from "./migrations/2026-12-01-0001-autoscaled-index.js";

const migrations: Record<string, Migration> = {
  "2026-11-25-0001-initial": initial,
  "2026-11-30-0001-task-scaling": taskScaling,
  "2026-11-30-0002-event-txid": eventTxid,
  "2026-11-30-0003-host-capacity": hostCapacity,
  "2026-11-30-0004-outbox-call-context": outboxCallContext,
  "2026-11-30-0005-traffic": traffic,
  "2026-12-01-0001-autoscaled-index": autoscaledIndex,
};

const provider: MigrationProvider = { getMigrations: async () => migrations };

function migrator(db: Db): Migrator {
  return new Migrator({ db, provider });
}

export class NotMigratedError extends Error {
  override readonly name = "NotMigratedError";
  constructor(readonly pending: string[]) {
    super(`the database is not migrated (pending: ${pending.join(", ")}): run \`npx modeldeploy migrate\` first`);
  }
}

export async function migrateToLatest(db: Db): Promise<string[]> {
  const { error, results } = await migrator(db).migrateToLatest();
  if (error) throw error instanceof Error ? error : new Error(String(error));
  return (results ?? []).filter((r) => r.status === "Success").map((r) => r.migrationName);
}

/** Throws NotMigratedError when any migration has not run. */
export async function assertMigrated(db: Db): Promise<void> {
  const all = await migrator(db).getMigrations();
  const pending = all.filter((m) => m.executedAt === undefined).map((m) => m.name);
  if (pending.length > 0) throw new NotMigratedError(pending);
}
