// Flags shared by the client commands and what they build: a model source,
// resources and scaling, each from the flags given over a base (the
// deployment's current values for update and scale, defaults for deploy).
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type { ModelSource, Resources, Scaling } from "../gen/modeldeploy/v1/resources_pb.js";

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
export const scalingOptions = { replicas: text, min: text, max: text } as const;

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
  if (cpu !== undefined && !Number.isFinite(Number(cpu))) throw new Error(`--cpu takes a number of cores, got "${cpu}"`);
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

/** --replicas N sets both bounds; --min / --max each replace one. */
export function scalingFrom(values: Flags, base: Scaling): Scaling {
  const replicas = str(values, "replicas");
  if (replicas !== undefined) {
    const n = int(replicas, "--replicas");
    return { ...base, minReplicas: n, maxReplicas: n };
  }
  const min = str(values, "min");
  const max = str(values, "max");
  return {
    ...base,
    minReplicas: min !== undefined ? int(min, "--min") : base.minReplicas,
    maxReplicas: max !== undefined ? int(max, "--max") : base.maxReplicas,
  };
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
      if (typeof v !== "number" || v === 0) throw new Error(`${flag}: unknown value "${s}"; valid values: ${valid()}`);
      return v;
    });
}

export function int(v: string, flag: string): number {
  const n = Number(v);
  if (v.trim() === "" || !Number.isInteger(n)) throw new Error(`${flag} takes a whole number, got "${v}"`);
  return n;
}

export function need(v: string | undefined, what: string): string {
  if (!v) throw new Error(`missing ${what}`);
  return v;
}
