// A weights URL that cannot be reached, for real: the all-in-one process on
// real Postgres and NATS, the local runtime's real HTTP download. The task
// retries the download inside itself (one queue delivery), shows each failure
// and the next try in its progress, and ends by its progress deadline with
// WEIGHTS_DOWNLOAD_FAILED and the cause; a server that answers 503 twice and
// then serves the model ends RUNNING after the retries.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DeploymentService } from "../../src/gen/modeldeploy/v1/deployment_service_pb.js";
import { DeploymentState, EventType, FailureReason, TaskStatus, type DeploymentEvent } from "../../src/gen/modeldeploy/v1/resources_pb.js";
import { buildSampleModel } from "../../src/onnx/sample-model.js";
import { createTestDatabase, NATS_URL, type TestDatabase } from "../helpers/services.js";
import { startSystem, type RunningSystem } from "../helpers/system.js";

let tdb: TestDatabase;
let sys: RunningSystem;
let client: Client<typeof DeploymentService>;
let flaky: http.Server;
let flakyUrl: string;
let flakyRequests = 0;
const auth = () => ({ headers: { authorization: `Bearer ${sys.apiKey}` } });

/** A port nothing listens on: bound, then closed. */
async function closedPort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** Every event of the deployment, from its first, until its task finishes. */
async function eventsUntilFinished(name: string): Promise<DeploymentEvent[]> {
  const events: DeploymentEvent[] = [];
  const ac = new AbortController();
  for await (const e of client.watchDeployment({ name, afterSequence: 0n }, { ...auth(), signal: ac.signal, timeoutMs: 90_000 })) {
    events.push(e);
    if (e.type === EventType.TASK_FINISHED) break;
  }
  ac.abort();
  return events;
}

beforeAll(async () => {
  tdb = await createTestDatabase({ migrate: false });
  const model = buildSampleModel();
  flaky = http.createServer((_req, res) => {
    flakyRequests++;
    if (flakyRequests <= 2) {
      res.writeHead(503, { "content-type": "text/plain" }).end("warming up");
      return;
    }
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(model.length) }).end(model);
  });
  await new Promise<void>((r) => flaky.listen(0, "127.0.0.1", r));
  flakyUrl = `http://127.0.0.1:${(flaky.address() as AddressInfo).port}/model.onnx`;
  sys = await startSystem({ databaseUrl: tdb.url, natsUrl: NATS_URL });
  client = createClient(DeploymentService, createConnectTransport({ baseUrl: sys.httpUrl, httpVersion: "1.1" }));
});

afterAll(async () => {
  const output = sys?.output() ?? "";
  const code = await sys?.stop();
  await new Promise<void>((r) => (flaky ? flaky.close(() => r()) : r()));
  await tdb?.drop();
  expect(output).not.toContain("unhandled rejection");
  expect(code).toBe(0);
});

describe("weights that cannot be downloaded", () => {
  it("retries inside the task and fails by the progress deadline with WEIGHTS_DOWNLOAD_FAILED and the cause", async () => {
    const uri = `http://127.0.0.1:${await closedPort()}/nothing.onnx`;
    const created = await client.createDeployment({ model: { name: "acme/unreachable", uri }, progressDeadlineSeconds: 4 }, auth());
    const name = created.deployment!.name;
    const events = await eventsUntilFinished(name);

    const task = await client.getDeploymentStatus({ name }, auth());
    expect(task.status).toBe(TaskStatus.FAILED);
    expect(task.attempt).toBe(1);
    expect(task.failure!.reason).toBe(FailureReason.WEIGHTS_DOWNLOAD_FAILED);
    expect(task.failure!.message).toContain(`cannot reach ${uri}: connection refused (ECONNREFUSED)`);
    expect(task.failure!.message).toContain("check that the model uri is right and reachable from the runtime host");
    // The last progress message promised a retry; the failure says it will not come.
    expect(task.progress!.message).toBe("failed (WEIGHTS_DOWNLOAD_FAILED); see the task's failure");
    // It ended by the deadline, which the failed tries did not extend.
    expect(task.endTime!.seconds).toBeLessThanOrEqual(task.progressDeadline!.seconds);

    const d = await client.getDeployment({ name }, auth());
    expect(d.state).toBe(DeploymentState.FAILED);
    expect(d.failure!.reason).toBe(FailureReason.WEIGHTS_DOWNLOAD_FAILED);

    const messages = events.map((e) => e.task?.progress?.message ?? "");
    const retries = messages.filter((m) => m.startsWith("download failed"));
    expect(retries.length).toBeGreaterThanOrEqual(1);
    expect(retries[0]).toMatch(
      new RegExp(`^download failed \\(try 1\\): cannot reach ${uri.replace(/[.]/g, "\\.")}: connection refused \\(ECONNREFUSED\\); retrying in \\d+ s$`),
    );
    expect(messages.filter((m) => m.startsWith("validating"))).toEqual(["validating (attempt 1)"]);
    // A handful of events, not dozens: created, started, fetching, one per retry, failed.
    expect(events.length).toBeLessThanOrEqual(4 + retries.length);
  });

  it("completes RUNNING when the weights server answers 503 twice and then serves the model", async () => {
    const created = await client.createDeployment({ model: { name: "acme/flaky", uri: flakyUrl }, progressDeadlineSeconds: 30 }, auth());
    const name = created.deployment!.name;
    const events = await eventsUntilFinished(name);

    const task = await client.getDeploymentStatus({ name }, auth());
    expect(task.status).toBe(TaskStatus.COMPLETED);
    expect(task.attempt).toBe(1);
    expect(flakyRequests).toBe(3);
    const retries = events.map((e) => e.task?.progress?.message ?? "").filter((m) => m.startsWith("download failed"));
    expect(retries).toHaveLength(2);
    expect(retries[0]).toMatch(/^download failed \(try 1\): .*answered 503 Service Unavailable; retrying in \d+ s$/);
    expect(retries[1]).toMatch(/^download failed \(try 2\): .*answered 503 Service Unavailable; retrying in \d+ s$/);

    const d = await client.getDeployment({ name }, auth());
    expect(d.state).toBe(DeploymentState.RUNNING);
    expect((await fetch(`${d.endpointUrl}/ready`)).status).toBe(200);
  });
});
