// Frozen once written: never import application code here.
// The W3C trace context (traceparent, tracestate) of the call that queued a
// task, carried by the outbox to the queue message's headers; null when the
// call was not traced.
import { sql, type Kysely } from "kysely";

export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table outbox add column trace_context jsonb`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`alter table outbox drop column trace_context`.execute(db);
}
