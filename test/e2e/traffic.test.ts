// Traffic for real: the all-in-one process on real Postgres and NATS, real
// model-server processes behind the gateway, and a steady stream of inference
// requests: a canary of a good revision advancing to 100 % with no failed
// request; a canary of a revision that fails a share of requests rolled back
// by the gateway's own counts; scale to zero and one wake for a burst; the
// autoscaler adding replicas under load.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DeploymentService } from "../../src/gen/modeldeploy/v1/deployment_service_pb.js";
import {
  DeploymentState,
  EventType,
  FailureReason,
  RolloutStrategy,
  TaskStatus,
  type Deployment,
  type DeploymentEvent,
  type Task,
} from "../../src/gen/modeldeploy/v1/resources_pb.js";
import { buildFlakyModel } from "../../src/onnx/flaky-model.js";
import { buildSampleModel } from "../../src/onnx/sample-model.js";
import { createTestDatabase, NATS_URL, waitFor, type TestDatabase } from "../helpers/services.js";
import { steadyLoad, taskFinished } from "../helpers/inference-load.js";
import { startSystem, type RunningSystem } from "../helpers/system.js";

let tdb: TestDatabase;
let sys: RunningSystem;
let dir: string;
let client: Client<typeof DeploymentService>;
const uri = (file: string) => pathToFileURL(path.join(dir, file)).href;
const auth = () => ({ headers: { authorization: `Bearer ${sys.apiKey}` } });
const model = (revision: string, file: string) => ({ name: "acme/tiny-linear", revision, uri: uri(file), task: "regression" });

beforeAll(async () => {
  tdb = await createTestDatabase({ migrate: false });
  dir = mkdtempSync(path.join(tmpdir(), "md-traffic-"));
  writeFileSync(path.join(dir, "v1.onnx"), buildSampleModel());
  // Different bytes, the same answers: a new revision's weights.
  writeFileSync(path.join(dir, "v2.onnx"), buildFlakyModel({ failAbove: 1e9 }));
  writeFileSync(path.join(dir, "flaky.onnx"), buildFlakyModel({ failAbove: 0.5 }));
  sys = await startSystem({ databaseUrl: tdb.url, natsUrl: NATS_URL });
  client = createClient(DeploymentService, createConnectTransport({ baseUrl: sys.httpUrl, httpVersion: "1.1" }));
});

afterAll(async () => {
  const output = sys?.output() ?? "";
  const code = await sys?.stop();
  rmSync(dir, { recursive: true, force: true });
  await tdb?.drop();
  expect(output).not.toContain("unhandled rejection");
  expect(code).toBe(0);
});

const IDS = { name: "ids", shape: [1], datatype: "INT64", data: [7] };

/** x[0] of the steady load's requests: half of them fail on the flaky model. */
const X0S = [0, 0.25, 0.75, 1];

const finished = (task: Task): Promise<Task> => taskFinished(client, auth, task);

const get = (name: string): Promise<Deployment> => client.getDeployment({ name }, auth());

function watch(name: string) {
  const abort = new AbortController();
  const seen: DeploymentEvent[] = [];
  const done = (async () => {
    for await (const e of client.watchDeployment({ name }, { ...auth(), signal: abort.signal })) seen.push(e);
  })().catch(() => {});
  return {
    seen,
    async stop() {
      abort.abort();
      await done;
      return seen;
    },
  };
}

async function running(scaling: {
  minReplicas: number;
  maxReplicas: number;
  targetInFlight?: number;
  scaleDownDelaySeconds?: number;
  wakeTimeoutSeconds?: number;
}) {
  const created = await client.createDeployment({ model: model("1", "v1.onnx"), resources: { cpu: 1, memory: "256MiB", threadCount: 1 }, scaling }, auth());
  expect((await finished(created.task!)).status).toBe(TaskStatus.COMPLETED);
  const d = await get(created.deployment!.name);
  return { name: d.name, uid: d.uid, endpoint: d.endpointUrl };
}

const splitOf = (d: Deployment | undefined) => (d?.traffic ?? []).map((t) => `${t.revision}:${t.percent}`).join(" ");

describe("canary rollouts under a steady stream of requests", () => {
  it("advances a healthy revision step by step to all traffic with no failed request", async () => {
    const { name, endpoint } = await running({ minReplicas: 1, maxReplicas: 1 });
    const events = watch(name);
    const load = steadyLoad(endpoint, { x0s: X0S });
    await waitFor("the first answers", async () => (load.answers.length >= 5 ? true : undefined), 30_000, 20);
    const update = await client.updateDeployment(
      {
        name,
        model: model("2", "v2.onnx"),
        rollout: {
          strategy: RolloutStrategy.CANARY,
          steps: [
            { percent: 30, pauseSeconds: 1 },
            { percent: 60, pauseSeconds: 3 },
          ],
          minRequests: 10,
        },
      },
      auth(),
    );
    expect((await finished(update.task!)).status).toBe(TaskStatus.COMPLETED);
    const answers = await load.stop();
    const seen = await events.stop();
    expect(answers.filter((a) => a.status !== 200)).toEqual([]);
    expect(new Set(answers.map((a) => a.revision))).toEqual(new Set(["1", "2"]));
    const splits = seen.map((e) => splitOf(e.deployment)).filter((s, i, all) => s !== all[i - 1]);
    expect(splits).toEqual(["1:100", "1:70 2:30", "1:40 2:60", "2:100"]);
    expect(seen.some((e) => e.task?.progress?.rolloutStep === 2 && e.task.progress.rolloutSteps === 2)).toBe(true);
    // While step 2 held (60 %), the revisions that answered match the split, within a wide binomial margin.
    const stepAt = (split: string) => timestampMs(seen.find((e) => splitOf(e.deployment) === split)!.time!);
    const during = answers.filter((a) => a.at > stepAt("1:40 2:60") + 100 && a.at < stepAt("2:100") - 100);
    expect(during.length).toBeGreaterThan(10);
    const share = during.filter((a) => a.revision === "2").length / during.length;
    expect(share).toBeGreaterThan(0.6 - 0.25);
    expect(share).toBeLessThan(0.6 + 0.25);
    expect(await get(name)).toMatchObject({ state: DeploymentState.RUNNING, servingRevision: 2 });
  });

  it("rolls a revision that fails too many requests back by itself, with the error rate, the requests and the step", async () => {
    const { name, endpoint } = await running({ minReplicas: 1, maxReplicas: 1 });
    const load = steadyLoad(endpoint, { x0s: X0S });
    await waitFor("the first answers", async () => (load.answers.length >= 5 ? true : undefined), 30_000, 20);
    const update = await client.updateDeployment(
      {
        name,
        model: model("2", "flaky.onnx"),
        rollout: { strategy: RolloutStrategy.CANARY, steps: [{ percent: 20, pauseSeconds: 1 }], maxErrorRate: 0.05, minRequests: 10 },
      },
      auth(),
    );
    const failed = await finished(update.task!);
    const after = load.answers.length;
    await waitFor("answers after the rollback", async () => (load.answers.length >= after + 10 ? true : undefined), 30_000, 20);
    const answers = await load.stop();
    expect(failed).toMatchObject({ status: TaskStatus.FAILED, rolledBack: true, failure: { reason: FailureReason.CANARY_FAILED } });
    expect(failed.failure!.message).toMatch(/^canary step 1\/1 \(20%\): \d+ of \d+ requests to revision 2 failed \(error rate \d+%/);
    // Only the canary's share failed, and only while it ran: none after the rollback.
    const bad = answers.filter((a) => a.status !== 200);
    expect(bad.length).toBeGreaterThan(0);
    expect(bad.every((a) => a.revision === "2")).toBe(true);
    expect(answers.slice(after).every((a) => a.status === 200 && a.revision === "1")).toBe(true);
    expect(await get(name)).toMatchObject({ state: DeploymentState.RUNNING, servingRevision: 1 });
    expect(splitOf(await get(name))).toBe("1:100");
  });
});

describe("autoscaling", () => {
  it("goes IDLE without requests, keeps its endpoint, and wakes one replica for a burst of requests that all succeed", async () => {
    const { name, uid, endpoint } = await running({ minReplicas: 0, maxReplicas: 2, scaleDownDelaySeconds: 1, wakeTimeoutSeconds: 60 });
    const events = watch(name);
    const idle = await waitFor("IDLE", async () => {
      const d = await get(name);
      return d.state === DeploymentState.IDLE ? d : undefined;
    });
    expect(idle.endpointUrl).toBe(endpoint);
    const before = events.seen.length;
    const body = JSON.stringify({ inputs: [{ name: "x", shape: [1, 4], datatype: "FP32", data: [0, 2, 3, 4] }, IDS] });
    const burst = await Promise.all(
      Array.from({ length: 10 }, async () => {
        const res = await fetch(`${endpoint}/infer`, { method: "POST", headers: { "content-type": "application/json" }, body });
        await res.arrayBuffer();
        return res.status;
      }),
    );
    expect(burst).toEqual(Array(10).fill(200));
    const replicas = (await (await fetch(`${sys.controlUrl}/v1/deployments/${encodeURIComponent(uid)}/revisions/1`)).json()) as { desired: number };
    expect(replicas.desired).toBe(1);
    // From the watch: with a 1 s delay the autoscaler may well send it back to IDLE soon after.
    await waitFor("RUNNING after the wake", async () =>
      events.seen.slice(before).some((e) => e.deployment!.state === DeploymentState.RUNNING) ? true : undefined,
    );
    const seen = await events.stop();
    const scaled = seen.slice(0, before).filter((e) => e.type === EventType.SCALED);
    expect(scaled.at(-1)!.message).toMatch(/no requests for \d+ s/);
    const wake = seen.slice(before - 1).map((e) => e.deployment!.state);
    expect(wake[0]).toBe(DeploymentState.IDLE);
    expect(wake.slice(0, wake.indexOf(DeploymentState.RUNNING)).every((s) => s === DeploymentState.IDLE)).toBe(true);
  });

  it("adds a replica under a burst of load and removes it once the load is gone, each change a SCALED event with its reason", async () => {
    const { name, endpoint } = await running({ minReplicas: 1, maxReplicas: 2, targetInFlight: 1, scaleDownDelaySeconds: 2 });
    const events = watch(name);
    const load = steadyLoad(endpoint, { concurrency: 8, x0s: X0S });
    const up = await waitFor("a second replica", async () => {
      const d = await get(name);
      return d.instances!.desired === 2 && d.instances!.ready === 2 ? d : undefined;
    });
    const answers = await load.stop();
    const down = await waitFor("back to one replica", async () => {
      const d = await get(name);
      return d.instances!.desired === 1 ? d : undefined;
    });
    const seen = await events.stop();
    expect(up.state).toBe(DeploymentState.RUNNING);
    expect(down.state).toBe(DeploymentState.RUNNING);
    expect(answers.filter((a) => a.status !== 200 || a.revision !== "1")).toEqual([]);
    const scaled = seen.filter((e) => e.type === EventType.SCALED).map((e) => e.message);
    expect(scaled[0]).toMatch(/^scaled to 2 replica\(s\): in-flight [\d.]+ per replica > 1 for \d+ s$/);
    expect(scaled.at(-1)).toMatch(/^scaled to 1 replica\(s\): in-flight [\d.]+ per replica < 1 for \d+ s$/);
  });
});
