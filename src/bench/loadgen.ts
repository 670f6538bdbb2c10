// Runs a job of the load generator's bench mode (src/loadgen/bench.ts) in
// its own process and returns its result.
import path from "node:path";
import type { UnaryJob, UnaryResult, WatchJob, WatchOpen, WatchResult } from "../loadgen/bench-jobs.js";
import { startProcess, type Proc } from "./processes.js";
import { DIST } from "./services.js";

const LOADGEN = path.join(DIST, "loadgen/bench.js");

export async function runUnaryLoad(job: Omit<UnaryJob, "kind">): Promise<UnaryResult> {
  const proc = startProcess("loadgen", process.execPath, [LOADGEN, JSON.stringify({ kind: "unary", ...job })]);
  try {
    const { result } = await proc.json<{ result: UnaryResult }>((o) => "result" in o, job.durationMs + job.warmupMs + 120_000);
    return result;
  } finally {
    await proc.stop();
  }
}

export interface WatchLoad {
  proc: Proc;
  opened: Promise<WatchOpen>;
  result: Promise<WatchResult>;
}

/** Opens the streams; `opened` resolves once all have their snapshot, `result` once the next event reached them. */
export function startWatchLoad(job: Omit<WatchJob, "kind">): WatchLoad {
  const proc = startProcess("loadgen-watch", process.execPath, [LOADGEN, JSON.stringify({ kind: "watch", ...job })]);
  const opened = proc.json<WatchOpen>((o) => "open" in o, 300_000);
  const result = proc.json<{ result: WatchResult }>((o) => "result" in o, 300_000 + job.timeoutMs).then((r) => r.result);
  // Whoever awaits them sees a failure; one not awaited (after an earlier error) must not crash the bench.
  opened.catch(() => {});
  result.catch(() => {});
  return { proc, opened, result };
}
