// Frozen once written: never import application code here.
// The autoscaler reads the deployments it tends every second: a partial index
// keeps that read to those few, however many deployments there are.
import { sql, type Kysely } from "kysely";

export async function up(db: Kysely<any>): Promise<void> {
  await sql`create index deployments_autoscaled on deployments (uid)
    where active_task_id is null and (scaling->>'maxReplicas')::int > greatest((scaling->>'minReplicas')::int, 0)`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop index deployments_autoscaled`.execute(db);
}
