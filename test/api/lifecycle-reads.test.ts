// ListDeploymentTasks, ListDeploymentRevisions and ListAcceleratorTypes
// through a real Connect server on a real Postgres: tasks are made by
// CreateDeployment and DeleteDeployment and moved with the worker's own
// change writer.
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bindService } from "../../src/api/call-wrapper.js";
import { createConnectServer, type ConnectServer } from "../../src/api/connect-server.js";
import { createDeletionService } from "../../src/api/deletion-service.js";
import { createDeploymentService } from "../../src/api/deployment-service.js";
import { errorInfoOf } from "../../src/api/errors.js";
import { createApiKey } from "../../src/db/api-keys.js";
import { applyChange } from "../../src/db/changes.js";
import { DeletionService } from "../../src/gen/modeldeploy/v1/deletion_service_pb.js";
import { DeploymentService } from "../../src/gen/modeldeploy/v1/deployment_service_pb.js";
import { TaskKind, TaskStatus } from "../../src/gen/modeldeploy/v1/resources_pb.js";
import { silentLogger } from "../../src/log.js";
import { createEventBus, type EventBus } from "../../src/queue/event-bus.js";
import { testApiDeps } from "../helpers/api-deps.js";
import { createTestDatabase, createTestQueue, type TestDatabase, type TestQueue } from "../helpers/services.js";

let tdb: TestDatabase;
let tq: TestQueue;
let bus: EventBus;
let server: ConnectServer;
let deployments: Client<typeof DeploymentService>;
let deletions: Client<typeof DeletionService>;
const auth = { headers: { authorization: "" } };
const otherAuth = { headers: { authorization: "" } };

const catalog = [
  { name: "L4-24GB", memory: "24GiB", maxPerReplica: 4, total: 8 },
  { name: "A100-80GB", memory: "80GiB", maxPerReplica: 8, total: 16 },
];

function spec(suffix: string, accelerators = 0) {
  return {
    model: { name: "acme/tiny-linear", revision: "1", uri: "file:///nonexistent/noop.onnx" },
    resources: { cpu: 1, memory: "128Mi", threadCount: 1, acceleratorType: accelerators ? "L4-24GB" : "", acceleratorCount: accelerators },
    scaling: { minReplicas: 1, maxReplicas: 1 },
    suffix,
  };
}

beforeAll(async () => {
  tdb = await createTestDatabase();
  tq = await createTestQueue();
  bus = createEventBus(tq.nc, tq.prefix);
  const deps = testApiDeps(tdb.db, bus, { catalog });
  server = createConnectServer({
    services: [bindService(DeploymentService, createDeploymentService(deps)), bindService(DeletionService, createDeletionService(deps))],
    logger: silentLogger,
  });
  const port = await server.listen("127.0.0.1", 0);
  const transport = createConnectTransport({ baseUrl: `http://127.0.0.1:${port}`, httpVersion: "1.1" });
  deployments = createClient(DeploymentService, transport);
  deletions = createClient(DeletionService, transport);
  const scopes = ["deployments:read", "deployments:write"];
  auth.headers.authorization = `Bearer ${(await createApiKey(tdb.db, { workspace: "acme", principal: "alice", scopes })).key}`;
  otherAuth.headers.authorization = `Bearer ${(await createApiKey(tdb.db, { workspace: "other", principal: "bob", scopes })).key}`;
});

afterAll(async () => {
  await server?.close(1000);
  await bus?.close();
  await tq?.drop();
  await tdb?.drop();
});

async function refusal(call: Promise<unknown>): Promise<ConnectError> {
  const err = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ConnectError);
  return err as ConnectError;
}

describe("ListDeploymentTasks", () => {
  it("lists a deployment's tasks newest first, filtered by status, page by page", async () => {
    const created = await deployments.createDeployment(spec("tasks"), auth);
    const name = created.deployment!.name;
    // The deploy task completes, then the deployment is deleted: two tasks.
    await applyChange(tdb.db, {
      deploymentUid: created.deployment!.uid,
      type: "TASK_FINISHED",
      task: { id: created.task!.id, patch: { status: "COMPLETED", phase: "DONE", end_time: new Date() } },
      deployment: { state: "RUNNING", active_task_id: null },
    });
    const deletion = await deletions.deleteDeployment({ name }, auth);

    const all = await deployments.listDeploymentTasks({ name }, auth);
    expect(all.tasks.map((t) => t.id)).toEqual([deletion.id, created.task!.id]);
    expect(all.tasks.map((t) => t.kind)).toEqual([TaskKind.DELETE, TaskKind.DEPLOY]);
    expect(all.nextPageToken).toBe("");

    const done = await deployments.listDeploymentTasks({ name, statuses: [TaskStatus.COMPLETED] }, auth);
    expect(done.tasks.map((t) => t.id)).toEqual([created.task!.id]);

    const first = await deployments.listDeploymentTasks({ name, pageSize: 1 }, auth);
    expect(first.tasks.map((t) => t.id)).toEqual([deletion.id]);
    expect(first.nextPageToken).not.toBe("");
    const second = await deployments.listDeploymentTasks({ name, pageSize: 1, pageToken: first.nextPageToken }, auth);
    expect(second.tasks.map((t) => t.id)).toEqual([created.task!.id]);
    expect(second.nextPageToken).toBe("");

    // A token is bound to its filter.
    const other = await refusal(deployments.listDeploymentTasks({ name, pageSize: 1, pageToken: first.nextPageToken, statuses: [TaskStatus.PENDING] }, auth));
    expect(other.code).toBe(Code.InvalidArgument);
    expect(errorInfoOf(other)?.reason).toBe("PAGE_TOKEN_INVALID");
  });

  it("refuses an unknown status and a bad page size, and answers NOT_FOUND for another workspace's deployment", async () => {
    const created = await deployments.createDeployment(spec("tasks2"), auth);
    const name = created.deployment!.name;
    const unknown = await refusal(deployments.listDeploymentTasks({ name, statuses: [TaskStatus.UNSPECIFIED] }, auth));
    expect(unknown.code).toBe(Code.InvalidArgument);
    expect(errorInfoOf(unknown)?.reason).toBe("STATUS_INVALID");
    expect((await refusal(deployments.listDeploymentTasks({ name, pageSize: 501 }, auth))).code).toBe(Code.InvalidArgument);
    const elsewhere = await refusal(deployments.listDeploymentTasks({ name }, otherAuth));
    expect(elsewhere.code).toBe(Code.NotFound);
    expect(errorInfoOf(elsewhere)?.reason).toBe("DEPLOYMENT_NOT_FOUND");
  });
});

describe("ListDeploymentRevisions", () => {
  it("lists the revisions with the task that made each, and NOT_FOUND for an unknown name", async () => {
    const created = await deployments.createDeployment(spec("revs"), auth);
    const res = await deployments.listDeploymentRevisions({ name: created.deployment!.name }, auth);
    expect(res.revisions).toHaveLength(1);
    expect(res.revisions[0]).toMatchObject({ number: 1, taskId: created.task!.id, model: { name: "acme/tiny-linear", uri: "file:///nonexistent/noop.onnx" } });
    expect(res.revisions[0]!.createTime).toBeDefined();
    expect((await refusal(deployments.listDeploymentRevisions({ name: "no-such-deployment" }, auth))).code).toBe(Code.NotFound);
  });
});

describe("private weights without a secret key", () => {
  it("refuses a model with a token, saying which setting is missing, and writes nothing", async () => {
    const noKey = createConnectServer({
      services: [bindService(DeploymentService, createDeploymentService(testApiDeps(tdb.db, bus, { tokens: undefined })))],
      logger: silentLogger,
    });
    const port = await noKey.listen("127.0.0.1", 0);
    try {
      const c = createClient(DeploymentService, createConnectTransport({ baseUrl: `http://127.0.0.1:${port}`, httpVersion: "1.1" }));
      const before = (await deployments.listDeployments({ pageSize: 500 }, auth)).deployments.length;
      const base = spec("private");
      const err = await refusal(c.createDeployment({ ...base, model: { ...base.model, uri: "https://weights.example/m.onnx", token: "s3cr3t" } }, auth));
      expect(err.code).toBe(Code.FailedPrecondition);
      expect(errorInfoOf(err)?.reason).toBe("TOKENS_NOT_CONFIGURED");
      expect(err.rawMessage).toContain("MODELDEPLOY_SECRET_KEY");
      expect(err.rawMessage).not.toContain("s3cr3t");
      expect((await deployments.listDeployments({ pageSize: 500 }, auth)).deployments.length).toBe(before);
      // Without a token, the same server deploys.
      expect((await c.createDeployment(spec("public"), auth)).deployment!.state).toBeDefined();
    } finally {
      await noKey.close(1000);
    }
  });
});

describe("ListAcceleratorTypes", () => {
  it("lists the catalog with what is free of each type now", async () => {
    const before = await deployments.listAcceleratorTypes({}, auth);
    expect(before.acceleratorTypes.map((a) => a.name)).toEqual(["L4-24GB", "A100-80GB"]);
    const l4 = () => before.acceleratorTypes.find((a) => a.name === "L4-24GB")!;
    expect(l4()).toMatchObject({ memory: "24GiB", maxPerReplica: 4 });
    await deployments.createDeployment(spec("gpu", 2), auth);
    const after = await deployments.listAcceleratorTypes({}, otherAuth);
    expect(after.acceleratorTypes.find((a) => a.name === "L4-24GB")!.available).toBe(l4().available - 2);
    expect(after.acceleratorTypes.find((a) => a.name === "A100-80GB")!.available).toBe(16);
  });
});
