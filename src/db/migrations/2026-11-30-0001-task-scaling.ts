// Frozen once written: never import application code here.
// The scaling a task puts in force (UPDATE with a scaling, SCALE); null when
// the task leaves the deployment's scaling as it is. Written to the
// deployment only when the task completes, so `scaling` is always the one in
// force and a failed or cancelled task has nothing to undo.
import { sql, type Kysely } from "kysely";

export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table tasks add column scaling jsonb`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`alter table tasks drop column scaling`.execute(db);
}
