// Lands a kill in a chosen phase of a chosen deployment's task: a trigger on
// tasks makes any update of that task *out of* the phase wait on an advisory
// lock the test holds. The worker has committed the phase and is blocked on
// its next write; kill it there, then open the gate. (A backend whose client
// died leaves at once: client_connection_check_interval, see servers.ts.)
import pg from "pg";
import { sleep } from "./wait.js";

const KEY = 4242;

const INSTALL = `
create table if not exists fault_gate (deployment_name text not null, phase text not null);
create or replace function fault_gate_wait() returns trigger language plpgsql as $$
begin
  if exists (select 1 from fault_gate g where g.deployment_name = old.deployment_name and g.phase = old.phase) then
    perform pg_advisory_xact_lock_shared(${KEY});
  end if;
  return new;
end $$;
drop trigger if exists fault_gate on tasks;
create trigger fault_gate before update on tasks for each row execute function fault_gate_wait();`;

export interface GatedTask {
  id: string;
  phase: string;
  attempt: number;
  /** pid of the worker holding it (from its lease owner, host-pid-suffix). */
  workerPid: number;
}

export interface PhaseGate {
  /** Resolves once the task is in the phase and its worker waits at the gate. */
  reached(boundMs: number): Promise<GatedTask>;
  /** The task as it is now (after the kill: still in the phase, same attempt). */
  task(): Promise<GatedTask | undefined>;
  /** Backends waiting at the gate. */
  waiting(): Promise<number>;
  open(): Promise<void>;
}

export async function closeGate(url: string, deploymentName: string, phase: string): Promise<PhaseGate> {
  const holder = new pg.Client({ connectionString: url });
  holder.on("error", () => {});
  await holder.connect();
  await holder.query(INSTALL);
  await holder.query("select pg_advisory_lock($1)", [KEY]);
  await holder.query("insert into fault_gate values ($1, $2)", [deploymentName, phase]);
  const task = async (): Promise<GatedTask | undefined> => {
    const row = (
      await holder.query<{ id: string; phase: string; attempt: number; lease_owner: string | null }>(
        "select id, phase, attempt, lease_owner from tasks where deployment_name = $1 and kind = 'DEPLOY'",
        [deploymentName],
      )
    ).rows[0];
    if (!row) return undefined;
    const pid = /-(\d+)-[^-]+$/.exec(row.lease_owner ?? "")?.[1];
    return { id: row.id, phase: row.phase, attempt: row.attempt, workerPid: Number(pid ?? 0) };
  };
  const waiting = async () =>
    (await holder.query<{ n: number }>("select count(*)::int as n from pg_locks where locktype = 'advisory' and objid = $1 and not granted", [KEY])).rows[0]!.n;
  let opened = false;
  return {
    async reached(boundMs) {
      const end = Date.now() + boundMs;
      for (;;) {
        const t = await task();
        if (t && t.phase === phase && (await waiting()) > 0) return t;
        if (Date.now() > end) throw new Error(`the task of ${deploymentName} never waited at the gate in ${phase} (now ${JSON.stringify(t)})`);
        await sleep(20);
      }
    },
    task,
    waiting,
    async open() {
      if (opened) return;
      opened = true;
      await holder.query("delete from fault_gate").catch(() => {});
      await holder.query("select pg_advisory_unlock_all()").catch(() => {});
      await holder.end().catch(() => {});
    },
  };
}
