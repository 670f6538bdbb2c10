// Frozen once written: never import application code here.
// What the call that queued a task hands on to the worker through the queue
// message's headers: its x-request-id and, when traced, its W3C trace
// context (traceparent, tracestate). Null on rows written before.
import { sql, type Kysely } from "kysely";

export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table outbox add column call_context jsonb`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`alter table outbox drop column call_context`.execute(db);
}
