// The load generator (src/loadgen, compiled to dist/loadgen) in its own
// process, and what it recorded.
import { readFileSync } from "node:fs";
import path from "node:path";
import { ROOT } from "../../helpers/system.js";
import type { LoadConfig } from "../../../src/loadgen/config.js";
import type { CallRecord, DrainSummary, EventRecord, LoadRecord, WatchRecord } from "../../../src/loadgen/records.js";
import { killProcessGroup, spawnGroup } from "./process-groups.js";
import type { FaultSystem } from "./system.js";

const MAIN = path.join(ROOT, "dist/loadgen/main.js");

export interface Load {
  readonly file: string;
  readonly config: LoadConfig;
  records(): LoadRecord[];
  calls(): CallRecord[];
  events(): EventRecord[];
  watchRecords(): WatchRecord[];
  alive(): boolean;
  /** Stop creating, delete what it created, wait for its watches; at most ms. */
  drain(ms: number): Promise<DrainSummary>;
  kill(): void;
  stderr(): string;
}

let runs = 0;

/** Steady churn: mostly 0-replica deployments (no process), every 10th with one replica of the sample model. */
export function defaultLoad(sys: FaultSystem): Omit<LoadConfig, "out" | "runId"> {
  return {
    targets: sys.grpcTargets(),
    apiKey: sys.apiKey,
    createsPerSec: 6,
    replicaEvery: 10,
    deleteAfterMs: 1500,
    watchEvery: 4,
    dropWatchEveryMs: 0,
    readsPerSec: 3,
    model: { name: "faults/tiny", uri: sys.model.uri, sha256: sys.model.sha256 },
    callTimeoutMs: 8000,
    maxInFlight: 64,
    createTries: 4,
  };
}

export async function startLoad(sys: FaultSystem, overrides: Partial<LoadConfig> = {}): Promise<Load> {
  const runId = `r${++runs}${Math.random().toString(36).slice(2, 7)}`;
  const file = path.join(sys.dataDir, `load-${runId}.jsonl`);
  const config: LoadConfig = { ...defaultLoad(sys), ...overrides, out: file, runId };
  const child = spawnGroup(process.execPath, [MAIN, JSON.stringify(config)], { stdio: ["pipe", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  let exited = false;
  child.once("exit", () => (exited = true));
  child.stderr!.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-20_000)));
  const lineWaiters: Array<(line: Record<string, unknown>) => void> = [];
  child.stdout!.on("data", (d: Buffer) => {
    stdout += d.toString();
    let nl;
    while ((nl = stdout.indexOf("\n")) >= 0) {
      const line = JSON.parse(stdout.slice(0, nl)) as Record<string, unknown>;
      stdout = stdout.slice(nl + 1);
      for (const w of lineWaiters.splice(0)) w(line);
    }
  });
  const nextLine = () =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      lineWaiters.push(resolve);
      child.once("exit", (code) => reject(new Error(`load generator exited (${code}):\n${stderr}`)));
    });
  await nextLine();
  const records = (): LoadRecord[] => {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch {
      return [];
    }
    return text
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as LoadRecord);
  };
  return {
    file,
    config,
    records,
    calls: () => records().filter((r): r is CallRecord => r.kind === "call"),
    events: () => records().filter((r): r is EventRecord => r.kind === "event"),
    watchRecords: () => records().filter((r): r is WatchRecord => r.kind === "watch"),
    alive: () => !exited,
    async drain(ms) {
      const summary = nextLine();
      child.stdin!.write(`drain ${ms}\n`);
      return (await summary) as unknown as DrainSummary;
    },
    kill: () => killProcessGroup(child.pid),
    stderr: () => stderr,
  };
}
