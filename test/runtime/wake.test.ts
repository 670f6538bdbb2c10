// Scale to zero and wake on request: a revision with a wake timeout scaled to
// 0 is idle, and the next requests start ONE replica and wait for it; a
// stopped revision never wakes; a wake that takes longer than the timeout
// answers 503 with Retry-After. Real agents, driven through the LocalDriver,
// with real model-server processes.
import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../src/log.js";
import type { DeploymentTraffic, RevisionSpec, RuntimeDriver } from "../../src/runtime/driver.js";
import { createLocalRuntimeAgent, type LocalRuntimeAgent, type LocalRuntimeAgentOptions } from "../../src/runtime/local/agent.js";
import { revisionHeader, WAKE_RETRY_AFTER_S } from "../../src/runtime/local/gateway.js";
import { createLocalDriver } from "../../src/runtime/local/local-driver.js";
import type { ReplicaDetail } from "../../src/runtime/local/local-runtime.js";
import type { PersistedState } from "../../src/runtime/local/state-store.js";
import { writeSampleModel, type WrittenModel } from "../helpers/onnx-model.js";
import { inferBody, isAlive, rejection, requireBuiltModelServer, revisionSpec, tempDir, waitFor } from "./support.js";

const WITHOUT_READY_LINE = fileURLToPath(new URL("./fixtures/model-server-without-ready-line.mjs", import.meta.url));
/** Longer than any test here: a periodic readiness probe never runs. */
const NEVER_MS = 3_600_000;

describe("wake on request", () => {
  let dir: string;
  let model: WrittenModel;
  const agents: LocalRuntimeAgent[] = [];
  const drivers: RuntimeDriver[] = [];
  const pids = new Set<number>();

  const start = async (name: string, options: Partial<LocalRuntimeAgentOptions> = {}) => {
    const dataDir = join(dir, name);
    const agent = await createLocalRuntimeAgent({
      dataDir,
      gatewayPort: 0,
      controlPort: 0,
      modelServerCommand: requireBuiltModelServer(),
      healthIntervalMs: 500,
      maxReplicas: 12,
      drainTimeoutMs: 5_000,
      stopGraceMs: 2_000,
      logger: silentLogger,
      ...options,
    });
    agents.push(agent);
    const driver = createLocalDriver({ controlUrl: agent.controlUrl, dataDir, logger: silentLogger });
    drivers.push(driver);
    return { agent, driver, dataDir };
  };

  const replicasOf = async (agent: LocalRuntimeAgent, spec: RevisionSpec): Promise<ReplicaDetail[]> => {
    const res = await fetch(`${agent.controlUrl}/v1/deployments/${spec.deploymentUid}/revisions/${spec.revision}`);
    const details = ((await res.json()) as { replicas: ReplicaDetail[] }).replicas;
    for (const r of details) if (r.pid) pids.add(r.pid);
    return details;
  };

  const stateOf = async (dataDir: string) => JSON.parse(await readFile(join(dataDir, "runtime-state.json"), "utf8")) as PersistedState;

  beforeAll(async () => {
    dir = await tempDir("wake");
    model = await writeSampleModel(dir);
  });

  afterAll(async () => {
    for (const a of agents) await a.close();
    for (const d of drivers) await d.close();
    await rm(dir, { recursive: true, force: true });
    expect([...pids].filter(isAlive)).toEqual([]);
  });

  it("wakes an idle revision with one replica for a burst of requests, and a stopped one not at all", async () => {
    const { agent, driver, dataDir } = await start("serving");
    const spec = revisionSpec({
      uri: pathToFileURL(model.path).href,
      sha256: model.sha256,
      replicas: 1,
      deploymentUid: "dep-wake",
      deploymentName: "wake-abc",
      wakeTimeoutMs: 60_000,
    });
    await driver.startRevision(spec, await driver.prepareWeights(spec, () => {}));
    await waitFor("a ready replica", async () => (await driver.revisionStatus(spec.deploymentUid, 1)).ready === 1);
    await replicasOf(agent, spec);
    const endpoint = await driver.switchTraffic(spec);

    await driver.scaleRevision(spec.deploymentUid, 1, 0);
    expect(await driver.revisionStatus(spec.deploymentUid, 1)).toMatchObject({ desired: 0, ready: 0, pending: 0 });
    expect((await stateOf(dataDir)).revisions[0]).toMatchObject({ replicas: 0, spec: { wakeTimeoutMs: 60_000 } });

    // A readiness probe says idle and wakes nothing.
    const ready = await fetch(`${endpoint}/ready`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toEqual({ name: "wake-abc", ready: false, error: "idle; the next request wakes it" });
    expect(await driver.revisionStatus(spec.deploymentUid, 1)).toMatchObject({ desired: 0, pending: 0 });
    expect((await driver.observe())[0]).toMatchObject({ servingRevision: 1, endpointUrl: "", instances: { desired: 0 } });

    const before = (await driver.trafficStats(spec.deploymentUid))!;
    const burst = await Promise.all(
      Array.from({ length: 10 }, async () => {
        const res = await fetch(`${endpoint}/infer`, { method: "POST", body: inferBody });
        return { status: res.status, revision: res.headers.get(revisionHeader), body: (await res.json()) as { outputs?: { data: number[] }[] } };
      }),
    );
    for (const r of burst) {
      expect(r.status).toBe(200);
      expect(r.revision).toBe("1");
      expect(r.body.outputs?.[1]?.data).toEqual([6]);
    }
    // One replica for the whole burst, and the wake is persisted.
    expect(await driver.revisionStatus(spec.deploymentUid, 1)).toEqual({ desired: 1, ready: 1, pending: 0, restarts: 0 });
    expect(await replicasOf(agent, spec)).toHaveLength(1);
    expect((await stateOf(dataDir)).revisions[0]).toMatchObject({ replicas: 1, spec: { wakeTimeoutMs: 60_000 } });
    const after = (await driver.trafficStats(spec.deploymentUid))!;
    expect(after.arrivals - before.arrivals).toBe(10);
    expect(after.revisions).toEqual([{ revision: 1, requests: 10, failures: 0 }]);
    expect(after.inFlight).toBe(0);
    expect(after.inFlightSeconds).toBeGreaterThan(before.inFlightSeconds);
    expect((await fetch(`${endpoint}/ready`)).status).toBe(200);

    // Stopped: the wake timeout is forgotten, so it answers 503 at once and stays at 0.
    await driver.stopRevision(spec.deploymentUid, 1);
    expect((await stateOf(dataDir)).revisions[0]?.spec.wakeTimeoutMs).toBeUndefined();
    await driver.scaleRevision(spec.deploymentUid, 1, 0);
    const res = await fetch(`${endpoint}/infer`, { method: "POST", body: inferBody });
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBeNull();
    expect(((await res.json()) as { error: string }).error).toMatch(/stopped/);
    expect(((await (await fetch(`${endpoint}/ready`)).json()) as { error: string }).error).toMatch(/stopped/);
    expect(await driver.revisionStatus(spec.deploymentUid, 1)).toMatchObject({ desired: 0, ready: 0, pending: 0 });
    expect((await driver.trafficStats(spec.deploymentUid))?.revisions).toEqual([{ revision: 1, requests: 11, failures: 1 }]);
  });

  it("scales a revision up and down; refuses an unknown, negative or released one", async () => {
    const { agent, driver } = await start("scale");
    const spec = revisionSpec({
      uri: pathToFileURL(model.path).href,
      sha256: model.sha256,
      replicas: 1,
      deploymentUid: "dep-scale",
      deploymentName: "scale-abc",
    });
    await driver.startRevision(spec, await driver.prepareWeights(spec, () => {}));
    await driver.scaleRevision(spec.deploymentUid, 1, 2);
    await waitFor("2 ready replicas", async () => (await driver.revisionStatus(spec.deploymentUid, 1)).ready === 2);
    await replicasOf(agent, spec);
    await driver.scaleRevision(spec.deploymentUid, 1, 1);
    expect(await driver.revisionStatus(spec.deploymentUid, 1)).toMatchObject({ desired: 1, ready: 1 });
    expect(await replicasOf(agent, spec)).toHaveLength(1);

    expect((await rejection(driver.scaleRevision(spec.deploymentUid, 9, 1))).reason).toBe("INTERNAL");
    expect((await rejection(driver.scaleRevision(spec.deploymentUid, 1, -1))).reason).toBe("INVALID_SPEC");
    // No route yet: nothing is counted.
    expect(await driver.trafficStats(spec.deploymentUid)).toBeUndefined();
    await driver.release(spec.deploymentUid);
    expect((await rejection(driver.scaleRevision(spec.deploymentUid, 1, 1))).reason).toBe("INVALID_SPEC");
  });

  it("answers held requests 503 with Retry-After when no replica is ready within the wake timeout", async () => {
    const [node, main] = requireBuiltModelServer() as [string, string];
    // Its replicas never say they are ready, and no periodic probe finds them so.
    const { agent, driver } = await start("never-ready", { modelServerCommand: [node, WITHOUT_READY_LINE, main], healthIntervalMs: NEVER_MS });
    const spec = revisionSpec({
      uri: pathToFileURL(model.path).href,
      sha256: model.sha256,
      replicas: 0,
      deploymentUid: "dep-slow",
      deploymentName: "slow-abc",
      wakeTimeoutMs: 3_000,
    });
    await driver.startRevision(spec, await driver.prepareWeights(spec, () => {}));
    const endpoint = await driver.switchTraffic(spec);
    const stats = async () => (await driver.trafficStats(spec.deploymentUid))!;

    const requests = Array.from({ length: 3 }, () => fetch(`${endpoint}/infer`, { method: "POST", body: inferBody }));
    const holding = await waitFor("3 held requests", async (): Promise<DeploymentTraffic | undefined> => {
      const t = await stats();
      return t.inFlight === 3 ? t : undefined;
    });
    expect(holding.arrivals).toBe(3);
    // One replica starting for the three of them.
    expect(await driver.revisionStatus(spec.deploymentUid, 1)).toMatchObject({ desired: 1, ready: 0, pending: 1 });
    expect(await replicasOf(agent, spec)).toHaveLength(1);
    await waitFor("held time to add up", async () => (await stats()).inFlightSeconds > holding.inFlightSeconds);

    for (const res of await Promise.all(requests)) {
      expect(res.status).toBe(503);
      expect(res.headers.get("retry-after")).toBe(String(WAKE_RETRY_AFTER_S));
      expect(((await res.json()) as { error: string }).error).toMatch(/waking/);
    }
    expect(await stats()).toMatchObject({ inFlight: 0, arrivals: 3, revisions: [{ revision: 1, requests: 3, failures: 3 }] });

    // Still waking: a new request is held again, and one whose client goes away stops waiting (and counts for nothing).
    expect(((await (await fetch(`${endpoint}/ready`)).json()) as { error: string }).error).toMatch(/waking/);
    const gone = new AbortController();
    const abandoned = fetch(`${endpoint}/infer`, { method: "POST", body: inferBody, signal: gone.signal }).catch((err: unknown) => err);
    await waitFor("the request held", async () => (await stats()).inFlight === 1);
    gone.abort();
    await abandoned;
    await waitFor("the request to stop waiting", async () => (await stats()).inFlight === 0);
    expect(await stats()).toMatchObject({ arrivals: 4, revisions: [{ revision: 1, requests: 3, failures: 3 }] });
    expect(await replicasOf(agent, spec)).toHaveLength(1);
    await driver.release(spec.deploymentUid);

    // Scaled up by the autoscaler rather than woken: a request is held for the starting replica all the same.
    const scaled = { ...spec, deploymentUid: "dep-scaled", deploymentName: "scaled-abc", wakeTimeoutMs: 500 };
    await driver.startRevision(scaled, await driver.prepareWeights(scaled, () => {}));
    const scaledEndpoint = await driver.switchTraffic(scaled);
    await driver.scaleRevision(scaled.deploymentUid, 1, 1);
    const res = await fetch(`${scaledEndpoint}/infer`, { method: "POST", body: inferBody });
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe(String(WAKE_RETRY_AFTER_S));
    expect(((await res.json()) as { error: string }).error).toMatch(/waking/);
    expect(await replicasOf(agent, scaled)).toHaveLength(1);
    await driver.release(scaled.deploymentUid);
  });
});
