// One trace from the API call to RUNNING: the roles as `modeldeploy start`
// wires them (API, worker, local runtime agent with real model servers), in
// this process, on real Postgres and JetStream, with the spans kept by an
// in-memory exporter. Needs `npm run build` (the model server runs from dist/).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { SpanKind } from "@opentelemetry/api";
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startApiRole, type ApiRole } from "../../src/app/api-role.js";
import type { Infrastructure } from "../../src/app/infrastructure.js";
import { createDriver, startRuntimeAgent } from "../../src/app/runtime-role.js";
import { startWorkerRole, type WorkerRole } from "../../src/app/worker-role.js";
import { loadConfig } from "../../src/config.js";
import { createApiKey } from "../../src/db/api-keys.js";
import { SCOPES } from "../../src/domain/types.js";
import { DeploymentService } from "../../src/gen/modeldeploy/v1/deployment_service_pb.js";
import { DeploymentState } from "../../src/gen/modeldeploy/v1/resources_pb.js";
import { silentLogger } from "../../src/log.js";
import type { LocalRuntimeAgent } from "../../src/runtime/local/agent.js";
import type { RuntimeDriver } from "../../src/runtime/driver.js";
import { installTracing, type InstalledTracing } from "../../src/telemetry/tracing-sdk.js";
import { sampleCreateRequest, writeSampleModel } from "../helpers/onnx-model.js";
import { createTestDatabase, createTestQueue, NATS_URL, waitFor, type TestDatabase, type TestQueue } from "../helpers/services.js";
import { requireBuiltModelServer } from "../runtime/support.js";

const exporter = new InMemorySpanExporter();
let tracing: InstalledTracing;
let tdb: TestDatabase;
let tq: TestQueue;
let dir: string;
let agent: LocalRuntimeAgent;
let driver: RuntimeDriver;
let api: ApiRole;
let worker: WorkerRole;

beforeAll(async () => {
  requireBuiltModelServer();
  tracing = installTracing(new SimpleSpanProcessor(exporter), "modeldeploy-test");
  tdb = await createTestDatabase();
  tq = await createTestQueue();
  dir = mkdtempSync(path.join(tmpdir(), "md-tracing-"));
  const config = loadConfig({
    DATABASE_URL: tdb.url,
    NATS_URL,
    MODELDEPLOY_NATS_STREAM: tq.stream,
    MODELDEPLOY_NATS_PREFIX: tq.prefix,
    MODELDEPLOY_DATA_DIR: dir,
    MODELDEPLOY_GRPC_PORT: "0",
    MODELDEPLOY_HTTP_PORT: "0",
    MODELDEPLOY_GATEWAY_PORT: "0",
    MODELDEPLOY_RUNTIME_CONTROL_PORT: "0",
    MODELDEPLOY_HEALTH_POLL_MS: "100",
  });
  const infra: Infrastructure = {
    db: tdb.db,
    nc: tq.nc,
    queue: tq.queue,
    databaseUrl: tdb.url,
    natsUrl: NATS_URL,
    embedded: { postgres: false, nats: false },
    close: async () => {},
  };
  agent = await startRuntimeAgent(config, silentLogger);
  driver = createDriver(config, silentLogger, agent);
  api = await startApiRole(config, infra, silentLogger, undefined);
  worker = await startWorkerRole(config, infra, driver, silentLogger, undefined);
});

afterAll(async () => {
  await api?.stop(1000);
  await worker?.stop(5000);
  await driver?.close();
  await agent?.close();
  await tracing?.shutdown();
  await tq?.drop();
  await tdb?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const parentOf = (s: ReadableSpan) => s.parentSpanContext?.spanId;
const idOf = (s: ReadableSpan) => s.spanContext().spanId;

describe("tracing", () => {
  it("links the API call, the queue message, the worker's task and the runtime's calls in one trace", async () => {
    const model = await writeSampleModel(dir);
    const { key } = await createApiKey(tdb.db, { workspace: "traced", principal: "alice", scopes: [...SCOPES] });
    const client = createClient(DeploymentService, createConnectTransport({ baseUrl: `http://127.0.0.1:${api.httpPort}`, httpVersion: "1.1" }));
    const auth = { headers: { authorization: `Bearer ${key}` } };
    // The caller's own trace: the call continues it.
    const callerTrace = "4bf92f3577b34da6a3ce929d0e0e4736";
    const callerSpan = "00f067aa0ba902b7";
    const created = await client.createDeployment(sampleCreateRequest(model), {
      headers: { ...auth.headers, traceparent: `00-${callerTrace}-${callerSpan}-01` },
    });
    const name = created.deployment!.name;
    await waitFor(
      `${name} to run`,
      async () => {
        const d = await client.getDeployment({ name }, auth);
        if (d.state === DeploymentState.FAILED) throw new Error(`deploy failed: ${d.failure?.message}`);
        return d.state === DeploymentState.RUNNING && d.activeTaskId === "";
      },
      60_000,
      100,
    );
    // The task's span ends just after its last write.
    const spans = await waitFor("the task's span", () => {
      const all = exporter.getFinishedSpans();
      return all.some((s) => s.name === "task DEPLOY") && all;
    });

    const call = spans.find((s) => s.name === "modeldeploy.v1.DeploymentService/CreateDeployment");
    expect(call?.kind).toBe(SpanKind.SERVER);
    expect(call?.attributes["modeldeploy.workspace"]).toBe("traced");
    expect(call?.attributes["modeldeploy.deployment"]).toBe(name);
    expect(call?.spanContext().traceId).toBe(callerTrace);
    expect(parentOf(call!)).toBe(callerSpan);
    const trace = spans.filter((s) => s.spanContext().traceId === call!.spanContext().traceId);

    const publish = trace.find((s) => s.name === "task publish");
    expect(publish?.kind).toBe(SpanKind.PRODUCER);
    expect(parentOf(publish!)).toBe(idOf(call!));

    const task = trace.find((s) => s.name === "task DEPLOY");
    expect(task?.kind).toBe(SpanKind.CONSUMER);
    expect(parentOf(task!)).toBe(idOf(publish!));
    expect(task?.attributes["modeldeploy.task_id"]).toBe(created.task!.id);
    expect(task?.attributes["modeldeploy.task_outcome"]).toBe("succeeded");

    // The worker's calls to the runtime agent are children of the task, and
    // the agent's own spans children of those calls.
    for (const op of ["POST /v1/revisions", "PUT /v1/deployments/{uid}/route"]) {
      const client = trace.find((s) => s.name === `runtime ${op}`);
      expect(client?.kind, op).toBe(SpanKind.CLIENT);
      expect(parentOf(client!), op).toBe(idOf(task!));
      const server = trace.find((s) => s.name === `runtime control ${op}` && parentOf(s) === idOf(client!));
      expect(server?.kind, op).toBe(SpanKind.SERVER);
    }
    // The observer's and the capacity report's runtime calls belong to no trace: they make no spans.
    const untraced = exporter.getFinishedSpans().filter((s) => s.name.startsWith("runtime") && s.spanContext().traceId !== call!.spanContext().traceId);
    expect(untraced.map((s) => s.name)).toEqual([]);
    // Every span of the trace hangs from the call: no orphan.
    const ids = new Set([...trace.map(idOf), callerSpan]);
    for (const s of trace) if (s !== call) expect(ids.has(parentOf(s) ?? ""), s.name).toBe(true);
  }, 90_000);
});
