import { describe, expect, it } from "vitest";
import { newId, newSuffix } from "../../src/domain/ids.js";
import { deploymentName, isDnsLabel, modelSlug } from "../../src/domain/names.js";
import { parseMemory } from "../../src/domain/quantities.js";
import {
  DEFAULT_LIMITS,
  initialReplicas,
  resolveName,
  resolveRollout,
  SUPPORTED_RUNTIMES,
  validateScaling,
  validateSpec,
} from "../../src/domain/validation.js";
import { ALL_AT_ONCE, withScalingDefaults } from "../../src/domain/types.js";
import type { DeploymentSpec } from "../../src/domain/validation.js";
import { ConfigError, loadConfig } from "../../src/config.js";
import { replicas } from "../helpers/api-deps.js";

const spec = (over: Partial<DeploymentSpec> = {}): DeploymentSpec => ({
  model: {
    name: "google/vit-base-patch16-224",
    revision: "main",
    uri: "file:///models/vit.onnx",
    sha256: "",
    task: "image-classification",
    type: "UNSPECIFIED",
    runtime: "",
    tokenSealed: "",
    tokenDigest: "",
  },
  resources: { acceleratorType: "", acceleratorCount: 0, cpu: 1, memory: "256MiB", threadCount: 2, maxBatchSize: 8 },
  scaling: replicas(1, 2),
  ...over,
});

describe("names", () => {
  it("slugs model names and builds RFC 1123 labels", () => {
    expect(modelSlug("google/vit-base-patch16-224")).toBe("vit-base-patch16-224");
    expect(modelSlug("Org/My_Model.v2")).toBe("my-model-v2");
    expect(deploymentName("google/vit-base-patch16-224", "01kmqm4nrn9fw")).toBe("vit-base-patch16-224-01kmqm4nrn9fw");
    const long = deploymentName("org/" + "a".repeat(100), "abc");
    expect(long.length).toBeLessThanOrEqual(63);
    expect(isDnsLabel(long)).toBe(true);
    expect(isDnsLabel("Bad_Name")).toBe(false);
    expect(isDnsLabel("-x")).toBe(false);
  });

  it("rejects suffixes that do not make a label", () => {
    expect(resolveName("m", "UPPER")).toHaveProperty("violation.reason", "NAME_INVALID");
    expect(resolveName("m", "ok-1")).toEqual({ name: "m-ok-1" });
  });

  it("generates sortable ids and 13-character suffixes", () => {
    const a = newId(1000);
    const b = newId(2000);
    expect(a < b).toBe(true);
    expect(a).toMatch(/^[0-9a-z]{26}$/);
    expect(newSuffix()).toMatch(/^[0-9a-z]{13}$/);
  });
});

describe("quantities", () => {
  it("parses memory", () => {
    expect(parseMemory("256MiB")).toBe(256 * 2 ** 20);
    expect(parseMemory("2Gi")).toBe(2 * 2 ** 30);
    expect(parseMemory("1G")).toBe(1e9);
    expect(parseMemory("1024")).toBe(1024);
    expect(parseMemory("lots")).toBeUndefined();
    expect(parseMemory("5XB")).toBeUndefined();
  });
});

describe("validation", () => {
  const catalog = [{ name: "L4-24GB", memory: "24GiB", maxPerReplica: 4, total: 8 }];

  it("accepts a good spec", () => {
    expect(validateSpec(spec(), catalog)).toEqual([]);
  });

  it("explains each bad field with a reason and metadata", () => {
    const v = validateSpec(
      spec({
        model: { ...spec().model, uri: "ftp://x/y" },
        resources: { acceleratorType: "H100", acceleratorCount: 1, cpu: -1, memory: "lots", threadCount: 100_000, maxBatchSize: 0 },
        scaling: replicas(3, 1),
      }),
      catalog,
    );
    const reasons = v.map((x) => x.reason);
    expect(reasons).toEqual(
      expect.arrayContaining([
        "MODEL_SOURCE_INVALID",
        "ACCELERATOR_TYPE_UNAVAILABLE",
        "CPU_INVALID",
        "MEMORY_INVALID",
        "THREAD_COUNT_EXCEEDED",
        "REPLICAS_INVALID",
      ]),
    );
    const acc = v.find((x) => x.reason === "ACCELERATOR_TYPE_UNAVAILABLE")!;
    expect(acc.metadata).toEqual({ requestedAcceleratorType: "H100", availableAcceleratorTypes: "L4-24GB" });
    const rep = v.find((x) => x.reason === "REPLICAS_INVALID")!;
    expect(rep.metadata).toEqual({ minReplicas: "3", maxReplicas: "1", limit: String(DEFAULT_LIMITS.maxReplicas) });
  });

  it("bounds accelerator counts by the catalog", () => {
    const v = validateSpec(spec({ resources: { ...spec().resources, acceleratorType: "L4-24GB", acceleratorCount: 5 } }), catalog);
    expect(v).toHaveLength(1);
    expect(v[0]).toMatchObject({ reason: "ACCELERATOR_COUNT_INVALID", metadata: { providedAcceleratorCount: "5", maxAcceleratorCount: "4" } });
  });

  it("requires a model name and a supported uri", () => {
    const v = validateSpec(spec({ model: { ...spec().model, name: "", uri: "" } }), catalog);
    expect(v.map((x) => x.field)).toEqual(["model.name", "model.uri"]);
    expect(validateSpec(spec({ model: { ...spec().model, uri: "file://host/x.onnx" } }), catalog)[0]?.reason).toBe("MODEL_SOURCE_INVALID");
    expect(validateSpec(spec({ model: { ...spec().model, sha256: "abc" } }), catalog)[0]?.field).toBe("model.sha256");
  });

  it("accepts only the runtimes that exist, naming them", () => {
    for (const runtime of ["", "onnx"]) {
      expect(validateSpec(spec({ model: { ...spec().model, runtime } }), catalog)).toEqual([]);
    }
    for (const runtime of ["vllm", "ONNX", "onnx2"]) {
      const v = validateSpec(spec({ model: { ...spec().model, runtime } }), catalog);
      expect(v).toHaveLength(1);
      expect(v[0]).toMatchObject({
        field: "model.runtime",
        reason: "MODEL_SOURCE_INVALID",
        metadata: { field: "model.runtime", requestedRuntime: runtime, supportedRuntimes: SUPPORTED_RUNTIMES.join(",") },
      });
      expect(v[0]?.description).toContain(`"${runtime}" is not supported`);
      expect(v[0]?.description).toContain('"onnx"');
    }
    // An absurd value is not echoed whole.
    const long = validateSpec(spec({ model: { ...spec().model, runtime: "x".repeat(10_000) } }), catalog)[0]!;
    expect(long.description.length).toBeLessThan(300);
    expect(long.metadata["requestedRuntime"]).toHaveLength(64);
  });

  it("starts at least one replica unless stopped", () => {
    expect(initialReplicas({ minReplicas: 0, maxReplicas: 0 })).toBe(0);
    expect(initialReplicas({ minReplicas: 0, maxReplicas: 3 })).toBe(1);
    expect(initialReplicas({ minReplicas: 2, maxReplicas: 3 })).toBe(2);
  });
});

describe("config", () => {
  it("has defaults and validates every setting", () => {
    const c = loadConfig({});
    expect(c.databaseUrl).toBeUndefined();
    expect(c.databasePoolMax).toBe(1);
    expect(c.grpcPort).toBe(50051);
    expect(loadConfig({ DATABASE_URL: "postgres://x/y" }).databasePoolMax).toBe(10);
    expect(() => loadConfig({ MODELDEPLOY_GRPC_PORT: "70000", MODELDEPLOY_RUNTIME: "docker" })).toThrow(ConfigError);
    try {
      loadConfig({ MODELDEPLOY_GRPC_PORT: "x", MODELDEPLOY_ACCELERATORS: "L4:24GiB:zero:1" });
    } catch (err) {
      expect((err as ConfigError).problems).toHaveLength(2);
    }
    expect(loadConfig({ MODELDEPLOY_ACCELERATORS: "L4-24GB:24GiB:8:16" }).accelerators).toEqual([
      { name: "L4-24GB", memory: "24GiB", maxPerReplica: 8, total: 16 },
    ]);
  });
});

describe("resolveRollout", () => {
  it("defaults to all at once, fills in a canary's defaults, and refuses bad steps with ROLLOUT_INVALID", () => {
    expect(resolveRollout(undefined, 600)).toEqual({ rollout: ALL_AT_ONCE });
    const canary = resolveRollout(
      {
        strategy: "CANARY",
        steps: [
          { percent: 10, pauseSeconds: 30 },
          { percent: 50, pauseSeconds: 30 },
        ],
        maxErrorRate: undefined,
        minRequests: undefined,
      },
      600,
    );
    expect(canary).toEqual({
      rollout: {
        strategy: "CANARY",
        steps: [
          { percent: 10, pauseSeconds: 30 },
          { percent: 50, pauseSeconds: 30 },
        ],
        maxErrorRate: 0.01,
        minRequests: 20,
      },
    });
    const bad = resolveRollout(
      {
        strategy: "CANARY",
        steps: [
          { percent: 50, pauseSeconds: 10 },
          { percent: 40, pauseSeconds: 700 },
        ],
        maxErrorRate: 2,
        minRequests: -1,
      },
      600,
    );
    expect("problems" in bad && bad.problems.map((p) => p.field)).toEqual([
      "rollout.max_error_rate",
      "rollout.min_requests",
      "rollout.steps[1].percent",
      "rollout.steps[1].pause_seconds",
    ]);
    expect("problems" in bad && bad.problems.every((p) => p.reason === "ROLLOUT_INVALID")).toBe(true);
    const stepsWithoutCanary = resolveRollout(
      { strategy: "ALL_AT_ONCE", steps: [{ percent: 10, pauseSeconds: 1 }], maxErrorRate: undefined, minRequests: undefined },
      600,
    );
    expect("problems" in stepsWithoutCanary).toBe(true);
  });

  it("refuses autoscaler settings out of range with SCALING_INVALID", () => {
    expect(validateScaling(withScalingDefaults({ minReplicas: 0, maxReplicas: 3 }), DEFAULT_LIMITS)).toEqual([]);
    const problems = validateScaling(
      { ...withScalingDefaults({ minReplicas: 0, maxReplicas: 3 }), targetInFlight: -1, wakeTimeoutSeconds: 99_999 },
      DEFAULT_LIMITS,
    );
    expect(problems.map((p) => [p.field, p.reason])).toEqual([
      ["scaling.target_in_flight", "SCALING_INVALID"],
      ["scaling.wake_timeout_seconds", "SCALING_INVALID"],
    ]);
  });
});
