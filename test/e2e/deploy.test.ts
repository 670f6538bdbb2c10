// The whole path, for real: the all-in-one process on real Postgres and
// NATS, real model-server processes, real inference, through grpc-js and
// Connect clients.
import { createHash } from "node:crypto";
import http from "node:http";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import * as grpc from "@grpc/grpc-js";
import { fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StatusSchema } from "../../src/gen/google/rpc/status_pb.js";
import { ErrorInfoSchema } from "../../src/gen/google/rpc/error_details_pb.js";
import { DeletionService } from "../../src/gen/modeldeploy/v1/deletion_service_pb.js";
import { DeploymentService, type CreateDeploymentResponse } from "../../src/gen/modeldeploy/v1/deployment_service_pb.js";
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
import { buildSampleModel, sampleModelReference } from "../../src/onnx/sample-model.js";
import { createTestDatabase, NATS_URL, waitFor, type TestDatabase } from "../helpers/services.js";
import { grpcClient, serverStream, unary, type GrpcClient } from "../helpers/grpc-client.js";
import { runCli, startSystem, type RunningSystem } from "../helpers/system.js";

let tdb: TestDatabase;
let sys: RunningSystem;
let dir: string;
let modelUri: string;
let modelSha: string;
let grpcDeployments: GrpcClient;
let connect: Client<typeof DeploymentService>;
let connectDeletions: Client<typeof DeletionService>;

const auth = (key: string) => ({ headers: { authorization: `Bearer ${key}` } });

beforeAll(async () => {
  tdb = await createTestDatabase({ migrate: false });
  dir = mkdtempSync(path.join(tmpdir(), "md-model-"));
  const bytes = buildSampleModel();
  writeFileSync(path.join(dir, "model.onnx"), bytes);
  writeFileSync(path.join(dir, "not-a-model.onnx"), "this is not an onnx file");
  modelUri = pathToFileURL(path.join(dir, "model.onnx")).href;
  modelSha = createHash("sha256").update(bytes).digest("hex");
  sys = await startSystem({ databaseUrl: tdb.url, natsUrl: NATS_URL });
  grpcDeployments = grpcClient(DeploymentService, sys.grpcAddress);
  const transport = createConnectTransport({ baseUrl: sys.httpUrl, httpVersion: "1.1" });
  connect = createClient(DeploymentService, transport);
  connectDeletions = createClient(DeletionService, transport);
});

afterAll(async () => {
  grpcDeployments?.close();
  const output = sys?.output() ?? "";
  const code = await sys?.stop();
  expect(output).not.toContain("unhandled rejection");
  rmSync(dir, { recursive: true, force: true });
  await tdb?.drop();
  // Graceful shutdown on the first SIGTERM.
  expect(code).toBe(0);
});

async function untilTerminal(name: string, key: string): Promise<Deployment> {
  return waitFor(
    `${name} to settle`,
    async () => {
      const d = await connect.getDeployment({ name }, auth(key));
      return d.activeTaskId === "" && d.state !== DeploymentState.PENDING ? d : undefined;
    },
    90_000,
    100,
  );
}

describe("deploy → infer → delete", () => {
  it("serves a real ONNX model end to end", async () => {
    // Create over native gRPC.
    const created = await unary<CreateDeploymentResponse>(
      grpcDeployments,
      "createDeployment",
      {
        model: { name: "acme/tiny-linear", revision: "1", uri: modelUri, sha256: modelSha, task: "regression" },
        resources: { cpu: 1, memory: "256MiB", threadCount: 1, maxBatchSize: 16 },
        scaling: { minReplicas: 2, maxReplicas: 2 },
        labels: { team: "ml" },
      },
      sys.apiKey,
    );
    const name = created.deployment!.name;
    expect(name).toMatch(/^tiny-linear-[0-9a-z]{13}$/);
    expect(created.deployment!.state).toBe(DeploymentState.PENDING);
    expect(created.task!.status).toBe(TaskStatus.PENDING);

    // Watch it over gRPC to RUNNING: SNAPSHOT first, then gapless sequences.
    const events: DeploymentEvent[] = [];
    const stream = serverStream<DeploymentEvent>(grpcDeployments, "watchDeployment", { name }, sys.apiKey);
    await new Promise<void>((resolve, reject) => {
      stream.on("data", (e: DeploymentEvent) => {
        events.push(e);
        if (e.deployment?.state === DeploymentState.RUNNING && e.type === EventType.TASK_FINISHED) {
          stream.cancel();
          resolve();
        }
        if (e.deployment?.state === DeploymentState.FAILED) reject(new Error(`deploy failed: ${e.deployment.failure?.message}\n${sys.output()}`));
      });
      stream.on("error", (err: grpc.ServiceError) => (err.code === grpc.status.CANCELLED ? resolve() : reject(err)));
    });
    expect(events[0]!.type).toBe(EventType.SNAPSHOT);
    const seqs = events.map((e) => Number(e.sequence));
    for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBe(seqs[i - 1]! + 1);
    const download = events.filter((e) => e.task && e.task.progress && e.task.progress.bytesTotal > 0n);
    expect(download.at(-1)!.task!.progress!.bytesDone).toBe(BigInt(buildSampleModel().length));

    // Status over Connect.
    const d = await connect.getDeployment({ name }, auth(sys.apiKey));
    expect(d.state).toBe(DeploymentState.RUNNING);
    expect(d.instances).toMatchObject({ desired: 2, ready: 2 });
    expect(d.endpointUrl.startsWith(sys.gatewayUrl)).toBe(true);
    const status = await connect.getDeploymentStatus({ name }, auth(sys.apiKey));
    expect(status).toMatchObject({ id: created.task!.id, status: TaskStatus.COMPLETED, kind: TaskKind.DEPLOY });
    expect(status.progress!.percent).toBe(100);
    expect(status.result).toMatchObject({ deploymentId: d.uid, endpointUrl: d.endpointUrl, revision: 1 });
    expect(status.endTime).toBeDefined();

    // Real inference through the gateway: the numbers match the reference.
    expect((await fetch(`${d.endpointUrl}/ready`)).status).toBe(200);
    const meta = (await (await fetch(d.endpointUrl)).json()) as { name: string; inputs: Array<{ name: string; datatype: string; shape: number[] }> };
    expect(meta.name).toBe(name);
    expect(meta.inputs).toEqual(
      expect.arrayContaining([
        { name: "x", datatype: "FP32", shape: [-1, 4] },
        { name: "ids", datatype: "INT64", shape: [-1] },
      ]),
    );
    const x = [
      [1, 2, 3, 4],
      [0.5, -1, 0, 2],
    ];
    const res = await fetch(`${d.endpointUrl}/infer`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        inputs: [
          { name: "x", shape: [2, 4], datatype: "FP32", data: x.flat() },
          { name: "ids", shape: [2], datatype: "INT64", data: [7, 41] },
        ],
      }),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { outputs: Array<{ name: string; shape: number[]; datatype: string; data: number[] }> };
    const y = body.outputs.find((o) => o.name === "y")!;
    expect(y.shape).toEqual([2, 2]);
    const expected = sampleModelReference(x).flat();
    y.data.forEach((v, i) => expect(v).toBeCloseTo(expected[i]!, 4));
    expect(body.outputs.find((o) => o.name === "ids_out")).toMatchObject({ datatype: "INT64", data: [8, 42] });
    const bad = await fetch(`${d.endpointUrl}/infer`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ inputs: [{ name: "x", shape: [1, 3], datatype: "FP32", data: [1, 2, 3] }] }),
    });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toBeTruthy();

    // Resume a watch after a sequence: replay with no gap and no duplicate.
    const after = Number(d.sequence) - 3;
    const replay: DeploymentEvent[] = [];
    const ac = new AbortController();
    for await (const e of connect.watchDeployment({ name, afterSequence: BigInt(after) }, { ...auth(sys.apiKey), signal: ac.signal })) {
      replay.push(e);
      if (Number(e.sequence) === Number(d.sequence)) break;
    }
    expect(replay.map((e) => Number(e.sequence))).toEqual([after + 1, after + 2, after + 3]);

    // Delete over Connect and watch it through to DELETED.
    const del = await connectDeletions.deleteDeployment({ name }, auth(sys.apiKey));
    expect(del.kind).toBe(TaskKind.DELETE);
    const seen: DeploymentEvent[] = [];
    for await (const e of connectDeletions.watchDeletion({ name }, auth(sys.apiKey))) seen.push(e);
    expect(seen.at(-1)!.type).toBe(EventType.DELETED);
    expect(seen.at(-1)!.deployment!.state).toBe(DeploymentState.DELETED);
    const delStatus = await connectDeletions.getDeletionStatus({ name }, auth(sys.apiKey));
    expect(delStatus).toMatchObject({ id: del.id, status: TaskStatus.COMPLETED });
    expect((await connectDeletions.getDeletionTask({ taskId: del.id }, auth(sys.apiKey))).id).toBe(del.id);
    await expect(connectDeletions.getDeletionTask({ taskId: created.task!.id }, auth(sys.apiKey))).rejects.toMatchObject({ code: Code.NotFound });
    expect((await fetch(`${d.endpointUrl}/ready`)).status).toBe(404);
    expect((await fetch(`${d.endpointUrl}/infer`, { method: "POST", body: "{}" })).status).toBe(404);
    expect((await connect.getDeployment({ name }, auth(sys.apiKey))).state).toBe(DeploymentState.DELETED);
  });

  it("keeps instances honest when a replica crashes, and restarts it", async () => {
    const res = await connect.createDeployment(
      { model: { name: "acme/crashy", uri: modelUri }, scaling: { minReplicas: 2, maxReplicas: 2 } },
      auth(sys.apiKey),
    );
    const d = await untilTerminal(res.deployment!.name, sys.apiKey);
    expect(d.state).toBe(DeploymentState.RUNNING);
    const detail = (await (await fetch(`${sys.controlUrl}/v1/deployments/${d.uid}/revisions/1`)).json()) as { replicas: Array<{ pid: number | null }> };
    const pid = detail.replicas[0]!.pid!;
    process.kill(pid, "SIGKILL");
    // The observer records the crash and the restart; the endpoint keeps serving meanwhile.
    const after = await waitFor(
      "restart recorded",
      async () => {
        const now = await connect.getDeployment({ name: d.name }, auth(sys.apiKey));
        return now.instances!.restarts >= 1 && now.instances!.ready === 2 ? now : undefined;
      },
      60_000,
      100,
    );
    expect(after.state).toBe(DeploymentState.RUNNING);
    expect(Number(after.sequence)).toBeGreaterThan(Number(d.sequence));
    expect((await fetch(`${after.endpointUrl}/ready`)).status).toBe(200);
    await connectDeletions.deleteDeployment({ name: d.name }, auth(sys.apiKey));
  });

  it("fails a model server that exits while starting with its exit code and output", async () => {
    const res = await connect.createDeployment(
      {
        model: { name: "acme/broken", uri: pathToFileURL(path.join(dir, "not-a-model.onnx")).href },
        scaling: { minReplicas: 1, maxReplicas: 1 },
      },
      auth(sys.apiKey),
    );
    const d = await untilTerminal(res.deployment!.name, sys.apiKey);
    expect(d.state).toBe(DeploymentState.FAILED);
    expect(d.failure!.reason).toBe(FailureReason.SERVER_EXITED);
    expect(d.failure!.exitCode).not.toBe(0);
    expect(d.failure!.logTail.length).toBeGreaterThan(0);
    const task: Task = await connect.getDeploymentTask({ taskId: res.task!.id }, auth(sys.apiKey));
    expect(task.status).toBe(TaskStatus.FAILED);
    expect(task.failure!.reason).toBe(FailureReason.SERVER_EXITED);
  });

  it("fails missing weights and checksum mismatches with their reasons", async () => {
    const missing = await connect.createDeployment({ model: { name: "acme/missing", uri: "file:///nonexistent/model.onnx" } }, auth(sys.apiKey));
    const wrongSum = await connect.createDeployment({ model: { name: "acme/wrong-sum", uri: modelUri, sha256: "0".repeat(64) } }, auth(sys.apiKey));
    const a = await untilTerminal(missing.deployment!.name, sys.apiKey);
    const b = await untilTerminal(wrongSum.deployment!.name, sys.apiKey);
    expect(a.failure!.reason).toBe(FailureReason.WEIGHTS_NOT_FOUND);
    expect(b.failure!.reason).toBe(FailureReason.WEIGHTS_CHECKSUM_MISMATCH);
  });
});

describe("progress deadline", () => {
  it("fails a download that stalls with PROGRESS_DEADLINE_EXCEEDED", async () => {
    // Sends the headers and a few bytes, then nothing: a stalled download.
    const sockets = new Set<import("node:net").Socket>();
    const server = http.createServer((_req, res) => {
      res.writeHead(200, { "content-length": "1000000" });
      res.write(Buffer.alloc(10));
    });
    server.on("connection", (s) => sockets.add(s));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    try {
      const port = (server.address() as import("node:net").AddressInfo).port;
      const res = await connect.createDeployment(
        {
          model: { name: "acme/stalled", uri: `http://127.0.0.1:${port}/model.onnx` },
          progressDeadlineSeconds: 2,
        },
        auth(sys.apiKey),
      );
      const d = await untilTerminal(res.deployment!.name, sys.apiKey);
      expect(d.state).toBe(DeploymentState.FAILED);
      expect(d.failure!.reason).toBe(FailureReason.PROGRESS_DEADLINE_EXCEEDED);
      expect(d.failure!.message).toContain("DOWNLOADING");
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    }
  });
});

describe("bad input gets its code and changes nothing", () => {
  const count = async () =>
    Number(
      (
        await tdb.db
          .selectFrom("tasks")
          .select((eb) => eb.fn.countAll<string>().as("n"))
          .executeTakeFirstOrThrow()
      ).n,
    );

  it("rejects malformed names and specs with INVALID_ARGUMENT and details", async () => {
    const before = await count();
    const err = await connect.createDeployment({ model: { name: "acme/x", uri: modelUri }, suffix: "Not_A_Label" }, auth(sys.apiKey)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.InvalidArgument);
    expect((err as ConnectError).findDetails(ErrorInfoSchema)[0]).toMatchObject({ reason: "NAME_INVALID", domain: "modeldeploy" });

    const e2 = await unary(
      grpcDeployments,
      "createDeployment",
      {
        model: { name: "acme/x", uri: "ftp://example.com/model.onnx" },
        resources: { acceleratorType: "H100-80GB", acceleratorCount: 1 },
        scaling: { minReplicas: 3, maxReplicas: 1 },
      },
      sys.apiKey,
    ).catch((e: grpc.ServiceError) => e);
    expect((e2 as grpc.ServiceError).code).toBe(grpc.status.INVALID_ARGUMENT);
    const details = (e2 as grpc.ServiceError).metadata.get("grpc-status-details-bin")[0] as Buffer;
    const st = fromBinary(StatusSchema, details);
    expect(st.details.map((d) => d.typeUrl)).toEqual(
      expect.arrayContaining(["type.googleapis.com/google.rpc.ErrorInfo", "type.googleapis.com/google.rpc.BadRequest"]),
    );
    expect((e2 as grpc.ServiceError).metadata.get("x-request-id")[0]).toBeTruthy();

    await expect(connect.getDeployment({ name: "" }, auth(sys.apiKey))).rejects.toMatchObject({ code: Code.InvalidArgument });
    await expect(connect.getDeployment({ name: "no-such-deployment" }, auth(sys.apiKey))).rejects.toMatchObject({ code: Code.NotFound });
    expect(await count()).toBe(before);
  });

  it("answers wrong keys, missing scopes and other workspaces", async () => {
    const before = await count();
    await expect(connect.listDeployments({})).rejects.toMatchObject({ code: Code.Unauthenticated });
    await expect(connect.listDeployments({}, auth("mdk_wrong"))).rejects.toMatchObject({ code: Code.Unauthenticated });
    const reader = await runCli(["keys", "create", "--workspace", "default", "--scopes", "deployments:read"], sys.env);
    expect(reader.code).toBe(0);
    const readerKey = reader.stdout.trim();
    expect(readerKey).toMatch(/^mdk_\S+$/);
    await expect(connect.listDeployments({}, auth(readerKey))).resolves.toBeDefined();
    await expect(connect.createDeployment({ model: { name: "acme/x", uri: modelUri } }, auth(readerKey))).rejects.toMatchObject({
      code: Code.PermissionDenied,
    });
    const other = (await runCli(["keys", "create", "--workspace", "other"], sys.env)).stdout.trim();
    const mine = await connect.listDeployments({ pageSize: 500 }, auth(sys.apiKey));
    expect(mine.deployments.length).toBeGreaterThan(0);
    const name = mine.deployments[0]!.name;
    await expect(connect.getDeployment({ name }, auth(other))).rejects.toMatchObject({ code: Code.NotFound });
    await expect(connectDeletions.deleteDeployment({ name }, auth(other))).rejects.toMatchObject({ code: Code.NotFound });
    expect((await connect.listDeployments({}, auth(other))).deployments).toEqual([]);
    expect(await count()).toBe(before);
  });

  it("rejects garbage and oversized bodies without crashing", async () => {
    const before = await count();
    const url = `${sys.httpUrl}/modeldeploy.v1.DeploymentService/CreateDeployment`;
    const headers = { "content-type": "application/json", authorization: `Bearer ${sys.apiKey}`, "x-request-id": "garbage-1" };
    const garbage = await fetch(url, { method: "POST", headers, body: "{not json" });
    expect(garbage.status).toBe(400);
    expect(garbage.headers.get("x-request-id")).toBe("garbage-1");
    expect(((await garbage.json()) as { code: string }).code).toBe("invalid_argument");
    const wrongType = await fetch(url, { method: "POST", headers, body: JSON.stringify({ scaling: { minReplicas: "many" } }) });
    expect(((await wrongType.json()) as { code: string }).code).toBe("invalid_argument");
    const huge = await fetch(url, { method: "POST", headers, body: JSON.stringify({ labels: { a: "x".repeat(5 * 1024 * 1024) } }) });
    expect(((await huge.json()) as { code: string }).code).toBe("resource_exhausted");
    expect(await count()).toBe(before);
    // Still serving afterwards, over curl-style Connect JSON with a generated request id.
    const ok = await fetch(`${sys.httpUrl}/modeldeploy.v1.DeploymentService/ListDeployments`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${sys.apiKey}` },
      body: "{}",
    });
    expect(ok.status).toBe(200);
    expect(ok.headers.get("x-request-id")).toBeTruthy();
  });

  it("pages ListDeployments without gaps or duplicates", async () => {
    const names = new Set<string>();
    for (let i = 0; i < 5; i++) {
      const r = await connect.createDeployment(
        { model: { name: "acme/pager", uri: modelUri }, scaling: { minReplicas: 0, maxReplicas: 0 }, labels: { batch: "pager" } },
        auth(sys.apiKey),
      );
      names.add(r.deployment!.name);
    }
    const seen: string[] = [];
    let pageToken = "";
    do {
      const page = await connect.listDeployments({ pageSize: 2, pageToken, labelSelector: "batch=pager" }, auth(sys.apiKey));
      seen.push(...page.deployments.map((d) => d.name));
      pageToken = page.nextPageToken;
    } while (pageToken);
    expect(seen.sort()).toEqual([...names].sort());
    await expect(connect.listDeployments({ pageSize: 2, pageToken: "garbage" }, auth(sys.apiKey))).rejects.toMatchObject({ code: Code.InvalidArgument });
    // Stopped deployments (0 replicas) settle as STOPPED.
    const first = [...names][0]!;
    expect((await untilTerminal(first, sys.apiKey)).state).toBe(DeploymentState.STOPPED);
  });

  it("serves grpc.health.v1 without a key", async () => {
    const raw = (b: Buffer) => b;
    const Health = grpc.makeGenericClientConstructor(
      {
        check: {
          path: "/grpc.health.v1.Health/Check",
          requestStream: false,
          responseStream: false,
          requestSerialize: raw,
          requestDeserialize: raw,
          responseSerialize: raw,
          responseDeserialize: raw,
        },
      },
      "Health",
    );
    const client = new Health(sys.grpcAddress, grpc.credentials.createInsecure()) as unknown as GrpcClient;
    try {
      // HealthCheckRequest{} is empty; HealthCheckResponse{status: SERVING} is field 1 = 1.
      const res = await unary<Buffer>(client, "check", Buffer.alloc(0));
      expect([...res]).toEqual([0x08, 0x01]);
    } finally {
      client.close();
    }
  });

  it("lists the hardware catalog it validates against (none configured: CPU only)", async () => {
    expect((await connect.listAcceleratorTypes({}, auth(sys.apiKey))).acceleratorTypes).toEqual([]);
    await expect(connect.updateDeployment({ name: "x" }, auth(sys.apiKey))).rejects.toMatchObject({ code: Code.InvalidArgument });
  });
});
