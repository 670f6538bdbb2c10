// CPU time by role over a stretch of the bench, read from /proc: where a
// figure's cores went (the API, workers, a bare baseline server, Postgres,
// NATS, the load process).
// A process that ended in between is still counted: its time moved to its
// parent's cutime/cstime (a Postgres backend's to the postmaster's, a load
// generator's or a baseline's to the bench's own).
import { readdirSync, readFileSync } from "node:fs";

export const ROLES = ["api", "worker", "bare", "postgres", "nats", "load"] as const;
export type Role = (typeof ROLES)[number];
/** CPU seconds per role. */
export type CpuUse = Record<Role, number>;

const TICKS_PER_SECOND = 100;

interface Stat {
  comm: string;
  ppid: number;
  /** utime + stime. */
  own: number;
  /** cutime + cstime: children that ended and were reaped. */
  children: number;
}

function readStat(pid: string): Stat | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    const close = s.lastIndexOf(")");
    const f = s.slice(close + 2).split(" ");
    return { comm: s.slice(s.indexOf("(") + 1, close), ppid: Number(f[1]), own: Number(f[11]) + Number(f[12]), children: Number(f[13]) + Number(f[14]) };
  } catch {
    return undefined; // gone meanwhile
  }
}

function cmdline(pid: string): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8");
  } catch {
    return "";
  }
}

/** CPU used so far by each role; undefined where /proc is not there to read. */
export function cpuNow(): CpuUse | undefined {
  let pids: string[];
  try {
    pids = readdirSync("/proc").filter((d) => /^\d+$/.test(d));
  } catch {
    return undefined;
  }
  const use: CpuUse = { api: 0, worker: 0, bare: 0, postgres: 0, nats: 0, load: 0 };
  const self = readStat(String(process.pid));
  if (self) use.load += self.children;
  for (const pid of pids) {
    const st = readStat(pid);
    if (!st) continue;
    if (st.comm === "postgres") {
      // The postmaster (whose parent is no postgres) also holds its ended backends' time.
      const parent = readStat(String(st.ppid));
      use.postgres += st.own + (parent?.comm === "postgres" ? 0 : st.children);
    } else if (st.comm === "nats-server") {
      use.nats += st.own;
    } else if (st.ppid === process.pid) {
      const cmd = cmdline(pid);
      if (cmd.includes("\0api")) use.api += st.own;
      else if (cmd.includes("\0worker")) use.worker += st.own;
      else if (cmd.includes("/bench/baselines/")) use.bare += st.own;
      else use.load += st.own;
    }
  }
  for (const r of ROLES) use[r] /= TICKS_PER_SECOND;
  return use;
}

export function cpuSince(start: CpuUse | undefined): CpuUse | undefined {
  const now = cpuNow();
  if (!start || !now) return undefined;
  const d = { ...now };
  for (const r of ROLES) d[r] = Math.max(now[r] - start[r], 0);
  return d;
}

export function addCpu(a: CpuUse | undefined, b: CpuUse | undefined): CpuUse | undefined {
  if (!a || !b) return a ?? b;
  const s = { ...a };
  for (const r of ROLES) s[r] += b[r];
  return s;
}

const LABELS: Record<Role, string> = { api: "API", worker: "worker", bare: "bare server", postgres: "Postgres", nats: "NATS", load: "load" };

/** Milliseconds of CPU per operation by role, the roles that used any, e.g. "API 0.45 + Postgres 0.30 = 0.75 ms". */
export function perOperation(use: CpuUse | undefined, ops: number, names: Partial<Record<Role, string>> = {}): string {
  if (!use || !(ops > 0)) return "";
  // Roles under 5 µs per operation (NATS beside a read, an idle worker) are left out.
  const parts = ROLES.filter((r) => (use[r] * 1000) / ops >= 0.005).map((r) => `${names[r] ?? LABELS[r]} ${((use[r] * 1000) / ops).toFixed(2)}`);
  const total = ROLES.reduce((n, r) => n + use[r], 0);
  return `${parts.join(" + ")} = ${((total * 1000) / ops).toFixed(2)} ms`;
}

/**
 * A sample's operations over its warm-up and its measured time, from the
 * count measured (the CPU is read over both).
 */
export const withWarmup = (measured: number, o: { unaryMs: number; warmupMs: number }): number => (measured * (o.unaryMs + o.warmupMs)) / o.unaryMs;

/** CPU and operations summed over a figure's samples. */
export interface CpuTally {
  use: CpuUse | undefined;
  ops: number;
}

export const newTally = (): CpuTally => ({ use: undefined, ops: 0 });

/**
 * Runs one sample and adds its CPU and its operations to the tally; `idle`:
 * roles left out (processes that only idle beside this sample).
 */
export async function tallied<T>(tally: CpuTally, run: () => Promise<T>, ops: (r: T) => number, idle: readonly Role[] = []): Promise<T> {
  const start = cpuNow();
  const r = await run();
  const used = cpuSince(start);
  if (used) for (const role of idle) used[role] = 0;
  tally.use = addCpu(tally.use, used);
  tally.ops += ops(r);
  return r;
}
