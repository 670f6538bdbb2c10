// Flags shared by the client commands and what they build: a model source,
// resources and scaling, each from the flags given over a base (the
// deployment's current values for update and scale, defaults for deploy).
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { RolloutStrategy, type ModelSource, type Resources, type RolloutSchema, type Scaling } from "../gen/modeldeploy/v1/resources_pb.js";

import type { Flags } from "./client-command.js";

const text = { type: "string" } as const;

// --token-file: a token on the command line would show in `ps` and shell history.
export const modelOptions = { model: text, uri: text, sha256: text, revision: text, task: text, runtime: text, "token-file": text } as const;
export const resourceOptions = {
  threads: text,
  "max-batch-size": text,
  cpu: text,
  memory: text,
  "accelerator-type": text,
  "accelerator-count": text,
} as const;
export const scalingOptions = {
  replicas: text,
  min: text,
  max: text,
  "target-in-flight": text,
  "scale-down-delay": text,
  "wake-timeout": text,
} as const;
export const rolloutOptions = { canary: text, "max-error-rate": text, "min-requests": text } as const;

/** A flag given wrong: exits 2 with the usage hint, like yargs' own usage errors, before any call. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

const given = (values: Flags, options: object) => Object.keys(options).some((k) => values[k] !== undefined);
export const givesModel = (values: Flags) => given(values, modelOptions);
export const givesResources = (values: Flags) => given(values, resourceOptions);
export const givesScaling = (values: Flags) => given(values, scalingOptions);

/** A flag's value; given twice, the last one. */
export function str(values: Flags, key: string): string | undefined {
  const v = values[key];
  if (Array.isArray(v)) return v.at(-1);
  return typeof v === "string" ? v : undefined;
}

/** A repeatable flag's values. */
export function list(values: Flags, key: string): string[] {
  const v = values[key];
  return Array.isArray(v) ? v : typeof v === "string" ? [v] : [];
}

/** A local path becomes a file:// URL; anything else is sent as it is. */
function weightsUri(uri: string): string {
  return uri.startsWith("/") || uri.startsWith(".") ? pathToFileURL(resolve(uri)).href : uri;
}

export function modelFrom(values: Flags, base: ModelSource): ModelSource {
  const uri = str(values, "uri");
  const tokenFile = str(values, "token-file");
  // Tokens are write-only (responses carry only tokenSet), and a model given
  // replaces the old one whole: a model with a token needs it given again.
  if (base.tokenSet && tokenFile === undefined) {
    throw new Error("this deployment's model has an access token, which is never shown: give it again with --token-file PATH (or the new model's token)");
  }
  return {
    ...base,
    name: str(values, "model") ?? base.name,
    uri: uri !== undefined ? weightsUri(uri) : base.uri,
    // The old checksum describes the old weights: new weights drop it unless given.
    sha256: str(values, "sha256") ?? (uri !== undefined ? "" : base.sha256),
    revision: str(values, "revision") ?? base.revision,
    task: str(values, "task") ?? base.task,
    runtime: str(values, "runtime") ?? base.runtime,
    token: tokenFile === undefined ? "" : readFileSync(tokenFile, "utf8").trim(),
    tokenSet: false,
  };
}

export function resourcesFrom(values: Flags, base: Resources): Resources {
  const n = (key: string, fallback: number) => {
    const v = str(values, key);
    return v === undefined ? fallback : int(v, `--${key}`);
  };
  const cpu = str(values, "cpu");
  if (cpu !== undefined && !Number.isFinite(Number(cpu))) throw new UsageError(`--cpu takes a number of cores, got "${cpu}"`);
  return {
    ...base,
    threadCount: n("threads", base.threadCount),
    maxBatchSize: n("max-batch-size", base.maxBatchSize),
    cpu: cpu !== undefined ? Number(cpu) : base.cpu,
    memory: str(values, "memory") ?? base.memory,
    acceleratorType: str(values, "accelerator-type") ?? base.acceleratorType,
    acceleratorCount: n("accelerator-count", base.acceleratorCount),
  };
}

/**
 * --replicas N sets both bounds; --min / --max each replace one; the
 * autoscaler's flags each replace their field. What is not given stays as in
 * `base` (the API replaces a scaling whole, and 0 there means the default).
 */
export function scalingFrom(values: Flags, base: Scaling): Scaling {
  const n = (key: string, fallback: number) => {
    const v = str(values, key);
    return v === undefined ? fallback : int(v, `--${key}`);
  };
  const autoscaler = {
    targetInFlight: n("target-in-flight", base.targetInFlight),
    scaleDownDelaySeconds: n("scale-down-delay", base.scaleDownDelaySeconds),
    wakeTimeoutSeconds: n("wake-timeout", base.wakeTimeoutSeconds),
  };
  const replicas = str(values, "replicas");
  if (replicas !== undefined) {
    const r = int(replicas, "--replicas");
    return { ...base, ...autoscaler, minReplicas: r, maxReplicas: r };
  }
  return { ...base, ...autoscaler, minReplicas: n("min", base.minReplicas), maxReplicas: n("max", base.maxReplicas) };
}

export type RolloutInit = MessageInitShape<typeof RolloutSchema>;

/**
 * --canary 10:30,50:30 (percent:pauseSeconds per step), with --max-error-rate
 * and --min-requests; undefined when none is given (the API's all-at-once).
 * Checks the syntax only: ranges and order are the API's to judge.
 */
export function rolloutFrom(values: Flags): RolloutInit | undefined {
  const canary = str(values, "canary");
  const rate = str(values, "max-error-rate");
  const min = str(values, "min-requests");
  if (canary === undefined) {
    if (rate !== undefined || min !== undefined) throw new UsageError("--max-error-rate and --min-requests judge canary steps: give --canary too");
    return undefined;
  }
  const rollout: RolloutInit = { strategy: RolloutStrategy.CANARY, steps: canarySteps(canary) };
  if (rate !== undefined) {
    const r = Number(rate);
    if (rate.trim() === "" || !Number.isFinite(r)) throw new UsageError(`--max-error-rate takes a fraction of requests, e.g. 0.05, got "${rate}"`);
    rollout.maxErrorRate = r;
  }
  if (min !== undefined) rollout.minRequests = int(min, "--min-requests");
  return rollout;
}

const STEP = /^(\d+)%?:(\d+)s?$/;

/** "10:30,50:30" → [{percent 10, pauseSeconds 30}, {percent 50, pauseSeconds 30}]. */
export function canarySteps(raw: string): { percent: number; pauseSeconds: number }[] {
  const items = raw.split(",").map((s) => s.trim());
  return items.map((item) => {
    const m = STEP.exec(item);
    if (!m) {
      throw new UsageError(
        `--canary takes steps PERCENT:PAUSE_SECONDS separated by commas, e.g. 10:30,50:30; ${item === "" ? "a step is empty" : `got "${item}"`}`,
      );
    }
    return { percent: Number(m[1]), pauseSeconds: Number(m[2]) };
  });
}

/** Seconds; 0 (absent) means the server's default. */
export function progressDeadline(values: Flags): number {
  const v = str(values, "progress-deadline");
  return v === undefined ? 0 : int(v, "--progress-deadline");
}

/** "a,b" and repeated flags alike; each value by its enum name, with or without the prefix, in any case. */
export function enumValues<V extends number>(e: Record<string, string | V>, prefix: string, flag: string, raw: string[] | undefined): V[] {
  const valid = () =>
    Object.entries(e)
      .filter(([k, v]) => typeof v === "number" && v !== 0 && Number.isNaN(Number(k)))
      .map(([k]) => k.toLowerCase())
      .join(", ");
  return (raw ?? [])
    .flatMap((s) => s.split(","))
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => {
      const upper = s.toUpperCase();
      const v = e[upper.startsWith(prefix) ? upper.slice(prefix.length) : upper];
      if (typeof v !== "number" || v === 0) throw new UsageError(`${flag}: unknown value "${s}"; valid values: ${valid()}`);
      return v;
    });
}

export function int(v: string, flag: string): number {
  const n = Number(v);
  if (v.trim() === "" || !Number.isInteger(n)) throw new UsageError(`${flag} takes a whole number, got "${v}"`);
  return n;
}

export function need(v: string | undefined, what: string): string {
  if (!v) throw new Error(`missing ${what}`);
  return v;
}
