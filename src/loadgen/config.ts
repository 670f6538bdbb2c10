// The load generator's settings: one JSON object, the first argument.
import type { TargetMode } from "./api.js";

export interface LoadConfig {
  /** gRPC addresses (host:port) of the API processes. */
  targets: string[];
  /** How calls spread over the targets (api.ts); default round-robin. */
  targetMode?: TargetMode;
  apiKey: string;
  /** JSONL file the records are appended to. */
  out: string;
  /** Unique per run: deployment suffixes and request ids start with it. */
  runId: string;
  createsPerSec: number;
  /** Every n-th create asks for one replica (a model-server process); the rest for none. 0: never. */
  replicaEvery: number;
  /** A created deployment is deleted this long after its create returned. */
  deleteAfterMs: number;
  /** Every n-th deployment created OK is watched until its DELETED event. 0: none. */
  watchEvery: number;
  /** Cut one open watch stream at this interval and resume it (afterSequence). 0: never. */
  dropWatchEveryMs: number;
  /** GetDeployment calls per second on live deployments. */
  readsPerSec: number;
  model: { name: string; uri: string; sha256: string };
  /** Deadline of every unary call. */
  callTimeoutMs: number;
  /** Creates in flight beyond this are skipped (not queued), so an outage does not pile up work. */
  maxInFlight: number;
  /** Tries of one create request id (same id: a retry is idempotent). */
  createTries: number;
}

export function parseLoadConfig(text: string | undefined): LoadConfig {
  if (!text) throw new Error("usage: loadgen '<json config>'");
  const c = JSON.parse(text) as Partial<LoadConfig>;
  const problems: string[] = [];
  const need = (ok: boolean, what: string) => {
    if (!ok) problems.push(what);
  };
  need(Array.isArray(c.targets) && c.targets.length > 0 && c.targets.every((t) => typeof t === "string"), "targets: host:port strings");
  need(typeof c.apiKey === "string" && c.apiKey !== "", "apiKey");
  need(typeof c.out === "string" && c.out !== "", "out");
  need(typeof c.runId === "string" && /^[a-z0-9]{1,20}$/.test(c.runId), "runId: 1-20 lowercase letters and digits");
  need(typeof c.model?.uri === "string" && typeof c.model.name === "string", "model: {name, uri, sha256}");
  for (const key of [
    "createsPerSec",
    "replicaEvery",
    "deleteAfterMs",
    "watchEvery",
    "dropWatchEveryMs",
    "readsPerSec",
    "callTimeoutMs",
    "maxInFlight",
    "createTries",
  ] as const) {
    need(typeof c[key] === "number" && Number.isFinite(c[key]) && c[key] >= 0, `${key}: a number ≥ 0`);
  }
  need(c.targetMode === undefined || c.targetMode === "round-robin" || c.targetMode === "failover", "targetMode: round-robin or failover");
  if (problems.length > 0) throw new Error(`invalid load config: ${problems.join("; ")}`);
  return c as LoadConfig;
}
