// The local runtime end to end: a real agent (supervisor, gateway, control
// API) driven through the LocalDriver, with real model-server processes.
// The tests run in order and share one deployment's story.
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../src/log.js";
import { sampleModelReference } from "../../src/onnx/sample-model.js";
import type { RevisionSpec, RuntimeDriver } from "../../src/runtime/driver.js";
import { createLocalRuntimeAgent, type LocalRuntimeAgent } from "../../src/runtime/local/agent.js";
import { createLocalDriver } from "../../src/runtime/local/local-driver.js";
import type { ReplicaDetail } from "../../src/runtime/local/local-runtime.js";
import { holdRequest } from "../helpers/held-request.js";
import { writeSampleModel } from "../helpers/onnx-model.js";
import { isAlive, rejection, requireBuiltModelServer, revisionSpec, tempDir, waitFor } from "./support.js";

const x = [
  [1, 2, 3, 4],
  [-0.5, 0.25, 2, 1],
];
const inferBody = JSON.stringify({
  inputs: [
    { name: "x", shape: [2, 4], datatype: "FP32", data: x.flat() },
    { name: "ids", shape: [2], datatype: "INT64", data: [7, 9] },
  ],
});

interface InferResponse {
  model_name: string;
  model_version: string;
  outputs: { name: string; data: number[] }[];
}

describe("local runtime agent", () => {
  let dir: string;
  let agent: LocalRuntimeAgent | undefined;
  let driver: RuntimeDriver;
  let spec: RevisionSpec;
  let endpoint: string;
  /** Every model-server pid seen, checked dead at the end. */
  const pids = new Set<number>();

  const startAgent = async (gatewayPort = 0, controlPort = 0) =>
    createLocalRuntimeAgent({
      dataDir: join(dir, "data"),
      gatewayPort,
      controlPort,
      modelServerCommand: requireBuiltModelServer(),
      healthIntervalMs: 100,
      maxReplicas: 6,
      drainTimeoutMs: 10_000,
      stopGraceMs: 2_000,
      maxBodyBytes: 2 * 1024 * 1024,
      logger: silentLogger,
    });

  const replicas = async (uid: string, revision: number): Promise<ReplicaDetail[]> => {
    const res = await fetch(`${agent!.controlUrl}/v1/deployments/${uid}/revisions/${revision}`);
    const details = ((await res.json()) as { replicas: ReplicaDetail[] }).replicas;
    for (const r of details) if (r.pid) pids.add(r.pid);
    return details;
  };

  const infer = async (): Promise<InferResponse> => {
    const res = await fetch(`${endpoint}/infer`, { method: "POST", body: inferBody });
    expect(res.status).toBe(200);
    return (await res.json()) as InferResponse;
  };

  const waitReady = (s: RevisionSpec, ready: number) =>
    waitFor(`${ready} ready replicas of revision ${s.revision}`, async () => {
      const status = await driver.revisionStatus(s.deploymentUid, s.revision);
      return status.ready === ready && status.pending === 0 ? status : undefined;
    });

  beforeAll(async () => {
    dir = await tempDir("agent");
    const model = await writeSampleModel(dir);
    spec = revisionSpec({ uri: pathToFileURL(model.path).href, sha256: model.sha256, replicas: 2 });
    agent = await startAgent();
    driver = createLocalDriver({ controlUrl: agent.controlUrl, dataDir: join(dir, "data"), logger: silentLogger });
  });

  afterAll(async () => {
    await agent?.close();
    await driver?.close();
    await rm(dir, { recursive: true, force: true });
    // Closing the agent must leave no model server behind.
    expect([...pids].filter(isAlive)).toEqual([]);
  });

  it("starts two replicas that become ready and serve inference through the gateway", async () => {
    const progress: number[] = [];
    const weights = await driver.prepareWeights(spec, (p) => progress.push(p.bytesDone));
    expect(progress.at(-1)).toBe(weights.bytes);
    await driver.startRevision(spec, weights);
    // Idempotent: a redelivered task starts nothing more.
    await driver.startRevision(spec, weights);
    const status = await waitReady(spec, 2);
    expect(status).toEqual({ desired: 2, ready: 2, pending: 0, restarts: 0 });
    expect(await replicas(spec.deploymentUid, 1)).toHaveLength(2);

    endpoint = await driver.switchTraffic(spec);
    expect(endpoint).toBe(`${agent!.gatewayUrl}/ws/v2/models/sample-abc`);
    expect((await fetch(`${endpoint}/ready`)).status).toBe(200);
    const meta = (await (await fetch(endpoint)).json()) as { name: string; versions: string[] };
    expect(meta).toMatchObject({ name: "sample-abc", versions: ["1"], platform: "onnxruntime" });

    const body = await infer();
    expect(body.model_name).toBe("sample-abc");
    sampleModelReference(x)
      .flat()
      .forEach((v, i) => expect(body.outputs[0]?.data[i]).toBeCloseTo(v, 5));
    expect(body.outputs[1]?.data).toEqual([8, 10]);

    const invalid = await fetch(`${endpoint}/infer`, { method: "POST", body: '{"inputs": []}' });
    expect(invalid.status).toBe(400);

    // Bodies above the 1 MiB retry buffer are streamed through; above the gateway limit refused.
    const padded = (bytes: number) => JSON.stringify({ ...JSON.parse(inferBody), padding: "p".repeat(bytes) });
    const large = await fetch(`${endpoint}/infer`, { method: "POST", body: padded(1_500_000) });
    expect(large.status).toBe(200);
    expect(((await large.json()) as InferResponse).outputs[1]?.data).toEqual([8, 10]);
    const tooLarge = await fetch(`${endpoint}/infer`, { method: "POST", body: padded(3_000_000) });
    expect(tooLarge.status).toBe(413);

    expect(await driver.observe()).toEqual([
      {
        deploymentUid: spec.deploymentUid,
        servingRevision: 1,
        endpointUrl: endpoint,
        instances: { desired: 2, ready: 2, pending: 0, restarts: 0 },
      },
    ]);
  });

  it("restarts a replica killed with SIGKILL, counts the restart, and keeps serving", async () => {
    const [victim] = await replicas(spec.deploymentUid, 1);
    process.kill(victim!.pid!, "SIGKILL");
    // The gateway retries a failed replica on the other one.
    for (let i = 0; i < 4; i++) await infer();
    await waitFor("the killed replica to be restarted and ready", async () => {
      const status = await driver.revisionStatus(spec.deploymentUid, 1);
      return status.restarts === 1 && status.ready === 2;
    });
    const after = await replicas(spec.deploymentUid, 1);
    expect(after.map((r) => r.pid)).not.toContain(victim!.pid);
    expect(isAlive(victim!.pid!)).toBe(false);
  });

  it("switches traffic atomically to a new revision, then drains and stops the old one", async () => {
    const spec2 = { ...spec, revision: 2, replicas: 1 };
    await driver.startRevision(spec2, await driver.prepareWeights(spec2, () => {}));
    await waitReady(spec2, 1);
    const old = await replicas(spec.deploymentUid, 1);
    expect(await driver.switchTraffic(spec2)).toBe(endpoint);
    expect((await infer()).model_version).toBe("2");
    await driver.stopRevision(spec.deploymentUid, 1);
    expect(await driver.revisionStatus(spec.deploymentUid, 1)).toEqual({ desired: 0, ready: 0, pending: 0, restarts: 1 });
    expect(old.map((r) => r.pid!).filter(isAlive)).toEqual([]);
    expect((await infer()).model_version).toBe("2");
  });

  it("reports a model file that is not ONNX as exited, with exit code and log tail", async () => {
    const bad = join(dir, "garbage.onnx");
    await writeFile(bad, "definitely not a protobuf model");
    const badSpec = revisionSpec({ uri: pathToFileURL(bad).href, deploymentUid: "dep-bad", deploymentName: "bad-1" });
    await driver.startRevision(badSpec, await driver.prepareWeights(badSpec, () => {}));
    const status = await waitFor("the replica to exit", async () => {
      const s = await driver.revisionStatus("dep-bad", 1);
      return s.exited ? s : undefined;
    });
    expect(status).toMatchObject({ desired: 1, ready: 0, pending: 0, restarts: 0 });
    expect(status.exited?.exitCode).toBe(1);
    expect(status.exited?.signal).toBeNull();
    expect(status.exited?.logTail).toMatch(/failed to load model/);
    // Not restarted.
    expect((await replicas("dep-bad", 1))[0]?.phase).toBe("failed");
    await driver.release("dep-bad");
  });

  it("refuses more replicas than the host allows", async () => {
    const err = await rejection(
      driver.startRevision({ ...spec, deploymentUid: "dep-big", revision: 1, replicas: 6 }, await driver.prepareWeights(spec, () => {})),
    );
    expect(err.reason).toBe("INSUFFICIENT_RESOURCES");
    expect(err.message).toMatch(/at most 6/);
  });

  it("restores routes and replicas after an agent restart", async () => {
    const before = await replicas(spec.deploymentUid, 2);
    const gatewayPort = Number(new URL(agent!.gatewayUrl).port);
    const controlPort = Number(new URL(agent!.controlUrl).port);
    await agent!.close();
    expect(before.map((r) => r.pid!).filter(isAlive)).toEqual([]);
    agent = await startAgent(gatewayPort, controlPort);
    await waitFor("the endpoint to be ready again", async () => (await fetch(`${endpoint}/ready`)).status === 200);
    expect((await infer()).model_version).toBe("2");
    expect(await driver.revisionStatus(spec.deploymentUid, 1)).toMatchObject({ desired: 0, ready: 0 });
    await replicas(spec.deploymentUid, 2);
  });

  it("drains in-flight requests when stopping a revision; the endpoint then answers 503", async () => {
    // An infer request whose body is half sent is in flight on a replica.
    const held = holdRequest(`${endpoint}/infer`, inferBody);
    await waitFor("the request to be in flight", async () => (await replicas(spec.deploymentUid, 2))[0]?.inFlight === 1);
    const [replica] = await replicas(spec.deploymentUid, 2);

    let stopped = false;
    const stopping = driver.stopRevision(spec.deploymentUid, 2).then(() => (stopped = true));
    await waitFor("the endpoint to refuse new requests", async () => (await fetch(`${endpoint}/ready`)).status === 503);
    expect(stopped).toBe(false);
    expect(isAlive(replica!.pid!)).toBe(true);

    const answered = await held.finish();
    expect(answered.status).toBe(200);
    expect((JSON.parse(answered.body) as InferResponse).model_version).toBe("2");
    await stopping;
    expect(isAlive(replica!.pid!)).toBe(false);

    const res = await fetch(`${endpoint}/infer`, { method: "POST", body: inferBody });
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: string }).error).toMatch(/stopped/);
    expect(await driver.observe()).toEqual([
      {
        deploymentUid: spec.deploymentUid,
        servingRevision: 2,
        endpointUrl: "",
        instances: { desired: 0, ready: 0, pending: 0, restarts: 0 },
      },
    ]);
  });

  it("releases a deployment: 404 afterwards, and its uid can never start again", async () => {
    await driver.release(spec.deploymentUid);
    await driver.release(spec.deploymentUid); // idempotent
    const res = await fetch(`${endpoint}/infer`, { method: "POST", body: inferBody });
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: string }).error).toMatch(/no deployment 'sample-abc'/);
    const weights = await driver.prepareWeights(spec, () => {});
    expect((await rejection(driver.startRevision(spec, weights))).reason).toBe("INVALID_SPEC");
    expect(await driver.observe()).toEqual([]);

    // The tombstone survives a restart.
    const gatewayPort = Number(new URL(agent!.gatewayUrl).port);
    const controlPort = Number(new URL(agent!.controlUrl).port);
    await agent!.close();
    agent = await startAgent(gatewayPort, controlPort);
    expect((await rejection(driver.startRevision(spec, weights))).message).toMatch(/released/);
    expect((await fetch(`${endpoint}/ready`)).status).toBe(404);
  });

  it("reports an agent that is not running as a retryable INTERNAL error", async () => {
    await agent!.close();
    agent = undefined;
    const err = await rejection(driver.observe());
    expect(err.reason).toBe("INTERNAL");
    expect(err.retryable).toBe(true);
    expect(err.message).toMatch(/local runtime is not running/);
  });
});
