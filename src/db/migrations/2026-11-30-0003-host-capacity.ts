// Frozen once written: never import application code here.
// What the runtime's host has, as its workers last reported it: the API
// checks a request against it before anything is queued.
import { sql, type Kysely } from "kysely";

export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table host_capacity (
      runtime text primary key,
      cpu double precision not null,
      memory_bytes bigint not null,
      reported_at timestamptz not null default now()
    );
  `.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop table host_capacity`.execute(db);
}
