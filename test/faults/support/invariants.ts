// What must hold after every case, checked against Postgres, the processes
// and the files on disk. Each check returns its violations as sentences
// (empty: it holds), so that a case reports every broken invariant at once.
import type pg from "pg";
import type { CallRecord, DrainSummary, EventRecord } from "../../../src/loadgen/records.js";
import { modelServers } from "./model-servers.js";
import type { Role } from "./role.js";
import { sleep } from "./wait.js";
import { partialDownloads } from "./weights-cache.js";

const OPEN = ["PENDING", "RUNNING"];
const list = (xs: readonly unknown[], max = 8) =>
  xs
    .slice(0, max)
    .map((x) => (typeof x === "string" ? x : JSON.stringify(x)))
    .join("; ") + (xs.length > max ? `; … ${xs.length - max} more` : "");

/** Every create and delete that returned OK has its task, of its kind, for its deployment. */
export async function callsHaveTasks(db: pg.Pool, calls: readonly CallRecord[]): Promise<string[]> {
  const ok = calls.filter((c) => c.code === "OK" && (c.op === "create" || c.op === "delete"));
  const rows = (
    await db.query<{ id: string; kind: string; deployment_name: string }>("select id, kind, deployment_name from tasks where id = any($1)", [
      ok.map((c) => c.taskId),
    ])
  ).rows;
  const byId = new Map(rows.map((r) => [r.id, r]));
  const bad = ok.filter((c) => {
    const t = byId.get(c.taskId);
    return !t || t.kind !== (c.op === "create" ? "DEPLOY" : "DELETE") || t.deployment_name !== c.name;
  });
  return bad.length > 0
    ? [`${bad.length} of ${ok.length} calls that returned OK have no such task: ${list(bad.map((c) => `${c.op} ${c.name} → task ${c.taskId || "(none)"}`))}`]
    : [];
}

/**
 * Under a fault a call may fail, but only as "try again": UNAVAILABLE,
 * DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED or CANCELED (what the
 * client reports when the connection breaks under a call), or NOT_FOUND for
 * a deployment already deleted. INTERNAL, UNKNOWN, ALREADY_EXISTS for a
 * retried request id and the rest say the server broke.
 */
export function callsFailCleanly(calls: readonly CallRecord[]): string[] {
  const allowed = new Set(["OK", "UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED", "CANCELED"]);
  const bad = calls.filter((c) => !allowed.has(c.code) && !(c.code === "NOT_FOUND" && c.op !== "create"));
  if (bad.length === 0) return [];
  const kinds = new Map<string, CallRecord>();
  for (const c of bad) kinds.set(`${c.op} ${c.code}`, kinds.get(`${c.op} ${c.code}`) ?? c);
  return [
    `${bad.length} calls failed with a code that is not "try again": ${list([...kinds].map(([k, c]) => `${k} (${bad.filter((b) => `${b.op} ${b.code}` === k).length}×, e.g. "${c.message ?? ""}")`))}`,
  ];
}

export async function openTasks(db: pg.Pool): Promise<Array<Record<string, unknown>>> {
  return (
    await db.query(
      `select id, kind, deployment_name as name, status, phase, attempt, enqueue_count, lease_owner,
            round(extract(epoch from now() - create_time))::int as age_s
       from tasks where status = any($1) order by create_time`,
      [OPEN],
    )
  ).rows;
}

/** Waits (polling, up to boundMs) until no task is open; the ones still open then are the violation. */
export async function tasksReachTerminal(db: pg.Pool, boundMs: number, giveUp: () => string | undefined): Promise<string[]> {
  const end = Date.now() + boundMs;
  let open: Array<Record<string, unknown>> = [];
  for (;;) {
    try {
      open = await openTasks(db);
      if (open.length === 0) return [];
    } catch (err) {
      if (Date.now() > end) return [`cannot read tasks: ${(err as Error).message}`];
    }
    const why = giveUp();
    if (Date.now() > end || why) {
      return [`${open.length} tasks still open ${why ? `(not waiting: ${why})` : `after ${Math.round(boundMs / 1000)} s`}: ${list(open, 6)}`];
    }
    await sleep(250);
  }
}

/** No effect applied twice: one revision and one deploy task per deployment, at most one delete task, gapless event sequences, no late write. */
export async function effectsOnce(db: pg.Pool): Promise<string[]> {
  const out: string[] = [];
  const revisions = (
    await db.query(
      `select d.name, count(r.*)::int as revisions from deployments d left join revisions r on r.deployment_uid = d.uid
      group by d.uid, d.name having count(r.*) <> 1`,
    )
  ).rows;
  if (revisions.length > 0) out.push(`deployments without exactly one revision: ${list(revisions)}`);
  const tasks = (
    await db.query(
      `select deployment_name as name, kind, count(*)::int as n from tasks group by deployment_uid, deployment_name, kind
      having count(*) > 1`,
    )
  ).rows;
  if (tasks.length > 0) out.push(`deployments with more than one task of a kind: ${list(tasks)}`);
  const gaps = (
    await db.query(
      `select d.name, d.sequence, count(e.*)::int as events, min(e.sequence) as first, max(e.sequence) as last
       from deployments d left join events e on e.deployment_uid = d.uid
      group by d.uid, d.name, d.sequence
     having count(e.*) <> d.sequence or min(e.sequence) <> 1 or max(e.sequence) <> d.sequence`,
    )
  ).rows;
  if (gaps.length > 0) out.push(`deployments whose events are not exactly 1..sequence: ${list(gaps)}`);
  // Fencing: per task, in sequence order, the attempt never goes back and
  // nothing follows the event that ended it.
  const late = (
    await db.query(
      `with x as (
       select d.name, e.sequence, e.type, e.task->>'id' as task_id, (e.task->>'attempt')::int as attempt, e.task->>'status' as status,
              max((e.task->>'attempt')::int) over earlier as max_before,
              bool_or(e.task->>'status' in ('COMPLETED', 'FAILED', 'CANCELLED')) over earlier as ended_before
         from events e join deployments d on d.uid = e.deployment_uid
        where e.task is not null
       window earlier as (partition by e.task->>'id' order by e.sequence rows between unbounded preceding and 1 preceding))
     select name, sequence, type, task_id, attempt, status, max_before, ended_before from x
      where attempt < max_before or ended_before limit 20`,
    )
  ).rows;
  if (late.length > 0) out.push(`writes of a stale attempt, or after a task ended (fencing): ${list(late)}`);
  return out;
}

/** Every watch saw each sequence once, in order, as Postgres has it, up to the DELETED event. */
export async function watchesGapless(db: pg.Pool, events: readonly EventRecord[], summary: DrainSummary | undefined): Promise<string[]> {
  const out: string[] = [];
  const byWatch = new Map<number, EventRecord[]>();
  for (const e of events) byWatch.set(e.watch, [...(byWatch.get(e.watch) ?? []), e]);
  const uids = [...new Set(events.map((e) => e.uid))];
  const stored = (
    await db.query<{ deployment_uid: string; sequence: number; type: string }>(
      "select deployment_uid, sequence, type from events where deployment_uid = any($1)",
      [uids],
    )
  ).rows;
  const typeOf = new Map(stored.map((r) => [`${r.deployment_uid}#${r.sequence}`, r.type]));
  const broken: string[] = [];
  for (const [id, evs] of byWatch) {
    for (let i = 0; i < evs.length; i++) {
      const e = evs[i]!;
      const prev = evs[i - 1];
      if (prev && e.sequence !== prev.sequence + 1) {
        broken.push(`watch ${id} (${e.name}): ${e.sequence} after ${prev.sequence}`);
        break;
      }
      if (e.type === "SNAPSHOT" ? i > 0 : typeOf.get(`${e.uid}#${e.sequence}`) !== e.type) {
        broken.push(`watch ${id} (${e.name}): event ${e.sequence} is ${e.type}, Postgres has ${typeOf.get(`${e.uid}#${e.sequence}`) ?? "none"}`);
        break;
      }
    }
  }
  if (broken.length > 0) out.push(`watches with a gap, a duplicate or a wrong event: ${list(broken)}`);
  if (summary && summary.openWatches.length > 0) out.push(`watches that never saw their DELETED event: ${list(summary.openWatches)}`);
  return out;
}

/** Every process of the system still runs, except those the case killed on purpose. */
export function nothingDied(roles: readonly Role[]): string[] {
  return roles.filter((r) => !r.alive() && !r.killedOnPurpose).map((r) => `${r.name} died (${JSON.stringify(r.exit())}): ${lastWords(r)}`);
}

/** What a process said as it died: the crash report's telling lines, else its last error. */
function lastWords(r: Role): string {
  const raw = r
    .tail(6000)
    .split("\n")
    .filter((l) => l.trim() !== "" && !l.startsWith("{"));
  const telling = raw.filter((l) => /Unhandled|Emitted 'error' event|^\S*Error\b|^error:|\bcode: '|message: '|throw /.test(l.trim()));
  const text = (telling.length > 0 ? telling : raw.slice(-6))
    .map((l) => l.trim())
    .slice(0, 8)
    .join(" | ");
  const last = r.lines
    .filter((l) => l["level"] === "error")
    .slice(-2)
    .map((l) => JSON.stringify(l))
    .join(" | ");
  return (text || last || r.tail(600)).slice(0, 1200);
}

/**
 * Once everything is deleted: every deployment DELETED, nothing left in the
 * outbox, and — within boundMs, stopping takes a moment — no model server and
 * no partial download.
 */
export async function nothingLeftBehind(db: pg.Pool, dataDir: string, boundMs: number): Promise<string[]> {
  const out: string[] = [];
  const live = (await db.query("select name, state from deployments where state <> 'DELETED'")).rows;
  if (live.length > 0) out.push(`${live.length} deployments not DELETED: ${list(live)}`);
  const outbox = (await db.query<{ n: number }>("select count(*)::int as n from outbox")).rows[0]!.n;
  if (outbox > 0) out.push(`${outbox} outbox rows never published`);
  // With deployments left, their servers rightly run: no point waiting.
  const end = Date.now() + (live.length === 0 ? boundMs : 0);
  let servers = modelServers(dataDir);
  let parts = partialDownloads(dataDir);
  while ((servers.length > 0 || parts.length > 0) && Date.now() < end) {
    await sleep(200);
    servers = modelServers(dataDir);
    parts = partialDownloads(dataDir);
  }
  if (servers.length > 0) out.push(`model servers still running: ${list(servers)}`);
  if (parts.length > 0) out.push(`temporary files left in the weights cache: ${list(parts.map((p) => `${p.file} (${p.bytes} bytes)`))}`);
  return out;
}

/** More model servers at once for a revision than it has replicas (every load deployment has at most one). */
export function noDuplicateReplicas(most: Map<string, number>, replicasOf: (key: string) => number = () => 1): string[] {
  const dup = [...most].filter(([key, n]) => n > replicasOf(key));
  return dup.length > 0 ? [`revisions that ran more model servers at once than replicas: ${list(dup.map(([k, n]) => `${k}: ${n}`))}`] : [];
}
