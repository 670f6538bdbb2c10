// A deploy's wait for its replicas, against a real local runtime (control API,
// model-server processes) through the LocalDriver: by long-poll, by polling
// for a driver that cannot long-poll, and its failure paths.
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../src/log.js";
import type { PreparedWeights, RevisionStatus, RuntimeDriver } from "../../src/runtime/driver.js";
import { startControlApi, type ControlApi } from "../../src/runtime/local/control-api.js";
import { createLocalDriver } from "../../src/runtime/local/local-driver.js";
import { createLocalRuntime, type LocalRuntime } from "../../src/runtime/local/local-runtime.js";
import { waitForReplicas, type ReplicaWait } from "../../src/worker/wait-replicas.js";
import { writeSampleModel } from "../helpers/onnx-model.js";
import { requireBuiltModelServer, revisionSpec, tempDir, waitFor } from "../runtime/support.js";

describe("waitForReplicas", () => {
  let dir: string;
  let weights: PreparedWeights;
  const runtimes: LocalRuntime[] = [];
  const controls: ControlApi[] = [];
  const drivers: RuntimeDriver[] = [];

  /** A runtime whose periodic probe never runs unless asked: readiness comes from the ready line. */
  const start = async (modelServerCommand: readonly string[] = requireBuiltModelServer(), healthIntervalMs = 3_600_000) => {
    const runtime = createLocalRuntime({
      dataDir: join(dir, `data-${runtimes.length}`),
      modelServerCommand,
      healthIntervalMs,
      maxReplicas: 4,
      drainTimeoutMs: 1_000,
      stopGraceMs: 2_000,
      gatewayUrl: () => "http://127.0.0.1:1",
      logger: silentLogger,
    });
    runtimes.push(runtime);
    const control = await startControlApi({ host: "127.0.0.1", port: 0, runtime, logger: silentLogger });
    controls.push(control);
    const driver = createLocalDriver({ controlUrl: control.url, dataDir: dir, logger: silentLogger });
    drivers.push(driver);
    return { runtime, driver };
  };

  const wait = (driver: RuntimeDriver, uid: string, o: Partial<ReplicaWait> = {}) => {
    const reported: RevisionStatus[] = [];
    const result = waitForReplicas({
      driver,
      deploymentUid: uid,
      revision: 1,
      wanted: 1,
      deadline: () => undefined,
      pollMs: 20,
      signal: new AbortController().signal,
      onReadyCount: async (s) => {
        reported.push(s);
      },
      ...o,
    });
    return { result, reported };
  };

  beforeAll(async () => {
    dir = await tempDir("wait-replicas");
    const model = await writeSampleModel(dir);
    weights = { path: model.path, sha256: model.sha256, bytes: model.bytes };
  });

  afterAll(async () => {
    await Promise.all(drivers.map((d) => d.close()));
    await Promise.all(controls.map((c) => c.close()));
    await Promise.all(runtimes.map((r) => r.close()));
    await rm(dir, { recursive: true, force: true });
  });

  it("sees the replica ready through the long-poll, reporting each ready count short of the goal once", async () => {
    const { driver, runtime } = await start();
    await driver.startRevision(revisionSpec({ uri: "file:///unused", deploymentUid: "dep-a" }), weights);
    const { result, reported } = wait(driver, "dep-a");
    const outcome = await result;
    expect(outcome).toEqual({ outcome: "ready", status: { desired: 1, ready: 1, pending: 0, restarts: 0 } });
    // The status that ends the wait is the result, not a report.
    expect(reported.map((s) => s.ready)).toEqual([0]);
    expect(runtime.statusWaits).toBe(0);
  });

  it("polls a driver that cannot long-poll", async () => {
    const { driver } = await start(requireBuiltModelServer(), 100);
    await driver.startRevision(revisionSpec({ uri: "file:///unused", deploymentUid: "dep-b" }), weights);
    const polling: RuntimeDriver = { ...driver, waitRevisionStatus: undefined };
    const { result, reported } = wait(polling, "dep-b");
    expect((await result).outcome).toBe("ready");
    expect(reported.map((s) => s.ready)).toEqual([0]);
  });

  it("reports a replica that exits before it is ready", async () => {
    const { driver } = await start();
    const garbage = join(dir, "garbage.onnx");
    await writeFile(garbage, "not a model");
    await driver.startRevision(revisionSpec({ uri: "file:///unused", deploymentUid: "dep-c" }), { path: garbage, sha256: "", bytes: 11 });
    const { result } = wait(driver, "dep-c");
    const outcome = await result;
    expect(outcome.outcome).toBe("exited");
    expect(outcome.status.exited?.logTail).toMatch(/failed to load model/);
  });

  describe("a replica that never becomes ready", () => {
    // A process that never listens nor says it is ready.
    const silent = [process.execPath, "-e", "setInterval(() => {}, 60_000)", "--"];

    it("ends at the progress deadline", async () => {
      const { driver, runtime } = await start(silent, 100);
      await driver.startRevision(revisionSpec({ uri: "file:///unused", deploymentUid: "dep-d" }), weights);
      let deadline: Date | undefined;
      const { result, reported } = wait(driver, "dep-d", {
        // Set once the first status is reported, as a progress write would.
        deadline: () => deadline,
        onReadyCount: async (s) => {
          reported.push(s);
          deadline = new Date(Date.now() + 300);
        },
      });
      const outcome = await result;
      expect(outcome).toEqual({ outcome: "deadline", status: { desired: 1, ready: 0, pending: 1, restarts: 0 } });
      expect(reported).toHaveLength(1);
      expect(runtime.statusWaits).toBe(0);
      await driver.release("dep-d");
    });

    it("stops waiting, on both sides, when the task is aborted", async () => {
      const { driver, runtime } = await start(silent, 100);
      await driver.startRevision(revisionSpec({ uri: "file:///unused", deploymentUid: "dep-e" }), weights);
      const ac = new AbortController();
      const { result } = wait(driver, "dep-e", { signal: ac.signal });
      const settled = result.then(
        () => "resolved",
        (err: unknown) => err,
      );
      await waitFor("the long-poll to wait in the agent", () => runtime.statusWaits === 1);
      const reason = new Error("task cancelled");
      ac.abort(reason);
      expect(await settled).toBe(reason);
      await waitFor("the agent to drop the wait", () => runtime.statusWaits === 0);
      await driver.release("dep-e");
    });
  });
});
