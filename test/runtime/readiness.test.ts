// Readiness is pushed: the model server says when its model is loaded, and the
// local runtime probes it at once instead of at its next periodic probe. The
// periodic probe stays as the fallback for a server that never says so.
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../src/log.js";
import type { PreparedWeights } from "../../src/runtime/driver.js";
import { statusTag } from "../../src/runtime/local/control-protocol.js";
import { probeReady } from "../../src/runtime/local/health-check.js";
import { createLocalRuntime, type LocalRuntime } from "../../src/runtime/local/local-runtime.js";
import { LogTail } from "../../src/log-tail.js";
import { spawnReplicaProcess } from "../../src/runtime/local/replica-process.js";
import { writeSampleModel } from "../helpers/onnx-model.js";
import { isAlive, MODEL_SERVER_MAIN, requireBuiltModelServer, revisionSpec, tempDir, waitFor } from "./support.js";

const WITHOUT_READY_LINE = fileURLToPath(new URL("./fixtures/model-server-without-ready-line.mjs", import.meta.url));
/** Longer than any test here: a periodic probe never runs. */
const NEVER_MS = 3_600_000;

describe("pushed readiness", () => {
  let dir: string;
  let weights: PreparedWeights;
  const runtimes: LocalRuntime[] = [];
  const pids = new Set<number>();

  const runtime = (modelServerCommand: readonly string[], healthIntervalMs: number) => {
    const r = createLocalRuntime({
      dataDir: join(dir, `data-${runtimes.length}`),
      modelServerCommand,
      healthIntervalMs,
      maxReplicas: 4,
      drainTimeoutMs: 1_000,
      stopGraceMs: 2_000,
      gatewayUrl: () => "http://127.0.0.1:1",
      logger: silentLogger,
    });
    runtimes.push(r);
    return r;
  };

  /** Long-polls the status until `done` holds; returns every status seen, in order. */
  const statusesUntil = async (r: LocalRuntime, uid: string, done: (s: ReturnType<LocalRuntime["revisionStatus"]>) => boolean) => {
    const seen = [r.revisionStatus(uid, 1)];
    while (!done(seen.at(-1)!)) seen.push(await r.waitRevisionStatus(uid, 1, statusTag(seen.at(-1)!), 60_000));
    return seen;
  };

  beforeAll(async () => {
    dir = await tempDir("readiness");
    const model = await writeSampleModel(dir);
    weights = { path: model.path, sha256: model.sha256, bytes: model.bytes };
  });

  afterAll(async () => {
    await Promise.all(runtimes.map((r) => r.close()));
    await rm(dir, { recursive: true, force: true });
    expect([...pids].filter(isAlive)).toEqual([]);
  });

  it("the model server says it is listening, then ready, and it is ready when it says so", async () => {
    const tail = new LogTail();
    const proc = spawnReplicaProcess(
      requireBuiltModelServer(),
      ["--model", weights.path, "--name", "m", "--port", "0", "--threads", "1", "--exit-on-stdin-close"],
      tail,
    );
    if (proc.pid) pids.add(proc.pid);
    const order: string[] = [];
    const listening = proc.listening.then((port) => {
      order.push("listening");
      return port;
    });
    await proc.readySignal;
    order.push("ready");
    // Probed right after the signal, with no wait: already ready.
    expect(await probeReady(await listening, 2_000)).toBe(true);
    expect(order).toEqual(["listening", "ready"]);
    // The protocol lines are not log lines.
    expect(tail.text()).not.toMatch(/"event":"(listening|ready)"/);
    expect((await proc.terminate(2_000)).exitCode).toBe(0);
  });

  it("a replica is seen ready through its ready line alone (no periodic probe runs)", async () => {
    const r = runtime(requireBuiltModelServer(), NEVER_MS);
    const spec = revisionSpec({ uri: "file:///unused", deploymentUid: "dep-push", replicas: 1 });
    await r.startRevision(spec, weights);
    const seen = await statusesUntil(r, "dep-push", (s) => s.ready === 1 || s.exited !== undefined);
    for (const d of r.replicaDetails("dep-push", 1)) if (d.pid) pids.add(d.pid);
    expect(seen[0]).toMatchObject({ desired: 1, ready: 0, pending: 1 });
    expect(seen.at(-1)).toEqual({ desired: 1, ready: 1, pending: 0, restarts: 0 });
    await r.release("dep-push");
  });

  it("a model server without a ready line is still found ready by the periodic probe", async () => {
    const [node, main] = requireBuiltModelServer() as [string, string];
    expect(main).toBe(MODEL_SERVER_MAIN);
    const r = runtime([node, WITHOUT_READY_LINE, main], 100);
    const spec = revisionSpec({ uri: "file:///unused", deploymentUid: "dep-fallback", replicas: 1 });
    await r.startRevision(spec, weights);
    const seen = await statusesUntil(r, "dep-fallback", (s) => s.ready === 1 || s.exited !== undefined);
    for (const d of r.replicaDetails("dep-fallback", 1)) if (d.pid) pids.add(d.pid);
    expect(seen.at(-1)).toEqual({ desired: 1, ready: 1, pending: 0, restarts: 0 });
    await r.release("dep-fallback");
  });

  it("a replica that stops answering is found not ready by the periodic probe", async () => {
    const r = runtime(requireBuiltModelServer(), 100);
    const spec = revisionSpec({ uri: "file:///unused", deploymentUid: "dep-hung", replicas: 1 });
    await r.startRevision(spec, weights);
    await statusesUntil(r, "dep-hung", (s) => s.ready === 1);
    const [replica] = r.replicaDetails("dep-hung", 1);
    pids.add(replica!.pid!);
    process.kill(replica!.pid!, "SIGSTOP");
    try {
      const seen = await statusesUntil(r, "dep-hung", (s) => s.ready === 0);
      expect(seen.at(-1)).toMatchObject({ desired: 1, ready: 0, pending: 1 });
    } finally {
      process.kill(replica!.pid!, "SIGCONT");
    }
    await waitFor("the replica to be ready again", () => r.revisionStatus("dep-hung", 1).ready === 1);
    await r.release("dep-hung");
  });
});
