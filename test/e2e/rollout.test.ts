// The lifecycle for real: the all-in-one process on real Postgres and NATS,
// real model-server processes, and a steady stream of inference requests
// through the gateway while the deployment is updated, fails an update,
// rolls back, scales, stops, resumes and has a hanging update cancelled.
// No request may fail while a revision serves.
import http from "node:http";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import type { AddressInfo, Socket } from "node:net";
import { tmpdir, totalmem } from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DeletionService } from "../../src/gen/modeldeploy/v1/deletion_service_pb.js";
import { DeploymentService } from "../../src/gen/modeldeploy/v1/deployment_service_pb.js";
import {
  DeploymentState,
  EventType,
  FailureReason,
  TaskKind,
  TaskStatus,
  type Deployment,
  type DeploymentEvent,
  type Task,
} from "../../src/gen/modeldeploy/v1/resources_pb.js";
import { errorInfoOf } from "../../src/api/errors.js";
import { buildSampleModel } from "../../src/onnx/sample-model.js";
import { createTestDatabase, NATS_URL, waitFor, type TestDatabase } from "../helpers/services.js";
import { steadyLoad, taskFinished } from "../helpers/inference-load.js";
import { startSystem, type RunningSystem } from "../helpers/system.js";

let tdb: TestDatabase;
let sys: RunningSystem;
let dir: string;
let client: Client<typeof DeploymentService>;
let deletions: Client<typeof DeletionService>;
let hanging: http.Server;
let hangingUrl: string;
const hangingSockets = new Set<Socket>();
const uri = (file: string) => pathToFileURL(path.join(dir, file)).href;
const auth = () => ({ headers: { authorization: `Bearer ${sys.apiKey}` } });

beforeAll(async () => {
  tdb = await createTestDatabase({ migrate: false });
  dir = mkdtempSync(path.join(tmpdir(), "md-rollout-"));
  const bytes = buildSampleModel();
  writeFileSync(path.join(dir, "v1.onnx"), bytes);
  writeFileSync(path.join(dir, "v2.onnx"), bytes);
  writeFileSync(path.join(dir, "broken.onnx"), "this is not an onnx file");
  // Weights that never finish downloading: a rollout that hangs until cancelled.
  hanging = http.createServer((_req, res) => {
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": "1000000" });
    res.write(Buffer.alloc(1000));
  });
  hanging.on("connection", (s: Socket) => {
    hangingSockets.add(s);
    s.on("close", () => hangingSockets.delete(s));
  });
  await new Promise<void>((r) => hanging.listen(0, "127.0.0.1", r));
  hangingUrl = `http://127.0.0.1:${(hanging.address() as AddressInfo).port}/slow.onnx`;
  sys = await startSystem({ databaseUrl: tdb.url, natsUrl: NATS_URL, env: { MODELDEPLOY_HOST_CAPACITY_CACHE_MS: "0" } });
  const transport = createConnectTransport({ baseUrl: sys.httpUrl, httpVersion: "1.1" });
  client = createClient(DeploymentService, transport);
  deletions = createClient(DeletionService, transport);
});

afterAll(async () => {
  const output = sys?.output() ?? "";
  const code = await sys?.stop();
  for (const s of hangingSockets) s.destroy();
  await new Promise<void>((r) => (hanging ? hanging.close(() => r()) : r()));
  rmSync(dir, { recursive: true, force: true });
  await tdb?.drop();
  expect(output).not.toContain("unhandled rejection");
  expect(code).toBe(0);
});

const finished = (task: Task): Promise<Task> => taskFinished(client, auth, task, 90_000);

const get = (name: string): Promise<Deployment> => client.getDeployment({ name }, auth());

async function replicasOf(uid: string, revision: number): Promise<{ desired: number; ready: number }> {
  const res = await fetch(`${sys.controlUrl}/v1/deployments/${encodeURIComponent(uid)}/revisions/${revision}`);
  return (await res.json()) as { desired: number; ready: number };
}

describe("green rollouts under a steady stream of requests", () => {
  it("updates, survives a failing update, rolls back, scales, stops, resumes and cancels, never failing a request while a revision serves", async () => {
    // The workspace watch follows all of it.
    const watchAbort = new AbortController();
    const seen: DeploymentEvent[] = [];
    const watching = (async () => {
      for await (const e of client.watchDeployments({}, { ...auth(), signal: watchAbort.signal })) seen.push(e);
    })().catch(() => {});
    const created = await client.createDeployment(
      {
        model: { name: "acme/tiny-linear", revision: "1", uri: uri("v1.onnx"), task: "regression" },
        resources: { cpu: 1, memory: "256MiB", threadCount: 1 },
        scaling: { minReplicas: 1, maxReplicas: 1 },
      },
      auth(),
    );
    const name = created.deployment!.name;
    const uid = created.deployment!.uid;
    expect((await finished(created.task!)).status).toBe(TaskStatus.COMPLETED);
    const endpoint = (await get(name)).endpointUrl;

    // 1. A new model: revision 2 starts beside 1, traffic switches, 1 drains.
    let load = steadyLoad(endpoint);
    await waitFor("the first answers", async () => (load.answers.length >= 5 ? true : undefined), 30_000, 20);
    const v2 = await client.updateDeployment({ name, model: { name: "acme/tiny-linear", revision: "2", uri: uri("v2.onnx"), task: "regression" } }, auth());
    expect(v2.task).toMatchObject({ kind: TaskKind.UPDATE, revision: 2 });
    expect(v2.deployment!.state).toBe(DeploymentState.UPDATING);
    expect((await finished(v2.task!)).status).toBe(TaskStatus.COMPLETED);
    const switchedAt = performance.now();
    await waitFor("answers after the switch", async () => (load.answers.filter((a) => a.startedAt > switchedAt).length >= 5 ? true : undefined), 30_000, 20);
    let answers = await load.stop();
    expect(answers.filter((a) => a.status !== 200)).toEqual([]);
    expect(new Set(answers.map((a) => a.revision))).toEqual(new Set(["1", "2"]));
    expect(answers.filter((a) => a.startedAt > switchedAt).every((a) => a.revision === "2")).toBe(true);
    expect(await get(name)).toMatchObject({ state: DeploymentState.RUNNING, servingRevision: 2, targetRevision: 2, model: { revision: "2" } });
    await waitFor("revision 1 stopped", async () => ((await replicasOf(uid, 1)).desired === 0 ? true : undefined), 30_000, 50);

    // 2. A revision whose server cannot start: revision 2 keeps serving, the task says why.
    load = steadyLoad(endpoint);
    const broken = await client.updateDeployment(
      { name, model: { name: "acme/tiny-linear", revision: "3", uri: uri("broken.onnx"), task: "regression" } },
      auth(),
    );
    const failed = await finished(broken.task!);
    answers = await load.stop();
    expect(failed).toMatchObject({ status: TaskStatus.FAILED, rolledBack: true, failure: { reason: FailureReason.SERVER_EXITED } });
    expect(failed.failure!.logTail).not.toBe("");
    expect(answers.filter((a) => a.status !== 200)).toEqual([]);
    expect(answers.every((a) => a.revision === "2")).toBe(true);
    expect(await get(name)).toMatchObject({ state: DeploymentState.RUNNING, servingRevision: 2, targetRevision: 2, activeTaskId: "" });
    expect((await replicasOf(uid, 3)).desired).toBe(0);

    // 3. Roll back to the revision that served before 2 (1; 3 never served): a new revision 4.
    load = steadyLoad(endpoint);
    const back = await client.rollbackDeployment({ name }, auth());
    expect(back.task).toMatchObject({ kind: TaskKind.ROLLBACK, revision: 4 });
    expect((await finished(back.task!)).status).toBe(TaskStatus.COMPLETED);
    answers = await load.stop();
    expect(answers.filter((a) => a.status !== 200)).toEqual([]);
    expect(await get(name)).toMatchObject({ servingRevision: 4, model: { revision: "1", uri: uri("v1.onnx") } });
    const revisions = await client.listDeploymentRevisions({ name }, auth());
    expect(revisions.revisions.map((r) => [r.number, r.model!.revision])).toEqual([
      [1, "1"],
      [2, "2"],
      [3, "3"],
      [4, "1"],
    ]);

    // 4. Scale to 2 replicas of the same revision, then stop and resume.
    const scaled = await client.updateDeployment({ name, scaling: { minReplicas: 2, maxReplicas: 2 } }, auth());
    expect(scaled.task!.kind).toBe(TaskKind.SCALE);
    expect((await finished(scaled.task!)).status).toBe(TaskStatus.COMPLETED);
    expect(await get(name)).toMatchObject({ state: DeploymentState.RUNNING, servingRevision: 4, instances: { desired: 2, ready: 2 } });
    const stopped = await client.updateDeployment({ name, scaling: { minReplicas: 0, maxReplicas: 0 } }, auth());
    expect((await finished(stopped.task!)).status).toBe(TaskStatus.COMPLETED);
    expect(await get(name)).toMatchObject({ state: DeploymentState.STOPPED, endpointUrl: "" });
    const whileStopped = await fetch(`${endpoint}/infer`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    expect(whileStopped.status).toBe(503);
    expect(((await whileStopped.json()) as { error: string }).error).toContain(`modeldeploy scale ${name} --replicas 1`);
    const resumed = await client.updateDeployment({ name, scaling: { minReplicas: 1, maxReplicas: 1 } }, auth());
    expect((await finished(resumed.task!)).status).toBe(TaskStatus.COMPLETED);
    expect(await get(name)).toMatchObject({ state: DeploymentState.RUNNING, endpointUrl: endpoint, instances: { ready: 1 } });

    // 5. An update whose weights never finish downloading, cancelled while it runs.
    load = steadyLoad(endpoint);
    const stuck = await client.updateDeployment({ name, model: { name: "acme/tiny-linear", revision: "5", uri: hangingUrl, task: "regression" } }, auth());
    await waitFor(
      "the hanging download to start",
      async () => {
        const t = await client.getDeploymentTask({ taskId: stuck.task!.id }, auth());
        return t.status === TaskStatus.RUNNING ? t : undefined;
      },
      30_000,
      50,
    );
    const cancelled = await client.cancelDeploymentTask({ taskId: stuck.task!.id }, auth());
    expect(cancelled).toMatchObject({ status: TaskStatus.CANCELLED, rolledBack: true, failure: { reason: FailureReason.CANCELLED } });
    expect(await get(name)).toMatchObject({ state: DeploymentState.RUNNING, servingRevision: 4, activeTaskId: "" });
    // The worker running it stops the download it was stuck in (not at the end of a step that never ends).
    await waitFor("the cancelled download to be dropped", async () => (hangingSockets.size === 0 ? true : undefined), 60_000, 50);
    // The next change is accepted at once and runs.
    const after = await client.updateDeployment({ name, scaling: { minReplicas: 2, maxReplicas: 2 } }, auth());
    expect((await finished(after.task!)).status).toBe(TaskStatus.COMPLETED);
    answers = await load.stop();
    expect(answers.filter((a) => a.status !== 200)).toEqual([]);
    expect(answers.every((a) => a.revision === "4")).toBe(true);

    // 6. A stalled download on its progress deadline: the update fails, revision 4 keeps serving.
    const stalled = await client.updateDeployment(
      { name, model: { name: "acme/tiny-linear", revision: "6", uri: hangingUrl, task: "regression" }, progressDeadlineSeconds: 3 },
      auth(),
    );
    const timedOut = await finished(stalled.task!);
    expect(timedOut).toMatchObject({ status: TaskStatus.FAILED, rolledBack: true, failure: { reason: FailureReason.PROGRESS_DEADLINE_EXCEEDED } });
    const final = await get(name);
    expect(final).toMatchObject({ state: DeploymentState.RUNNING, servingRevision: 4, activeTaskId: "" });

    // The workspace watch saw every change of it, in order, and every task end.
    await waitFor(
      "the workspace watch to catch up",
      async () => (seen.some((e) => e.deployment?.uid === uid && e.sequence === final.sequence) ? true : undefined),
      30_000,
      50,
    );
    watchAbort.abort();
    await watching;
    const mine = seen.filter((e) => e.deployment?.uid === uid);
    const sequences = mine.map((e) => Number(e.sequence));
    expect(sequences).toEqual(sequences.map((_, i) => sequences[0]! + i));
    const ended = new Set(mine.filter((e) => e.type === EventType.TASK_FINISHED).map((e) => e.task!.id));
    for (const t of [created.task!, v2.task!, broken.task!, back.task!, scaled.task!, stopped.task!, resumed.task!, stuck.task!, after.task!, stalled.task!])
      expect(ended.has(t.id)).toBe(true);
    const states = new Set(mine.map((e) => e.deployment!.state));
    for (const st of [DeploymentState.UPDATING, DeploymentState.ROLLING_BACK, DeploymentState.STOPPED, DeploymentState.RUNNING])
      expect(states.has(st)).toBe(true);
    // Resumed from the middle, it gives the same tail.
    const middle = mine[Math.floor(mine.length / 2)]!;
    const tail: DeploymentEvent[] = [];
    const resumeAbort = new AbortController();
    for await (const e of client.watchDeployments({ afterCursor: middle.cursor }, { ...auth(), signal: resumeAbort.signal })) {
      if (e.deployment?.uid === uid) tail.push(e);
      if (e.deployment?.uid === uid && e.sequence === final.sequence) break;
    }
    expect(tail.map((e) => Number(e.sequence))).toEqual(sequences.slice(sequences.indexOf(Number(middle.sequence)) + 1));
  });

  it("deletes a deployment while its first deploy is still downloading: the deploy is cancelled, the download dropped", async () => {
    const created = await client.createDeployment(
      {
        model: { name: "acme/tiny-linear", revision: "1", uri: hangingUrl, task: "regression" },
        resources: { cpu: 1, memory: "256MiB", threadCount: 1 },
        scaling: { minReplicas: 1, maxReplicas: 1 },
      },
      auth(),
    );
    await waitFor(
      "the download to start",
      async () => {
        const t = await client.getDeploymentTask({ taskId: created.task!.id }, auth());
        return t.status === TaskStatus.RUNNING && hangingSockets.size > 0 ? t : undefined;
      },
      30_000,
      50,
    );
    const deletion = await deletions.deleteDeployment({ name: created.deployment!.name }, auth());
    expect((await finished(deletion)).status).toBe(TaskStatus.COMPLETED);
    expect((await client.getDeploymentTask({ taskId: created.task!.id }, auth())).status).toBe(TaskStatus.CANCELLED);
    expect((await get(created.deployment!.name)).state).toBe(DeploymentState.DELETED);
    await waitFor("the deploy's download to be dropped", async () => (hangingSockets.size === 0 ? true : undefined), 60_000, 50);
  });

  it("refuses at the call what this host cannot hold: the worker reports the host's real memory", async () => {
    const row = await waitFor("the worker's capacity report", () => tdb.db.selectFrom("host_capacity").selectAll().executeTakeFirst(), 30_000, 50);
    expect(Number(row.memory_bytes)).toBe(totalmem());
    const err = await client
      .createDeployment(
        {
          model: { name: "acme/tiny-linear", revision: "1", uri: uri("v1.onnx"), task: "regression" },
          resources: { cpu: 1, memory: "1Gi", threadCount: 1 },
          scaling: { minReplicas: 100, maxReplicas: 100 },
        },
        auth(),
      )
      .then(
        () => undefined,
        (e: unknown) => e as ConnectError,
      );
    expect(err?.code).toBe(Code.ResourceExhausted);
    expect(errorInfoOf(err)?.reason).toBe("MEMORY_CAPACITY_EXHAUSTED");
  });

  it("fails a first deploy whose download stalls at its deadline, leaving nothing running", async () => {
    const created = await client.createDeployment(
      {
        model: { name: "acme/tiny-linear", revision: "1", uri: hangingUrl, task: "regression" },
        resources: { cpu: 1, memory: "256MiB", threadCount: 1 },
        scaling: { minReplicas: 1, maxReplicas: 1 },
        progressDeadlineSeconds: 3,
      },
      auth(),
    );
    const task = await finished(created.task!);
    expect(task).toMatchObject({ status: TaskStatus.FAILED, rolledBack: false, failure: { reason: FailureReason.PROGRESS_DEADLINE_EXCEEDED } });
    expect(task.failure!.message).toContain("progressDeadlineSeconds");
    expect(await get(created.deployment!.name)).toMatchObject({ state: DeploymentState.FAILED, endpointUrl: "", activeTaskId: "" });
  });
});
