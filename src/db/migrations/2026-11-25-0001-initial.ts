// Frozen once written: never import application code here.
import { sql, type Kysely } from "kysely";

export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table api_keys (
      id text primary key,
      workspace text not null,
      principal text not null,
      scopes text[] not null,
      key_hash text not null unique,
      created_at timestamptz not null default now(),
      revoked_at timestamptz
    );

    create table deployments (
      uid text primary key,
      workspace text not null,
      name text not null,
      state text not null,
      model jsonb not null,
      resources jsonb not null,
      scaling jsonb not null,
      failure jsonb,
      instances jsonb not null,
      endpoint_url text not null default '',
      serving_revision integer not null default 0,
      target_revision integer not null default 0,
      active_task_id text,
      labels jsonb not null default '{}',
      creator text not null,
      modifier text not null,
      create_time timestamptz not null,
      update_time timestamptz not null,
      sequence integer not null default 0
    );
    -- A name is unique among a workspace's deployments that are not deleted.
    create unique index deployments_live_name on deployments (workspace, name) where state <> 'DELETED';
    create index deployments_workspace_name on deployments (workspace, name, create_time desc);
    create index deployments_workspace_uid on deployments (workspace, uid);

    create table revisions (
      deployment_uid text not null references deployments (uid),
      number integer not null,
      model jsonb not null,
      resources jsonb not null,
      task_id text not null,
      create_time timestamptz not null,
      primary key (deployment_uid, number)
    );

    create table tasks (
      id text primary key,
      workspace text not null,
      deployment_uid text not null references deployments (uid),
      deployment_name text not null,
      kind text not null,
      revision integer not null,
      status text not null,
      phase text not null,
      progress jsonb not null,
      result jsonb,
      failure jsonb,
      rolled_back boolean not null default false,
      attempt integer not null default 0,
      lease_owner text,
      lease_expires_at timestamptz,
      request_id text not null default '',
      request_hash text not null default '',
      creator text not null,
      create_time timestamptz not null,
      start_time timestamptz,
      end_time timestamptz,
      deadline_seconds integer not null,
      progress_deadline timestamptz,
      enqueue_count integer not null default 0,
      enqueued_at timestamptz not null default now()
    );
    create unique index tasks_request_id on tasks (workspace, request_id) where request_id <> '';
    create index tasks_deployment on tasks (deployment_uid, create_time desc);
    create index tasks_open on tasks (enqueued_at) where status in ('PENDING', 'RUNNING');

    create table events (
      cursor bigserial primary key,
      deployment_uid text not null,
      sequence integer not null,
      workspace text not null,
      time timestamptz not null,
      type text not null,
      deployment jsonb not null,
      task jsonb,
      unique (deployment_uid, sequence)
    );
    create index events_workspace on events (workspace, cursor);

    create table outbox (
      id bigserial primary key,
      task_id text not null,
      msg_id text not null,
      created_at timestamptz not null default now()
    );
  `.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop table outbox, events, tasks, revisions, deployments, api_keys`.execute(db);
}
