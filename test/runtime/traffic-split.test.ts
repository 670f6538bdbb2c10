// Weighted traffic splits (canary steps) and the gateway's traffic counts, on
// a real agent driven through the LocalDriver (so the control API's paths are
// exercised too), with real model-server processes. The tests run in order
// and share one deployment with two revisions.
import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../src/log.js";
import type { DeploymentTraffic, RevisionSpec, RuntimeDriver, TrafficShare } from "../../src/runtime/driver.js";
import { createLocalRuntimeAgent, type LocalRuntimeAgent } from "../../src/runtime/local/agent.js";
import { revisionHeader } from "../../src/runtime/local/gateway.js";
import { createLocalDriver } from "../../src/runtime/local/local-driver.js";
import { pickShare, routeOf } from "../../src/runtime/local/traffic-split.js";
import type { ReplicaDetail } from "../../src/runtime/local/local-runtime.js";
import type { PersistedState } from "../../src/runtime/local/state-store.js";
import { holdRequest, type HeldRequest } from "../helpers/held-request.js";
import { writeSampleModel } from "../helpers/onnx-model.js";
import { inferBody, isAlive, rejection, requireBuiltModelServer, revisionSpec, tempDir, waitFor } from "./support.js";

/** Requests answered and failed per revision between two snapshots. */
function delta(before: DeploymentTraffic, after: DeploymentTraffic): Map<number, { requests: number; failures: number }> {
  const out = new Map<number, { requests: number; failures: number }>();
  for (const r of after.revisions) {
    const b = before.revisions.find((x) => x.revision === r.revision);
    const d = { requests: r.requests - (b?.requests ?? 0), failures: r.failures - (b?.failures ?? 0) };
    if (d.requests !== 0 || d.failures !== 0) out.set(r.revision, d);
  }
  return out;
}

describe("traffic split and counts", () => {
  let dir: string;
  let agent: LocalRuntimeAgent;
  let driver: RuntimeDriver;
  let v1: RevisionSpec;
  let v2: RevisionSpec;
  let endpoint: string;
  const pids = new Set<number>();
  const frozen = new Set<number>();
  const held: HeldRequest[] = [];

  const startAgent = (gatewayPort = 0, controlPort = 0) =>
    createLocalRuntimeAgent({
      dataDir: join(dir, "data"),
      gatewayPort,
      controlPort,
      modelServerCommand: requireBuiltModelServer(),
      // Each probe may take 1 s: a busy machine does not make a live replica look unready.
      healthIntervalMs: 500,
      maxReplicas: 4,
      drainTimeoutMs: 5_000,
      stopGraceMs: 2_000,
      logger: silentLogger,
    });

  const replicas = async (revision: number): Promise<ReplicaDetail[]> => {
    const res = await fetch(`${agent.controlUrl}/v1/deployments/${v1.deploymentUid}/revisions/${revision}`);
    const details = ((await res.json()) as { replicas: ReplicaDetail[] }).replicas;
    for (const r of details) if (r.pid) pids.add(r.pid);
    return details;
  };

  const stats = async (): Promise<DeploymentTraffic> => {
    const t = await driver.trafficStats(v1.deploymentUid);
    if (!t) throw new Error("no traffic stats");
    return t;
  };

  /** Sends n inference requests one after another; the status and serving revision of each. */
  const send = async (n: number): Promise<{ status: number; revision: number }[]> => {
    const seen: { status: number; revision: number }[] = [];
    for (let i = 0; i < n; i++) {
      const res = await fetch(`${endpoint}/infer`, { method: "POST", body: inferBody });
      await res.arrayBuffer();
      seen.push({ status: res.status, revision: Number(res.headers.get(revisionHeader)) });
    }
    return seen;
  };

  const tally = (seen: { status: number; revision: number }[]) => {
    const out = new Map<number, { requests: number; failures: number }>();
    for (const s of seen) {
      const t = out.get(s.revision) ?? { requests: 0, failures: 0 };
      t.requests++;
      if (s.status >= 500) t.failures++;
      out.set(s.revision, t);
    }
    return out;
  };

  const split = (shares: TrafficShare[], spec = v2) => driver.splitTraffic(spec, shares);

  beforeAll(async () => {
    dir = await tempDir("traffic-split");
    const model = await writeSampleModel(dir);
    v1 = revisionSpec({ uri: pathToFileURL(model.path).href, sha256: model.sha256, replicas: 1, deploymentUid: "dep-split", deploymentName: "split-abc" });
    v2 = { ...v1, revision: 2 };
    agent = await startAgent();
    driver = createLocalDriver({ controlUrl: agent.controlUrl, dataDir: join(dir, "data"), logger: silentLogger });
    const weights = await driver.prepareWeights(v1, () => {});
    expect(await driver.trafficStats(v1.deploymentUid)).toBeUndefined();
    await driver.startRevision(v1, weights);
    await driver.startRevision(v2, weights);
    for (const s of [v1, v2]) {
      await waitFor(`revision ${s.revision} ready`, async () => (await driver.revisionStatus(s.deploymentUid, s.revision)).ready === 1);
      await replicas(s.revision);
    }
    endpoint = await driver.switchTraffic(v1);
  });

  afterAll(async () => {
    for (const r of held) r.destroy();
    for (const pid of frozen) if (isAlive(pid)) process.kill(pid, "SIGCONT");
    await agent?.close();
    await driver?.close();
    await rm(dir, { recursive: true, force: true });
    expect([...pids].filter(isAlive)).toEqual([]);
  });

  it("refuses an invalid split", async () => {
    const invalid: TrafficShare[][] = [
      [{ revision: 1, percent: 50 }],
      [
        { revision: 1, percent: 30 },
        { revision: 2, percent: 60 },
      ],
      [
        { revision: 1, percent: 30.5 },
        { revision: 2, percent: 69.5 },
      ],
      [
        { revision: 1, percent: 50 },
        { revision: 7, percent: 50 },
      ],
      [
        { revision: 1, percent: 50 },
        { revision: 1, percent: 50 },
      ],
      [
        { revision: 1, percent: 130 },
        { revision: 2, percent: -30 },
      ],
      [
        { revision: 1, percent: 25 },
        { revision: 2, percent: 25 },
        { revision: 3, percent: 25 },
        { revision: 4, percent: 25 },
      ],
      [],
    ];
    for (const shares of invalid) {
      const err = await rejection(split(shares));
      expect(err.reason).toBe("INVALID_SPEC");
      expect(err.message).toMatch(/invalid traffic split/);
    }
    // Nothing changed: all of it still goes to revision 1.
    expect(new Set((await send(5)).map((s) => s.revision))).toEqual(new Set([1]));
  });

  it("splits requests by weight, and counts what the client saw per revision", async () => {
    expect(
      await split([
        { revision: 1, percent: 30 },
        { revision: 2, percent: 70 },
      ]),
    ).toBe(endpoint);
    const before = await stats();
    const seen = await send(200);
    const after = await stats();

    expect(seen.every((s) => s.status === 200)).toBe(true);
    expect(new Set(seen.map((s) => s.revision))).toEqual(new Set([1, 2]));
    // 70 % of 200: standard deviation ≈ 3.2 points, so ±15 points never flakes.
    const toNew = seen.filter((s) => s.revision === 2).length / seen.length;
    expect(toNew).toBeGreaterThan(0.55);
    expect(toNew).toBeLessThan(0.85);

    expect(delta(before, after)).toEqual(tally(seen));
    expect(after.arrivals - before.arrivals).toBe(200);
    expect(after.inFlight).toBe(0);
    expect(after.epoch).toBe(before.epoch);
    expect(after.revisions.map((r) => r.revision)).toEqual([1, 2]);
    // During a split the serving revision is the one that served before it.
    expect((await driver.observe())[0]).toMatchObject({ servingRevision: 1, endpointUrl: endpoint });
  });

  it("returns all traffic to the old revision at once", async () => {
    await split([{ revision: 1, percent: 100 }]);
    expect(new Set((await send(30)).map((s) => s.revision))).toEqual(new Set([1]));
    expect((await driver.observe())[0]?.servingRevision).toBe(1);
  });

  it("sends a revision's share to the other while it has no ready replica", async () => {
    await split([
      { revision: 1, percent: 50 },
      { revision: 2, percent: 50 },
    ]);
    const [replica] = await replicas(2);
    process.kill(replica!.pid!, "SIGSTOP");
    frozen.add(replica!.pid!);
    await waitFor("revision 2's replica to fail its probe", async () => (await replicas(2))[0]?.ready === false);
    const before = await stats();
    const seen = await send(30);
    expect(seen.every((s) => s.status === 200 && s.revision === 1)).toBe(true);
    // The fallback itself is no failure.
    expect(delta(before, await stats())).toEqual(new Map([[1, { requests: 30, failures: 0 }]]));
  });

  it("counts the gateway's 503s as failures of the revision that had no ready replica", async () => {
    await split([{ revision: 2, percent: 100 }]);
    const before = await stats();
    const seen = await send(5);
    expect(seen).toEqual(Array.from({ length: 5 }, () => ({ status: 503, revision: 2 })));
    expect(delta(before, await stats())).toEqual(new Map([[2, { requests: 5, failures: 5 }]]));

    const [replica] = await replicas(2);
    process.kill(replica!.pid!, "SIGCONT");
    frozen.delete(replica!.pid!);
    await waitFor("revision 2 ready again", async () => (await replicas(2))[0]?.ready === true);
    expect(new Set((await send(5)).map((s) => s.status))).toEqual(new Set([200]));
  });

  it("counts a request whose replica is killed under it as a failure", async () => {
    // Half sent: in flight in the gateway, its replica already chosen.
    const request = holdRequest(`${endpoint}/infer`, inferBody);
    held.push(request);
    await waitFor("the request in flight", async () => (await replicas(2))[0]?.inFlight === 1);
    const before = await stats();
    const [replica] = await replicas(2);
    process.kill(replica!.pid!, "SIGKILL");
    await waitFor("the replica to be gone", () => !isAlive(replica!.pid!));
    const answered = await request.finish();
    expect(answered.status).toBe(502);
    expect(delta(before, await stats())).toEqual(new Map([[2, { requests: 1, failures: 1 }]]));
    await waitFor("revision 2 restarted and ready", async () => (await driver.revisionStatus(v2.deploymentUid, 2)).ready === 1);
    await replicas(2);
  });

  it("integrates requests in flight over time", async () => {
    const start = await stats();
    expect(start.inFlight).toBe(0);
    const requests = [0, 1, 2].map(() => holdRequest(`${endpoint}/infer`, inferBody));
    held.push(...requests);
    const holding = await waitFor("3 requests in flight", async () => {
      const t = await stats();
      return t.inFlight === 3 ? t : undefined;
    });
    // It grows at 3 request·seconds per second while they are held.
    await waitFor("the integral to grow", async () => (await stats()).inFlightSeconds > holding.inFlightSeconds + 0.3);
    for (const r of await Promise.all(requests.map((q) => q.finish()))) expect(r.status).toBe(200);
    const done = await waitFor("nothing in flight", async () => {
      const t = await stats();
      return t.inFlight === 0 ? t : undefined;
    });
    expect(done.arrivals - start.arrivals).toBe(3);
    // Nothing in flight: it stays where it is.
    expect((await stats()).inFlightSeconds).toBe(done.inFlightSeconds);
  });

  it("keeps a split across an agent restart; the counts start again under a new epoch", async () => {
    await split([{ revision: 1, percent: 100 }]);
    await split([
      { revision: 1, percent: 40 },
      { revision: 2, percent: 60 },
    ]);
    const before = await stats();
    const gatewayPort = Number(new URL(agent.gatewayUrl).port);
    const controlPort = Number(new URL(agent.controlUrl).port);
    await agent.close();
    const state = JSON.parse(await readFile(join(dir, "data", "runtime-state.json"), "utf8")) as PersistedState;
    expect(state.routes).toEqual([
      {
        deploymentUid: v1.deploymentUid,
        workspace: v1.workspace,
        deploymentName: v1.deploymentName,
        revision: 1,
        shares: [
          { revision: 1, percent: 40 },
          { revision: 2, percent: 60 },
        ],
      },
    ]);

    agent = await startAgent(gatewayPort, controlPort);
    for (const n of [1, 2]) {
      await waitFor(`revision ${n} ready again`, async () => (await driver.revisionStatus(v1.deploymentUid, n)).ready === 1);
      await replicas(n);
    }
    const fresh = await stats();
    expect(fresh.epoch).not.toBe(before.epoch);
    expect(fresh).toMatchObject({ arrivals: 0, inFlight: 0, inFlightSeconds: 0 });
    expect(fresh.revisions).toEqual([
      { revision: 1, requests: 0, failures: 0 },
      { revision: 2, requests: 0, failures: 0 },
    ]);
    // 60 requests at 40/60: both show (a miss has odds below 1e-13).
    const seen = await send(60);
    expect(new Set(seen.map((s) => s.revision))).toEqual(new Set([1, 2]));
    expect(delta(fresh, await stats())).toEqual(tally(seen));
  });

  it("drops the counts on release", async () => {
    await driver.release(v1.deploymentUid);
    expect(await driver.trafficStats(v1.deploymentUid)).toBeUndefined();
    expect((await rejection(split([{ revision: 1, percent: 100 }]))).reason).toBe("INVALID_SPEC");
  });
});

describe("the choice of a share", () => {
  const shares: TrafficShare[] = [
    { revision: 1, percent: 30 },
    { revision: 3, percent: 0 },
    { revision: 2, percent: 70 },
  ];

  it("takes each share for its weight's part of [0, 1), never one of 0 %", () => {
    expect(pickShare(shares, 0)?.revision).toBe(1);
    expect(pickShare(shares, 0.2999)?.revision).toBe(1);
    expect(pickShare(shares, 0.3)?.revision).toBe(2);
    expect(pickShare(shares, 0.999999)?.revision).toBe(2);
    expect(pickShare([{ revision: 4, percent: 0 }], 0.5)).toBeUndefined();
  });

  it("keeps the serving revision during a split; one share of 100 % switches", () => {
    const spec = revisionSpec({ uri: "file:///unused", revision: 2 });
    const route = { deploymentUid: spec.deploymentUid, workspace: spec.workspace, deploymentName: spec.deploymentName };
    expect(routeOf(spec, shares, { ...route, revision: 1 })).toEqual({ ...route, revision: 1, shares });
    // A first route: the larger share that is not being rolled out.
    expect(routeOf(spec, shares, undefined)).toEqual({ ...route, revision: 1, shares });
    expect(routeOf(spec, [{ revision: 2, percent: 100 }], { ...route, revision: 1, shares })).toEqual({ ...route, revision: 2 });
  });
});
