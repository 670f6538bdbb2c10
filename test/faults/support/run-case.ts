// One fault case: steady load, the fault, the load a while longer, then
// everything deleted and every invariant checked. Returns the violations (and
// a few figures), never throws for a broken invariant: a case reports all it
// found at once.
import type { LoadConfig } from "../../../src/loadgen/config.js";
import type { DrainSummary } from "../../../src/loadgen/records.js";
import { deleteTheRest } from "./delete-the-rest.js";
import {
  callsFailCleanly,
  callsHaveTasks,
  effectsOnce,
  nothingDied,
  nothingLeftBehind,
  noDuplicateReplicas,
  tasksReachTerminal,
  watchesGapless,
} from "./invariants.js";
import { startLoad, type Load } from "./load.js";
import { watchModelServers } from "./model-servers.js";
import { summarize } from "./summary.js";
import type { FaultSystem } from "./system.js";
import { sleep, until } from "./wait.js";

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

const apiAlive = (sys: FaultSystem) => sys.apis.some((a) => a.alive());
const workerAlive = (sys: FaultSystem) => sys.workers.some((w) => w.alive());
const createsOk = (load: Load, since: number) => load.calls().filter((c) => c.op === "create" && c.code === "OK" && c.t >= since).length;

/** Stops the load: it deletes what it created and waits for its watches, within a bound even if it hangs. */
async function drain(sys: FaultSystem, load: Load): Promise<DrainSummary> {
  const drainMs = apiAlive(sys) ? 15_000 : 3000;
  // Its deletes and watches end by the deadline; calls in flight by their own.
  const guard = drainMs + load.config.callTimeoutMs + 10_000;
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    load.drain(drainMs),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`did not finish draining within ${guard / 1000} s`)), guard);
    }),
  ]).finally(() => clearTimeout(timer));
}

async function checkAll(sys: FaultSystem, load: Load, summary: DrainSummary | undefined, most: Map<string, number>, o: CaseOptions): Promise<string[]> {
  const calls = load.calls();
  return [
    ...(await callsHaveTasks(sys.db, calls)),
    ...callsFailCleanly(calls),
    ...(await effectsOnce(sys.db)),
    ...(await watchesGapless(sys.db, load.events(), summary)),
    ...noDuplicateReplicas(most, o.replicasOf),
    ...(await nothingLeftBehind(sys.db, sys.dataDir, 15_000)),
    ...nothingDied(sys.roles()),
  ];
}

export async function runCase(sys: FaultSystem, o: CaseOptions): Promise<CaseReport> {
  const violations: string[] = [];
  const notes: string[] = [];
  const t0 = Date.now();
  const steps: string[] = [];
  const step = (what: string) => steps.push(`${what} ${((Date.now() - t0) / 1000).toFixed(1)}s`);
  const monitor = watchModelServers(sys.dataDir);
  const load = await startLoad(sys, o.load);
  try {
    if (!(await until(() => createsOk(load, 0) >= (o.warmupCreates ?? 6), 30_000))) {
      violations.push(`warm-up: only ${createsOk(load, 0)} creates succeeded before the fault`);
    }
    step("warm");
    try {
      await o.fault({ sys, load, violation: (t) => violations.push(t), note: (t) => notes.push(t) });
    } catch (err) {
      violations.push(`the fault step failed: ${(err as Error).stack ?? String(err)}`);
    }
    const faultEnd = Date.now();
    step("fault");
    // Survived means: serving again, by itself.
    const servingMs = o.servingWithinMs ?? 20_000;
    if (apiAlive(sys) && !(await until(() => createsOk(load, faultEnd) >= 5, servingMs, { stop: () => !apiAlive(sys) }))) {
      violations.push(`creates did not succeed again within ${servingMs / 1000} s after the fault (${createsOk(load, faultEnd)} OK since)`);
    }
    step("serving");
    await sleep(o.afterMs ?? 2000);

    const summary = await drain(sys, load).catch((err: unknown) => void violations.push(`load generator: ${(err as Error).message}`));
    step("drained");
    if (summary && summary.undeleted.length > 0) notes.push(`the load's deletes that never got an answer: ${summary.undeleted.length}`);
    if (apiAlive(sys)) violations.push(...(await deleteTheRest(sys, 20_000)));
    violations.push(...(await tasksReachTerminal(sys.db, o.terminalWithinMs ?? 30_000, () => (workerAlive(sys) ? undefined : "no worker left"))));
    step("terminal");
    violations.push(...(await checkAll(sys, load, summary ?? undefined, monitor.stop(), o)));
    step("checked");
    notes.push(`steps: ${steps.join(", ")}`, ...(await summarize(sys, load)));
    return { violations, notes };
  } finally {
    monitor.stop();
    load.kill();
  }
}
