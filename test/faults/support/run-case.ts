// One fault case: steady load, the fault, the load a while longer, then
// everything deleted and every invariant checked. Returns the violations (and
// a few figures), never throws for a broken invariant: a case reports all it
// found at once.
import { createApis, statusName } from "../../../src/loadgen/api.js";
import type { LoadConfig } from "../../../src/loadgen/config.js";
import type { DrainSummary } from "../../../src/loadgen/records.js";
import { callsFailCleanly, callsHaveTasks, effectsOnce, nothingDied, nothingLeftBehind, noDuplicateReplicas, tasksReachTerminal, watchesGapless } from "./invariants.js";
import { startLoad, type Load } from "./load.js";
import { watchModelServers } from "./model-servers.js";
import type { FaultSystem } from "./system.js";

export interface CaseContext {
  sys: FaultSystem;
  load: Load;
  /** A finding of the fault step itself (the fault could not be placed, a process did not recover, …). */
  violation(text: string): void;
  note(text: string): void;
}

export interface CaseOptions {
  load?: Partial<LoadConfig>;
  /** Creates that must succeed before the fault. */
  warmupCreates?: number;
  fault(ctx: CaseContext): Promise<void>;
  /** Load keeps running this long after the fault. */
  afterMs?: number;
  /** Every task must be terminal this long after the load is drained. */
  terminalWithinMs?: number;
  /** After the fault, creates must succeed again within this. */
  servingWithinMs?: number;
  /** Replicas a revision may run (the model-server count check); default 1. */
  replicasOf?: (key: string) => number;
}

export interface CaseReport {
  violations: string[];
  notes: string[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(check: () => boolean | Promise<boolean>, boundMs: number, stop: () => boolean = () => false): Promise<boolean> {
  const end = Date.now() + boundMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > end || stop()) return false;
    await sleep(100);
  }
}

const apiAlive = (sys: FaultSystem) => sys.apis.some((a) => a.alive());
const workerAlive = (sys: FaultSystem) => sys.workers.some((w) => w.alive());

/** Deletes (through a live API) every deployment that is neither DELETED nor being deleted. */
async function deleteTheRest(sys: FaultSystem, boundMs: number): Promise<string[]> {
  const targets = sys.apis.filter((a) => a.alive()).map((a) => String(a.ready["grpc"]));
  if (targets.length === 0) return ["no API process left to delete the remaining deployments"];
  const apis = createApis(targets, sys.apiKey);
  const end = Date.now() + boundMs;
  let left: string[] = [];
  while (Date.now() < end) {
    left = (await sys.db.query<{ name: string }>(
      `select d.name from deployments d where d.state <> 'DELETED'
          and not exists (select 1 from tasks t where t.deployment_uid = d.uid and t.kind = 'DELETE')`)).rows.map((r) => r.name);
    if (left.length === 0) return [];
    await Promise.all(left.map(async (name) => {
      try {
        await apis.next().deletions.deleteDeployment({ name, requestId: `sweep-${name}` }, { timeoutMs: 5000 });
      } catch (err) {
        if (statusName(err) === "NOT_FOUND") return;
      }
    }));
    await sleep(200);
  }
  return [`deployments the final sweep could not delete within ${boundMs / 1000} s: ${left.slice(0, 8).join(", ")}`];
}

/** The distinct errors (or warnings) the processes logged, with counts: what broke, in their words. */
function logged(sys: FaultSystem, level: "error" | "warn"): string {
  const counts = new Map<string, number>();
  for (const role of sys.roles()) {
    for (const line of role.lines) {
      if (line["level"] !== level) continue;
      const err = line["err"] as { message?: string } | undefined;
      const key = `${role.name}: ${String(line["msg"])}${err?.message ? ` (${err.message.slice(0, 120)})` : ""}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
  }
  return [...counts].sort((a, b) => b[1] - a[1]).slice(0, 6).map(([k, n]) => `${k} ×${n}`).join("; ");
}

export async function runCase(sys: FaultSystem, o: CaseOptions): Promise<CaseReport> {
  const violations: string[] = [];
  const notes: string[] = [];
  const t0 = Date.now();
  const steps: string[] = [];
  const step = (what: string) => steps.push(`${what} ${((Date.now() - t0) / 1000).toFixed(1)}s`);
  const monitor = watchModelServers(sys.dataDir);
  const load = await startLoad(sys, o.load);
  const ok = (since: number) => load.calls().filter((c) => c.op === "create" && c.code === "OK" && c.t >= since).length;
  try {
    const warm = await until(() => ok(0) >= (o.warmupCreates ?? 6), 30_000);
    if (!warm) violations.push(`warm-up: only ${ok(0)} creates succeeded before the fault`);

    step("warm");
    try {
      await o.fault({ sys, load, violation: (t) => violations.push(t), note: (t) => notes.push(t) });
    } catch (err) {
      violations.push(`the fault step failed: ${(err as Error).stack ?? String(err)}`);
    }
    const faultEnd = Date.now();
    step("fault");
    // Survived means: serving again, by itself.
    if (apiAlive(sys)) {
      const serving = await until(() => ok(faultEnd) >= 5, o.servingWithinMs ?? 20_000, () => !apiAlive(sys));
      if (!serving) violations.push(`creates did not succeed again within ${(o.servingWithinMs ?? 20_000) / 1000} s after the fault (${ok(faultEnd)} OK since)`);
    }
    step("serving");
    await sleep(o.afterMs ?? 2000);

    let summary: DrainSummary | undefined;
    try {
      const drainMs = apiAlive(sys) ? 20_000 : 3000;
      // Its deletes and watches end by the deadline; calls in flight by their own.
      const guard = drainMs + (load.config.callTimeoutMs ?? 0) + 10_000;
      let timer: NodeJS.Timeout | undefined;
      summary = await Promise.race([
        load.drain(drainMs),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`did not finish draining within ${guard / 1000} s`)), guard);
        }),
      ]).finally(() => clearTimeout(timer));
    } catch (err) {
      violations.push(`load generator: ${(err as Error).message}`);
    }
    step("drained");
    if (summary && summary.undeleted.length > 0) notes.push(`the load's deletes that never got an answer: ${summary.undeleted.length}`);
    if (apiAlive(sys)) violations.push(...(await deleteTheRest(sys, 20_000)));
    violations.push(...(await tasksReachTerminal(sys.db, o.terminalWithinMs ?? 45_000, () =>
      !workerAlive(sys) ? "no worker left" : undefined)));
    step("terminal");
    const calls = load.calls();
    violations.push(...(await callsHaveTasks(sys.db, calls)));
    violations.push(...callsFailCleanly(calls));
    violations.push(...(await effectsOnce(sys.db)));
    violations.push(...(await watchesGapless(sys.db, load.events(), summary)));
    violations.push(...noDuplicateReplicas(monitor.stop(), o.replicasOf));
    violations.push(...(await nothingLeftBehind(sys.db, sys.dataDir, 15_000)));
    violations.push(...nothingDied(sys.roles()));

    step("checked");
    notes.push(`steps: ${steps.join(", ")}`);
    const codes = new Map<string, number>();
    for (const c of calls) codes.set(`${c.op} ${c.code}`, (codes.get(`${c.op} ${c.code}`) ?? 0) + 1);
    const failed = (await sys.db.query<{ kind: string; reason: string; n: number }>(
      "select kind, failure->>'reason' as reason, count(*)::int as n from tasks where status = 'FAILED' group by 1, 2")).rows;
    notes.push(`tasks failed: ${failed.map((f) => `${f.kind} ${f.reason} ×${f.n}`).join(", ") || "none"}`);
    notes.push(`errors logged: ${logged(sys, "error") || "none"}`);
    notes.push(`warnings logged: ${logged(sys, "warn") || "none"}`);
    notes.push(`calls: ${[...codes].map(([k, n]) => `${k} ${n}`).join(", ")}; watch events: ${load.events().length}`);
    return { violations, notes };
  } finally {
    monitor.stop();
    load.kill();
  }
}
