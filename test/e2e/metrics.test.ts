// /metrics of every part, scraped from the real processes after a deploy:
// `modeldeploy start` (API and worker series on the HTTP port, the runtime's
// on its control port) and a separate `modeldeploy worker` on its metrics
// port. Also: the log lines about a task name it, its deployment and workspace.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DeletionService } from "../../src/gen/modeldeploy/v1/deletion_service_pb.js";
import { DeploymentService } from "../../src/gen/modeldeploy/v1/deployment_service_pb.js";
import { DeploymentState, type Deployment } from "../../src/gen/modeldeploy/v1/resources_pb.js";
import { sampleCreateRequest, writeSampleModel } from "../helpers/onnx-model.js";
import { createTestDatabase, NATS_URL, waitFor, type TestDatabase } from "../helpers/services.js";
import { CLI, startSystem, type RunningSystem } from "../helpers/system.js";

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a Prometheus text exposition. */
function parse(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

/** The one sample of `name` whose labels include `labels`; undefined when there is none. */
function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (found.length > 1) throw new Error(`${name} ${JSON.stringify(labels)}: ${found.length} samples`);
  return found[0]?.value;
}

async function scrape(url: string): Promise<Sample[]> {
  const res = await fetch(url);
  expect(res.status, url).toBe(200);
  expect(res.headers.get("content-type")).toContain("text/plain");
  return parse(await res.text());
}

let tdb: TestDatabase;
let sys: RunningSystem;
let dir: string;
let client: Client<typeof DeploymentService>;
let deletions: Client<typeof DeletionService>;
let worker: ChildProcess | undefined;
const auth = () => ({ headers: { authorization: `Bearer ${sys.apiKey}` } });

beforeAll(async () => {
  tdb = await createTestDatabase({ migrate: false });
  dir = mkdtempSync(path.join(tmpdir(), "md-metrics-"));
  sys = await startSystem({ databaseUrl: tdb.url, natsUrl: NATS_URL, env: { LOG_LEVEL: "info" } });
  const transport = createConnectTransport({ baseUrl: sys.httpUrl, httpVersion: "1.1" });
  client = createClient(DeploymentService, transport);
  deletions = createClient(DeletionService, transport);
});

afterAll(async () => {
  if (worker && worker.exitCode === null) {
    const exited = new Promise((r) => worker!.once("exit", r));
    worker.kill("SIGTERM");
    await exited;
  }
  await sys?.stop();
  rmSync(dir, { recursive: true, force: true });
  await tdb?.drop();
});

async function settled(name: string): Promise<Deployment> {
  return waitFor(
    `${name} to settle`,
    async () => {
      const d = await client.getDeployment({ name }, auth());
      return d.activeTaskId === "" && d.state !== DeploymentState.PENDING ? d : undefined;
    },
    90_000,
    100,
  );
}

describe("metrics", () => {
  it("shows calls, tasks, backlog, watches, replicas and gateway traffic after a deploy", async () => {
    const model = await writeSampleModel(dir);
    const created = await client.createDeployment(sampleCreateRequest(model), auth());
    const name = created.deployment!.name;
    const d = await settled(name);
    expect(d.state).toBe(DeploymentState.RUNNING);

    // Gateway traffic: one inference, one request the model server refuses.
    const infer = (body: unknown) =>
      fetch(`${d.endpointUrl}/infer`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    const ok = await infer({
      inputs: [
        { name: "x", shape: [1, 4], datatype: "FP32", data: [1, 2, 3, 4] },
        { name: "ids", shape: [1], datatype: "INT64", data: [7] },
      ],
    });
    expect(ok.status).toBe(200);
    await ok.arrayBuffer();
    const bad = await infer({ inputs: [{ name: "x", shape: [1, 3], datatype: "FP32", data: [1, 2, 3] }] });
    expect(bad.status).toBe(400);
    await bad.arrayBuffer();

    // A watch open while we scrape.
    const watching = new AbortController();
    const watch = client.watchDeployment({ name }, { ...auth(), signal: watching.signal })[Symbol.asyncIterator]();
    await watch.next();

    // The API's port, without an API key: calls, watches, and the worker's series (one process).
    // A task run is observed as its handler ends, a moment after its last write.
    const taskRan = (kind: string) =>
      waitFor(`the ${kind} task's run counted`, async () => {
        const samples = await scrape(`${sys.httpUrl}/metrics`);
        return value(samples, "modeldeploy_task_duration_seconds_count", { kind, outcome: "succeeded" }) === 1 && samples;
      });
    const api = await taskRan("DEPLOY");
    const rpc = { service: "modeldeploy.v1.DeploymentService", method: "CreateDeployment", code: "ok" };
    expect(value(api, "modeldeploy_rpc_duration_seconds_count", rpc)).toBe(1);
    expect(value(api, "modeldeploy_rpc_duration_seconds_bucket", { ...rpc, le: "+Inf" })).toBe(1);
    expect(value(api, "modeldeploy_rpc_duration_seconds_sum", rpc)).toBeGreaterThan(0);
    expect(value(api, "modeldeploy_rpc_duration_seconds_count", { method: "GetDeployment", code: "ok" })).toBeGreaterThanOrEqual(1);
    expect(value(api, "modeldeploy_watch_streams_open", { method: "WatchDeployment" })).toBe(1);
    expect(value(api, "modeldeploy_task_duration_seconds_count", { kind: "DEPLOY", outcome: "succeeded" })).toBe(1);
    expect(value(api, "modeldeploy_tasks_pending")).toBe(0);
    expect(value(api, "modeldeploy_task_oldest_pending_age_seconds")).toBe(0);
    expect(value(api, "modeldeploy_queue_messages_pending")).toBe(0);
    expect(value(api, "modeldeploy_outbox_rows")).toBe(0);
    expect(value(api, "process_resident_memory_bytes")).toBeGreaterThan(0);
    // No workspace or deployment name on the unauthenticated port.
    expect(api.some((s) => Object.values(s.labels).includes(name) || Object.values(s.labels).includes("default"))).toBe(false);

    watching.abort();
    await watch.return?.().catch(() => undefined);
    await waitFor(
      "the watch to close",
      async () => value(await scrape(`${sys.httpUrl}/metrics`), "modeldeploy_watch_streams_open", { method: "WatchDeployment" }) === 0,
    );
    // A refused call is counted under its code.
    await expect(client.getDeployment({ name: "no-such-deployment" }, auth())).rejects.toThrow();
    expect(value(await scrape(`${sys.httpUrl}/metrics`), "modeldeploy_rpc_duration_seconds_count", { method: "GetDeployment", code: "not_found" })).toBe(1);

    // The runtime's control port: replicas and gateway traffic by deployment and revision.
    const target = { workspace: "default", deployment: name, revision: "1" };
    // A request is counted when its response closes, a moment after the client has it all.
    const runtime = await waitFor("the gateway's requests counted", async () => {
      const samples = await scrape(`${sys.controlUrl}/metrics`);
      return value(samples, "modeldeploy_gateway_request_duration_seconds_count", target) === 2 && samples;
    });
    expect(value(runtime, "modeldeploy_replicas", { state: "ready" })).toBe(1);
    expect(value(runtime, "modeldeploy_replicas", { state: "failed" })).toBe(0);
    expect(value(runtime, "modeldeploy_gateway_requests_total", { ...target, code: "200" })).toBe(1);
    expect(value(runtime, "modeldeploy_gateway_requests_total", { ...target, code: "400" })).toBe(1);
    expect(value(runtime, "modeldeploy_gateway_request_duration_seconds_count", target)).toBe(2);

    // Stopped (0 replicas): the gateway answers 503 itself, an error of reason "stopped".
    await client.updateDeployment({ name, scaling: { minReplicas: 0, maxReplicas: 0 } }, auth());
    expect((await settled(name)).state).toBe(DeploymentState.STOPPED);
    expect((await fetch(`${d.endpointUrl}/infer`, { method: "POST", body: "{}" })).status).toBe(503);
    const stopped = await waitFor("the refused request counted", async () => {
      const samples = await scrape(`${sys.controlUrl}/metrics`);
      return value(samples, "modeldeploy_gateway_requests_total", { ...target, code: "503" }) === 1 && samples;
    });
    expect(value(stopped, "modeldeploy_gateway_errors_total", { ...target, reason: "stopped" })).toBe(1);
    expect(value(stopped, "modeldeploy_gateway_requests_total", { ...target, code: "503" })).toBe(1);
    expect(value(stopped, "modeldeploy_replicas", { state: "ready" })).toBe(0);
    await taskRan("SCALE");

    // Deleted: its gateway series go with it.
    await deletions.deleteDeployment({ name }, auth());
    expect((await settled(name)).state).toBe(DeploymentState.DELETED);
    await waitFor("the gateway series to go", async () => !(await scrape(`${sys.controlUrl}/metrics`)).some((s) => s.labels["deployment"] === name));
    await taskRan("DELETE");

    // Every line about the task names it, its deployment, its workspace and the call's request id.
    const taskLines = sys
      .output()
      .split("\n")
      .filter((l) => l.startsWith("{") && l.includes(created.task!.id))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const call = taskLines.find((l) => l["msg"] === "rpc" && l["method"] === "CreateDeployment");
    expect(call).toMatchObject({ workspace: "default", deployment: name, taskId: created.task!.id, code: "ok", requestId: expect.any(String) });
    for (const msg of ["task started", "task finished"]) {
      const line = taskLines.find((l) => l["msg"] === msg);
      expect(line, msg).toMatchObject({ taskId: created.task!.id, deployment: name, workspace: "default", kind: "DEPLOY", requestId: call!["requestId"] });
    }
  }, 120_000);

  it("serves a separate worker's series on MODELDEPLOY_WORKER_METRICS_PORT", async () => {
    worker = spawn(process.execPath, [CLI, "worker"], {
      env: { ...sys.env, MODELDEPLOY_WORKER_METRICS_PORT: "0", MODELDEPLOY_RUNTIME_CONTROL_URL: sys.controlUrl, LOG_LEVEL: "info" },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let err = "";
    const url = await new Promise<string>((resolve, reject) => {
      worker!.stderr!.on("data", (d: Buffer) => {
        err += d.toString();
        const m = /"msg":"worker metrics listening".*?"url":"([^"]+)"/.exec(err);
        if (m) resolve(m[1]!);
      });
      worker!.once("exit", (code) => reject(new Error(`worker exited with ${code}: ${err}`)));
    });
    const samples = await scrape(url);
    expect(value(samples, "modeldeploy_tasks_pending")).toBe(0);
    expect(value(samples, "modeldeploy_queue_messages_pending")).toBe(0);
    expect(value(samples, "process_cpu_seconds_total")).toBeGreaterThan(0);
    // A worker's port has no API series.
    expect(samples.some((s) => s.name.startsWith("modeldeploy_rpc_"))).toBe(false);
    expect((await fetch(url.replace(/\/metrics$/, "/healthz"))).status).toBe(200);
  });
});
