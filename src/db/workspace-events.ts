// What a workspace watch reads. Positions are database snapshots
// (pg_current_snapshot, as text): the events between two positions are those
// whose transaction is visible in the later snapshot and not in the earlier
// one. Unlike a cursor order, this misses no event of a transaction that
// committed after one with a later cursor.
import { sql } from "kysely";
import type { DeploymentEvent, DeploymentState, TaskKind } from "../domain/types.js";
import type { DeploymentRow, EventRow, TaskRow } from "./database.js";
import type { Executor } from "./executor.js";
import { toEvent } from "./mappers.js";

export interface WorkspaceSnapshot {
  /** The position the snapshot reflects. */
  position: string;
  deployments: { deployment: DeploymentRow; task: TaskRow | null }[];
}

/** The workspace's deployments in these states (none given: all but DELETED), with their active or latest task, and the position they reflect: one statement, one snapshot. */
export async function readWorkspaceSnapshot(
  db: Executor,
  workspace: string,
  states: readonly DeploymentState[],
  kinds: readonly TaskKind[],
): Promise<WorkspaceSnapshot> {
  const stateFilter = states.length > 0 ? sql`d.state = any(${[...states]}::text[])` : sql`d.state <> 'DELETED'`;
  const { rows } = await sql<{ position: string; deployment: DeploymentRow | null; task: TaskRow | null }>`
    with s as (select pg_current_snapshot()::text as position)
    select s.position, to_jsonb(d) as deployment,
      case when d.uid is null then null
           when d.active_task_id is not null then (select to_jsonb(t) from tasks t where t.id = d.active_task_id)
           else (select to_jsonb(t) from tasks t where t.deployment_uid = d.uid and t.kind = any(${[...kinds]}::text[])
                 order by t.create_time desc, t.id desc limit 1) end as task
    from s left join deployments d on d.workspace = ${workspace} and ${stateFilter}
    order by d.uid`.execute(db);
  return {
    position: rows[0]!.position,
    deployments: rows.filter((r) => r.deployment !== null).map((r) => ({ deployment: r.deployment!, task: r.task })),
  };
}

export interface EventWindow {
  /** Events not visible at this position… */
  after: string;
  /** …and visible at this one (omitted: now). */
  until?: string;
  /** Skip events of this (earlier) batch already delivered: visible at `batch`, cursor up to `cursor`. */
  seen?: { batch: string; cursor: string };
  /** Page within the window: cursors beyond this. */
  afterCursor?: string;
}

/** One page of the workspace's events in the window, in cursor order, and the window's end position. */
export async function readWorkspaceEvents(
  db: Executor,
  workspace: string,
  w: EventWindow,
  limit: number,
): Promise<{ until: string; events: DeploymentEvent[] }> {
  const until = w.until === undefined ? sql`pg_current_snapshot()` : sql`${w.until}::pg_snapshot`;
  const seen =
    w.seen === undefined ? sql`true` : sql`not (pg_visible_in_snapshot(e.txid, ${w.seen.batch}::pg_snapshot) and e.cursor <= ${w.seen.cursor}::bigint)`;
  const page = w.afterCursor === undefined ? sql`true` : sql`e.cursor > ${w.afterCursor}::bigint`;
  const { rows } = await sql<EventRow & { until: string }>`
    with s as (select ${until} as snap)
    select s.snap::text as until, e.*
    from s left join lateral (
      select * from events e
      where e.workspace = ${workspace}
        and e.txid >= pg_snapshot_xmin(${w.after}::pg_snapshot)
        and not pg_visible_in_snapshot(e.txid, ${w.after}::pg_snapshot)
        and pg_visible_in_snapshot(e.txid, s.snap)
        and ${seen} and ${page}
      order by e.cursor
      limit ${limit}) e on true
    order by e.cursor`.execute(db);
  return { until: rows[0]!.until, events: rows.filter((r) => r.cursor !== null).map(toEvent) };
}

/** Whether `text` has the form of a position (pg_snapshot text: xmin:xmax:xip,…). */
export function isPosition(text: string): boolean {
  return /^\d{1,20}:\d{1,20}:(\d{1,20}(,\d{1,20}){0,10000})?$/.test(text);
}
