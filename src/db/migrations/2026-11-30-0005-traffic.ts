// Frozen once written: never import application code here.
// Traffic: the split a canary puts in force (null: all to the serving
// revision), the rollout a task was asked for, and the reason an event
// carries when no task says it (an autoscaler change).
import { sql, type Kysely } from "kysely";

export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table deployments add column traffic jsonb`.execute(db);
  await sql`alter table tasks add column rollout jsonb`.execute(db);
  await sql`alter table events add column message text not null default ''`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`alter table events drop column message`.execute(db);
  await sql`alter table tasks drop column rollout`.execute(db);
  await sql`alter table deployments drop column traffic`.execute(db);
}
