// Checks a deployment spec before anything is queued. Pure: the catalog and
// limits come in as parameters.
import type { FieldProblem } from "./errors.js";
import { deploymentName, isDnsLabel, MAX_NAME_LENGTH } from "./names.js";
import { parseMemory } from "./quantities.js";
import { ALL_AT_ONCE, ROLLOUT_DEFAULTS, type ModelSource, type Resources, type Rollout, type Scaling } from "./types.js";

/** A spec problem: a FieldProblem (domain/errors.ts). */
export type Violation = FieldProblem;

export interface CatalogEntry {
  name: string;
  memory: string;
  maxPerReplica: number;
  total: number;
}

export interface ValidationLimits {
  maxReplicas: number;
  maxThreadCount: number;
  maxLabels: number;
}

export const DEFAULT_LIMITS: ValidationLimits = { maxReplicas: 1000, maxThreadCount: 256, maxLabels: 64 };

export interface DeploymentSpec {
  model: ModelSource;
  resources: Resources;
  scaling: Scaling;
}

/**
 * Model-server runtimes this release can start ("" means the default, onnx).
 * Names are identifiers, matched exactly (lowercase).
 */
export const SUPPORTED_RUNTIMES: readonly string[] = ["onnx"];

const SHA256 = /^[0-9a-f]{64}$/;
/** Longest model access token accepted (checked on the plaintext, before sealing). */
export const MAX_TOKEN_LENGTH = 4096;

/** Problems of a plaintext token, checked at the boundary before it is sealed (never quoted back). */
export function tokenProblems(token: string, field = "model"): Violation[] {
  const f = `${field}.token`;
  if (token.length > MAX_TOKEN_LENGTH) {
    return [{ field: f, description: `model token is longer than ${MAX_TOKEN_LENGTH} characters`, reason: "MODEL_SOURCE_INVALID", metadata: { field: f } }];
  }
  // A header value cannot carry control characters: fetch would refuse it at download time.
  if (/[^\x20-\x7e]/.test(token)) {
    return [
      { field: f, description: "model token must be printable ASCII (it is sent in an HTTP header)", reason: "MODEL_SOURCE_INVALID", metadata: { field: f } },
    ];
  }
  return [];
}
const LABEL_KEY = /^[a-z0-9]([a-z0-9._/-]{0,61}[a-z0-9])?$/;

export function validateModel(model: ModelSource, field = "model"): Violation[] {
  const out: Violation[] = [];
  const bad = (f: string, description: string) =>
    out.push({ field: `${field}.${f}`, description, reason: "MODEL_SOURCE_INVALID", metadata: { field: `${field}.${f}` } });
  if (!model.name.trim()) bad("name", 'model name is required, e.g. "google/vit-base-patch16-224"');
  else if (model.name.length > 256) bad("name", "model name is longer than 256 characters");
  if (!model.uri.trim()) {
    bad("uri", "model uri is required: file:///path/model.onnx or https://host/model.onnx");
  } else {
    let url: URL | undefined;
    try {
      url = new URL(model.uri);
    } catch {
      bad("uri", `"${model.uri}" is not a URI: use file:///path/model.onnx or https://host/model.onnx`);
    }
    if (url && !["file:", "http:", "https:"].includes(url.protocol)) {
      bad("uri", `scheme "${url.protocol.replace(":", "")}" is not supported: use file://, http:// or https://`);
    } else if (url && url.protocol === "file:" && (url.host !== "" || !url.pathname.startsWith("/"))) {
      bad("uri", "file URIs must be absolute and local: file:///path/model.onnx");
    }
  }
  // Only http(s) downloads send it (never file://): a token elsewhere is a mistake.
  if (model.tokenSealed && !/^https?:\/\//i.test(model.uri.trim())) {
    bad("token", "a model token is sent only on http:// or https:// downloads: remove the token or use an http(s) uri");
  }
  if (model.sha256 && !SHA256.test(model.sha256)) bad("sha256", "sha256 must be 64 lowercase hex characters");
  // Accepting an unknown runtime would start the default server anyway: refuse it.
  if (model.runtime && !SUPPORTED_RUNTIMES.includes(model.runtime)) {
    const shown = model.runtime.length > 64 ? `${model.runtime.slice(0, 64)}…` : model.runtime;
    out.push({
      field: `${field}.runtime`,
      description: `runtime "${shown}" is not supported: supported runtimes are ${SUPPORTED_RUNTIMES.map((r) => `"${r}"`).join(", ")} (empty means "${SUPPORTED_RUNTIMES[0]}")`,
      reason: "MODEL_SOURCE_INVALID",
      metadata: { field: `${field}.runtime`, requestedRuntime: model.runtime.slice(0, 64), supportedRuntimes: SUPPORTED_RUNTIMES.join(",") },
    });
  }
  return out;
}

export function validateResources(resources: Resources, catalog: readonly CatalogEntry[], limits: ValidationLimits): Violation[] {
  const out: Violation[] = [];
  if (resources.acceleratorType) {
    const entry = catalog.find((c) => c.name === resources.acceleratorType);
    if (!entry) {
      out.push({
        field: "resources.accelerator_type",
        description: `accelerator type "${resources.acceleratorType}" is not available here; available: ${catalog.map((c) => c.name).join(", ") || "none (CPU only)"}`,
        reason: "ACCELERATOR_TYPE_UNAVAILABLE",
        metadata: {
          requestedAcceleratorType: resources.acceleratorType,
          availableAcceleratorTypes: catalog.map((c) => c.name).join(","),
        },
      });
    } else if (resources.acceleratorCount < 1 || resources.acceleratorCount > entry.maxPerReplica) {
      out.push({
        field: "resources.accelerator_count",
        description: `accelerator count must be from 1 to ${entry.maxPerReplica} for ${entry.name}`,
        reason: "ACCELERATOR_COUNT_INVALID",
        metadata: { providedAcceleratorCount: String(resources.acceleratorCount), maxAcceleratorCount: String(entry.maxPerReplica) },
      });
    }
  } else if (resources.acceleratorCount !== 0) {
    out.push({
      field: "resources.accelerator_count",
      description: "accelerator count needs an accelerator type",
      reason: "ACCELERATOR_COUNT_INVALID",
      metadata: { providedAcceleratorCount: String(resources.acceleratorCount), maxAcceleratorCount: "0" },
    });
  }
  if (!Number.isFinite(resources.cpu) || resources.cpu < 0 || resources.cpu > 1024) {
    out.push({
      field: "resources.cpu",
      description: "cpu must be from 0 to 1024 cores (0 means unset)",
      reason: "CPU_INVALID",
      metadata: { providedCpu: String(resources.cpu) },
    });
  }
  if (resources.memory) {
    const bytes = parseMemory(resources.memory);
    if (bytes === undefined || bytes <= 0) {
      out.push({
        field: "resources.memory",
        description: `memory "${resources.memory}" is not a quantity like "256MiB" or "2Gi"`,
        reason: "MEMORY_INVALID",
        metadata: { providedMemory: resources.memory },
      });
    }
  }
  if (resources.threadCount < 0 || resources.threadCount > limits.maxThreadCount) {
    out.push({
      field: "resources.thread_count",
      description: `thread count must be from 0 to ${limits.maxThreadCount}`,
      reason: "THREAD_COUNT_EXCEEDED",
      metadata: { providedThreadCount: String(resources.threadCount), maxThreadCount: String(limits.maxThreadCount) },
    });
  }
  if (resources.maxBatchSize < 0) {
    out.push({
      field: "resources.max_batch_size",
      description: "max batch size must be 0 (unlimited) or more",
      reason: "MAX_BATCH_SIZE_INVALID",
      metadata: { providedMaxBatchSize: String(resources.maxBatchSize) },
    });
  }
  return out;
}

/** The autoscaler's settings: [least, most] each. */
const AUTOSCALER_RANGES = {
  targetInFlight: [1, 10_000],
  scaleDownDelaySeconds: [1, 86_400],
  wakeTimeoutSeconds: [1, 3_600],
} as const;

const snake = (camel: string) => camel.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

export function validateScaling(scaling: Scaling, limits: ValidationLimits): Violation[] {
  const out: Violation[] = [];
  for (const [key, [least, most]] of Object.entries(AUTOSCALER_RANGES)) {
    const value = scaling[key as keyof typeof AUTOSCALER_RANGES];
    if (!Number.isSafeInteger(value) || value < least || value > most) {
      out.push({
        field: `scaling.${snake(key)}`,
        description: `scaling.${key} must be between ${least} and ${most} (0: the default), got ${value}`,
        reason: "SCALING_INVALID",
        metadata: { field: key, value: String(value), min: String(least), max: String(most) },
      });
    }
  }
  const { minReplicas, maxReplicas } = scaling;
  if (minReplicas >= 0 && maxReplicas >= minReplicas && maxReplicas <= limits.maxReplicas) return out;
  return [
    ...out,
    {
      field: minReplicas < 0 || minReplicas > maxReplicas ? "scaling.min_replicas" : "scaling.max_replicas",
      description: `replicas must satisfy 0 <= min (${minReplicas}) <= max (${maxReplicas}) <= ${limits.maxReplicas}`,
      reason: "REPLICAS_INVALID",
      metadata: { minReplicas: String(minReplicas), maxReplicas: String(maxReplicas), limit: String(limits.maxReplicas) },
    },
  ];
}

export function validateLabels(labels: Record<string, string>, limits: ValidationLimits): Violation[] {
  const out: Violation[] = [];
  const keys = Object.keys(labels);
  if (keys.length > limits.maxLabels) {
    out.push({ field: "labels", description: `at most ${limits.maxLabels} labels`, reason: "LABELS_INVALID", metadata: { limit: String(limits.maxLabels) } });
  }
  for (const key of keys) {
    const value = labels[key] ?? "";
    if (!LABEL_KEY.test(key) || value.length > 256) {
      out.push({
        field: `labels[${key}]`,
        description: "label keys are lowercase [a-z0-9._/-] up to 63 characters; values up to 256",
        reason: "LABELS_INVALID",
        metadata: { key },
      });
    }
  }
  return out;
}

/** The name a create request asks for, or a violation explaining why not. */
export function resolveName(modelName: string, suffix: string): { name: string } | { violation: Violation } {
  if (suffix && !/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/.test(suffix)) {
    return {
      violation: {
        field: "suffix",
        description: `suffix "${suffix}" must be lowercase letters, digits and '-', starting and ending with a letter or digit`,
        reason: "NAME_INVALID",
        metadata: { suffix },
      },
    };
  }
  const name = deploymentName(modelName, suffix);
  if (!isDnsLabel(name)) {
    return {
      violation: {
        field: "suffix",
        description: `name "${name}" is not an RFC 1123 label of at most ${MAX_NAME_LENGTH} characters`,
        reason: "NAME_INVALID",
        metadata: { name },
      },
    };
  }
  return { name };
}

export function validateSpec(spec: DeploymentSpec, catalog: readonly CatalogEntry[], limits: ValidationLimits = DEFAULT_LIMITS): Violation[] {
  return [...validateModel(spec.model), ...validateResources(spec.resources, catalog, limits), ...validateScaling(spec.scaling, limits)];
}

/** A rollout as a request gives it: what is unset is undefined (or strategy UNSPECIFIED). */
export interface RolloutInput {
  strategy: "UNSPECIFIED" | "ALL_AT_ONCE" | "CANARY";
  steps: { percent: number; pauseSeconds: number }[];
  maxErrorRate: number | undefined;
  minRequests: number | undefined;
}

export const MAX_ROLLOUT_STEPS = 10;

/**
 * The rollout a task runs, defaults filled in, or why not. `deadlineSeconds`:
 * the task's progress deadline, which every step's pause must fit in (a step
 * is judged before the deadline could end it).
 */
export function resolveRollout(input: RolloutInput | undefined, deadlineSeconds: number): { rollout: Rollout } | { problems: Violation[] } {
  if (!input) return { rollout: ALL_AT_ONCE };
  const problems: Violation[] = [];
  const bad = (field: string, description: string, metadata: Record<string, string> = {}) =>
    problems.push({ field: `rollout.${field}`, description, reason: "ROLLOUT_INVALID", metadata: { field: `rollout.${field}`, ...metadata } });
  const strategy = input.strategy === "UNSPECIFIED" ? (input.steps.length > 0 ? "CANARY" : "ALL_AT_ONCE") : input.strategy;
  const maxErrorRate = input.maxErrorRate ?? ROLLOUT_DEFAULTS.maxErrorRate;
  const minRequests = input.minRequests ?? ROLLOUT_DEFAULTS.minRequests;
  if (!Number.isFinite(maxErrorRate) || maxErrorRate < 0 || maxErrorRate > 1)
    bad("max_error_rate", `maxErrorRate must be between 0 and 1, got ${maxErrorRate}`);
  if (!Number.isSafeInteger(minRequests) || minRequests < 0 || minRequests > 1_000_000)
    bad("min_requests", `minRequests must be between 0 and 1000000, got ${minRequests}`);
  if (strategy === "ALL_AT_ONCE" && input.steps.length > 0)
    bad("steps", "steps are for strategy ROLLOUT_STRATEGY_CANARY; ALL_AT_ONCE switches all traffic in one step");
  if (strategy === "CANARY") {
    if (input.steps.length === 0) bad("steps", "a canary needs at least one step, e.g. {percent: 10, pauseSeconds: 30}");
    if (input.steps.length > MAX_ROLLOUT_STEPS) bad("steps", `at most ${MAX_ROLLOUT_STEPS} steps`, { limit: String(MAX_ROLLOUT_STEPS) });
    let previous = 0;
    input.steps.forEach((step, i) => {
      if (!Number.isSafeInteger(step.percent) || step.percent < 1 || step.percent > 99 || step.percent <= previous) {
        bad(`steps[${i}].percent`, `step percents must increase, each between 1 and 99 (100 % follows the last step); got ${step.percent} after ${previous}`, {
          percent: String(step.percent),
        });
      }
      previous = Math.max(previous, step.percent);
      if (!Number.isSafeInteger(step.pauseSeconds) || step.pauseSeconds < 0 || step.pauseSeconds >= deadlineSeconds) {
        bad(`steps[${i}].pause_seconds`, `pauseSeconds must be at least 0 and below the progress deadline (${deadlineSeconds} s), got ${step.pauseSeconds}`, {
          pauseSeconds: String(step.pauseSeconds),
          progressDeadlineSeconds: String(deadlineSeconds),
        });
      }
    });
  }
  if (problems.length > 0) return { problems };
  return { rollout: { strategy, steps: strategy === "CANARY" ? input.steps.map((s) => ({ ...s })) : [], maxErrorRate, minRequests } };
}

/** Replicas a task starts for a scaling spec; the autoscaler moves them between min and max afterwards. */
export function initialReplicas(scaling: Pick<Scaling, "minReplicas" | "maxReplicas">): number {
  if (scaling.maxReplicas === 0) return 0;
  return Math.max(scaling.minReplicas, 1);
}
