// Frozen once written: never import application code here.
// The transaction that wrote each event: a workspace watch resumes between
// two database snapshots (events visible in one and not in the other), which
// no cursor order can do, since transactions commit out of cursor order.
import { sql, type Kysely } from "kysely";

export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    alter table events add column txid xid8 not null default pg_current_xact_id();
    create index events_workspace_txid on events (workspace, txid);
  `.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`
    drop index events_workspace_txid;
    alter table events drop column txid;
  `.execute(db);
}
