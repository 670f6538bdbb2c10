// The inference gateway balances requests over the READY replicas of the
// serving revision only. Real agent, real model-server processes, real ONNX
// model.
//
// Which replica a request went to is read from the runtime's control API:
// each replica's `inFlight` counts the proxied requests it holds now. A request
// whose body is half sent stays in flight on the replica the gateway chose for
// it, so holding a few such requests shows the gateway's choices exactly.
// A replica is made "not ready" without killing it: SIGSTOP freezes the model
// server, its readiness probes time out, and SIGCONT brings it back.
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../src/log.js";
import type { RevisionSpec, RuntimeDriver } from "../../src/runtime/driver.js";
import { createLocalRuntimeAgent, type LocalRuntimeAgent } from "../../src/runtime/local/agent.js";
import { createLocalDriver } from "../../src/runtime/local/local-driver.js";
import type { ReplicaDetail } from "../../src/runtime/local/local-runtime.js";
import { holdRequest, type HeldRequest } from "../helpers/held-request.js";
import { writeSampleModel } from "../helpers/onnx-model.js";
import { inferBody, isAlive, requireBuiltModelServer, revisionSpec, tempDir, waitFor } from "./support.js";

interface InferResponse {
  model_name: string;
  outputs: { name: string; data: number[] }[];
}

describe("inference gateway load balancing", () => {
  let dir: string;
  let agent: LocalRuntimeAgent;
  let driver: RuntimeDriver;
  let spec: RevisionSpec;
  let endpoint: string;
  const pids = new Set<number>();
  const stopped = new Set<number>();
  const held: HeldRequest[] = [];

  const replicas = async (): Promise<ReplicaDetail[]> => {
    const res = await fetch(`${agent.controlUrl}/v1/deployments/${spec.deploymentUid}/revisions/${spec.revision}`);
    const details = ((await res.json()) as { replicas: ReplicaDetail[] }).replicas;
    for (const r of details) if (r.pid) pids.add(r.pid);
    return details;
  };

  /** Holds n requests in flight and returns each replica's in-flight count (by replica index). */
  const holdMany = async (n: number): Promise<{ requests: HeldRequest[]; inFlight: Map<number, number> }> => {
    const requests = Array.from({ length: n }, () => holdRequest(`${endpoint}/infer`, inferBody));
    held.push(...requests);
    const details = await waitFor(`${n} requests in flight`, async () => {
      const d = await replicas();
      return d.reduce((sum, r) => sum + r.inFlight, 0) === n ? d : undefined;
    });
    return { requests, inFlight: new Map(details.map((r) => [r.index, r.inFlight])) };
  };

  const finishAll = async (requests: HeldRequest[]) => {
    for (const r of await Promise.all(requests.map((q) => q.finish()))) {
      expect(r.status).toBe(200);
      expect((JSON.parse(r.body) as InferResponse).outputs[1]?.data).toEqual([6]);
    }
    await waitFor("no request in flight", async () => (await replicas()).every((r) => r.inFlight === 0));
  };

  const infer = async () => {
    const res = await fetch(`${endpoint}/infer`, { method: "POST", body: inferBody });
    expect(res.status).toBe(200);
    return (await res.json()) as InferResponse;
  };

  beforeAll(async () => {
    dir = await tempDir("gateway-lb");
    const model = await writeSampleModel(dir);
    spec = revisionSpec({ uri: pathToFileURL(model.path).href, sha256: model.sha256, replicas: 2, deploymentName: "lb-abc", deploymentUid: "dep-lb-1" });
    agent = await createLocalRuntimeAgent({
      dataDir: join(dir, "data"),
      gatewayPort: 0,
      controlPort: 0,
      modelServerCommand: requireBuiltModelServer(),
      // Probes every second, each allowed 2 s: a busy machine does not make a live replica look unready.
      healthIntervalMs: 1_000,
      maxReplicas: 4,
      drainTimeoutMs: 10_000,
      stopGraceMs: 2_000,
      logger: silentLogger,
    });
    driver = createLocalDriver({ controlUrl: agent.controlUrl, dataDir: join(dir, "data"), logger: silentLogger });
    await driver.startRevision(spec, await driver.prepareWeights(spec, () => {}));
    await waitFor("2 ready replicas", async () => {
      const s = await driver.revisionStatus(spec.deploymentUid, spec.revision);
      return s.ready === 2 && s.pending === 0;
    });
    endpoint = await driver.switchTraffic(spec);
  });

  afterAll(async () => {
    for (const r of held) r.destroy();
    for (const pid of stopped) if (isAlive(pid)) process.kill(pid, "SIGCONT");
    await agent?.close();
    await driver?.close();
    await rm(dir, { recursive: true, force: true });
    expect([...pids].filter(isAlive)).toEqual([]);
  });

  it("spreads requests over both ready replicas", async () => {
    const before = await replicas();
    expect(before.map((r) => r.ready)).toEqual([true, true]);
    expect(new Set(before.map((r) => r.pid)).size).toBe(2);

    const { requests, inFlight } = await holdMany(4);
    // Round robin over two ready replicas: two requests each.
    expect([...inFlight.values()]).toEqual([2, 2]);
    await finishAll(requests);

    // An odd number still reaches both.
    const odd = await holdMany(3);
    expect([...odd.inFlight.values()].sort()).toEqual([1, 2]);
    await finishAll(odd.requests);
  });

  it("sends no traffic to a replica that is not ready, and resumes once it is ready again", async () => {
    const [frozen, live] = await replicas();
    process.kill(frozen!.pid!, "SIGSTOP");
    stopped.add(frozen!.pid!);
    await waitFor("the frozen replica to fail its readiness probe", async () => {
      const d = await replicas();
      return d.find((r) => r.index === frozen!.index)?.ready === false;
    });
    expect(await driver.revisionStatus(spec.deploymentUid, spec.revision)).toMatchObject({ desired: 2, ready: 1, pending: 1 });
    expect((await fetch(`${endpoint}/ready`)).status).toBe(200);

    const { requests, inFlight } = await holdMany(4);
    expect(inFlight.get(frozen!.index)).toBe(0);
    expect(inFlight.get(live!.index)).toBe(4);
    // Had any of them gone to the frozen process, it would never be answered.
    await finishAll(requests);
    for (let i = 0; i < 6; i++) expect((await infer()).model_name).toBe("lb-abc");

    process.kill(frozen!.pid!, "SIGCONT");
    stopped.delete(frozen!.pid!);
    await waitFor("the replica to be ready again", async () => (await replicas()).every((r) => r.ready));
    const again = await holdMany(2);
    expect(again.inFlight.get(frozen!.index)).toBe(1);
    expect(again.inFlight.get(live!.index)).toBe(1);
    await finishAll(again.requests);
  });

  it("answers 503 while no replica is ready, then serves again", async () => {
    const all = await replicas();
    for (const r of all) {
      process.kill(r.pid!, "SIGSTOP");
      stopped.add(r.pid!);
    }
    await waitFor("both replicas to fail their readiness probes", async () => (await replicas()).every((r) => !r.ready));
    const res = await fetch(`${endpoint}/infer`, { method: "POST", body: inferBody });
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: string }).error).toMatch(/no ready replica/);
    expect((await fetch(`${endpoint}/ready`)).status).toBe(503);

    for (const r of all) {
      process.kill(r.pid!, "SIGCONT");
      stopped.delete(r.pid!);
    }
    await waitFor("the replicas to be ready again", async () => (await replicas()).every((r) => r.ready));
    expect((await infer()).outputs[1]?.data).toEqual([6]);
    // Frozen, not crashed: the same processes serve, nothing was restarted.
    expect((await replicas()).map((r) => r.pid)).toEqual(all.map((r) => r.pid));
    expect(await driver.revisionStatus(spec.deploymentUid, spec.revision)).toMatchObject({ ready: 2, restarts: 0 });
  });
});
