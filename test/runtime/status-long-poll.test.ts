// The control API's long-poll of a revision's status, through the LocalDriver:
// answers on a change, answers with the current status when it times out,
// and lets go of a caller that went away. A plain GET still answers at once.
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../src/log.js";
import type { PreparedWeights, RevisionStatus, RuntimeDriver } from "../../src/runtime/driver.js";
import { startControlApi, type ControlApi } from "../../src/runtime/local/control-api.js";
import { controlPaths, statusTag } from "../../src/runtime/local/control-protocol.js";
import { createLocalDriver } from "../../src/runtime/local/local-driver.js";
import { createLocalRuntime, type LocalRuntime } from "../../src/runtime/local/local-runtime.js";
import { writeSampleModel } from "../helpers/onnx-model.js";
import { isAlive, requireBuiltModelServer, revisionSpec, tempDir, waitFor } from "./support.js";

describe("revision status long-poll", () => {
  let dir: string;
  let weights: PreparedWeights;
  let runtime: LocalRuntime;
  let control: ControlApi;
  let driver: RuntimeDriver & Required<Pick<RuntimeDriver, "waitRevisionStatus">>;
  const pids = new Set<number>();
  const spec = revisionSpec({ uri: "file:///unused", deploymentUid: "dep-poll", replicas: 1 });

  const rememberPids = (uid: string) => {
    for (const d of runtime.replicaDetails(uid, 1)) if (d.pid) pids.add(d.pid);
  };

  beforeAll(async () => {
    dir = await tempDir("long-poll");
    const model = await writeSampleModel(dir);
    weights = { path: model.path, sha256: model.sha256, bytes: model.bytes };
    runtime = createLocalRuntime({
      dataDir: join(dir, "data"),
      modelServerCommand: requireBuiltModelServer(),
      healthIntervalMs: 1_000,
      maxReplicas: 4,
      drainTimeoutMs: 1_000,
      stopGraceMs: 2_000,
      gatewayUrl: () => "http://127.0.0.1:1",
      logger: silentLogger,
    });
    control = await startControlApi({ host: "127.0.0.1", port: 0, runtime, logger: silentLogger });
    const local = createLocalDriver({ controlUrl: control.url, dataDir: join(dir, "data"), logger: silentLogger });
    if (!local.waitRevisionStatus) throw new Error("the local driver long-polls");
    driver = local as typeof driver;
  });

  afterAll(async () => {
    await driver?.close();
    await control?.close();
    await runtime?.close();
    await rm(dir, { recursive: true, force: true });
    expect([...pids].filter(isAlive)).toEqual([]);
  });

  it("answers as soon as the status changes", async () => {
    await driver.startRevision(spec, weights);
    let status = await driver.revisionStatus(spec.deploymentUid, 1);
    expect(status).toMatchObject({ desired: 1, ready: 0, pending: 1 });
    // Far longer than the test may take: only a change can answer it.
    const changes: RevisionStatus[] = [];
    while (status.ready === 0 && !status.exited) {
      const next = await driver.waitRevisionStatus(spec.deploymentUid, 1, status, { timeoutMs: 3_600_000 });
      expect(statusTag(next)).not.toBe(statusTag(status));
      changes.push((status = next));
    }
    rememberPids(spec.deploymentUid);
    expect(changes.at(-1)).toEqual({ desired: 1, ready: 1, pending: 0, restarts: 0 });
    expect(runtime.statusWaits).toBe(0);
  });

  it("answers at once when the caller's status is already out of date", async () => {
    const stale: RevisionStatus = { desired: 1, ready: 0, pending: 1, restarts: 0 };
    const now = await driver.waitRevisionStatus(spec.deploymentUid, 1, stale, { timeoutMs: 3_600_000 });
    expect(now).toEqual({ desired: 1, ready: 1, pending: 0, restarts: 0 });
  });

  it("times out with the current status when nothing changes", async () => {
    const current = await driver.revisionStatus(spec.deploymentUid, 1);
    const after = await driver.waitRevisionStatus(spec.deploymentUid, 1, current, { timeoutMs: 200 });
    expect(after).toEqual(current);
    expect(runtime.statusWaits).toBe(0);
  });

  it("stops waiting when the caller goes away", async () => {
    const current = await driver.revisionStatus(spec.deploymentUid, 1);
    const ac = new AbortController();
    const waiting = driver.waitRevisionStatus(spec.deploymentUid, 1, current, { timeoutMs: 3_600_000, signal: ac.signal });
    const outcome = waiting.then(
      () => "answered",
      (err: unknown) => err,
    );
    await waitFor("the long-poll to wait in the agent", () => runtime.statusWaits === 1);
    const reason = new Error("caller went away");
    ac.abort(reason);
    expect(await outcome).toBe(reason);
    // The agent saw the connection close and dropped the wait.
    await waitFor("the agent to drop the wait", () => runtime.statusWaits === 0);
  });

  it("answers a plain GET at once, with the status's tag as ETag (older workers)", async () => {
    const res = await fetch(control.url + controlPaths.revision(spec.deploymentUid, 1));
    expect(res.status).toBe(200);
    const body = (await res.json()) as RevisionStatus & { replicas: unknown[] };
    expect(body).toMatchObject({ desired: 1, ready: 1, pending: 0, restarts: 0 });
    expect(body.replicas).toHaveLength(1);
    expect(res.headers.get("etag")).toBe(`"${statusTag(body)}"`);
    const bad = await fetch(`${control.url}${controlPaths.revision(spec.deploymentUid, 1)}?waitMs=soon`, {
      headers: { "if-none-match": `"${statusTag(body)}"` },
    });
    expect(bad.status).toBe(400);
  });

  it("answers a waiting caller when a replica exits before it was ever ready", async () => {
    const garbage = join(dir, "garbage.onnx");
    await writeFile(garbage, "not a model");
    const bad = revisionSpec({ uri: "file:///unused", deploymentUid: "dep-exit", deploymentName: "exit-1", replicas: 1 });
    await driver.startRevision(bad, { path: garbage, sha256: "", bytes: 11 });
    rememberPids("dep-exit");
    let status = await driver.revisionStatus("dep-exit", 1);
    while (!status.exited) status = await driver.waitRevisionStatus("dep-exit", 1, status, { timeoutMs: 3_600_000 });
    expect(status).toMatchObject({ desired: 1, ready: 0, pending: 0, exited: { exitCode: 1 } });
    await driver.release("dep-exit");
  });

  it("answers waiting callers with an error once the deployment is released", async () => {
    const current = await driver.revisionStatus(spec.deploymentUid, 1);
    const waiting = driver.waitRevisionStatus(spec.deploymentUid, 1, current, { timeoutMs: 3_600_000 }).then(
      () => undefined,
      (err: unknown) => err as Error,
    );
    await waitFor("the long-poll to wait in the agent", () => runtime.statusWaits === 1);
    await driver.release(spec.deploymentUid);
    expect((await waiting)?.message).toMatch(/released/);
    expect(runtime.statusWaits).toBe(0);
  });
});
