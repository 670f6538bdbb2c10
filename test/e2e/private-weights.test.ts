// Private weights, for real: the all-in-one process on real Postgres and
// NATS downloads from an HTTP server that wants `Authorization: Bearer`. The
// token reaches that server (and only its origin: a redirect elsewhere goes
// without it), and it appears nowhere else: not in any response or watched
// event, not in the deployments, revisions, tasks or events tables, not in
// the process's output, not in the failure of a token the server refuses.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { toJsonString } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BadRequestSchema } from "../../src/gen/google/rpc/error_details_pb.js";
import { DeploymentService } from "../../src/gen/modeldeploy/v1/deployment_service_pb.js";
import {
  DeploymentEventSchema,
  DeploymentRevisionSchema,
  DeploymentSchema,
  DeploymentState,
  EventType,
  FailureReason,
  TaskStatus,
} from "../../src/gen/modeldeploy/v1/resources_pb.js";
import { buildSampleModel } from "../../src/onnx/sample-model.js";
import { createTestDatabase, NATS_URL, type TestDatabase } from "../helpers/services.js";
import { startSystem, type RunningSystem } from "../helpers/system.js";

const TOKEN = "s3cr3t";
const WRONG = "wr0ng-t0ken";

let tdb: TestDatabase;
let sys: RunningSystem;
let client: Client<typeof DeploymentService>;
let privateServer: http.Server;
let privateUrl: string;
let elsewhere: http.Server;
let elsewhereUrl: string;
/** The authorization header each request to the other origin carried. */
const elsewhereAuth: (string | undefined)[] = [];
const auth = () => ({ headers: { authorization: `Bearer ${sys.apiKey}` } });
/** Everything a client was shown, to search for the token at the end. */
const shown: string[] = [];

async function listen(server: http.Server): Promise<string> {
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** Every event of the deployment after `afterSequence`, until a task finishes (all kept in `shown`). */
async function watchUntilFinished(name: string, afterSequence = 0n): Promise<void> {
  const ac = new AbortController();
  for await (const e of client.watchDeployment({ name, afterSequence }, { ...auth(), signal: ac.signal, timeoutMs: 90_000 })) {
    shown.push(toJsonString(DeploymentEventSchema, e));
    if (e.type === EventType.TASK_FINISHED) break;
  }
  ac.abort();
}

async function deploy(model: { name: string; uri: string; token: string }, requestId = "") {
  const created = await client.createDeployment({ model, progressDeadlineSeconds: 60, requestId }, auth());
  shown.push(toJsonString(DeploymentSchema, created.deployment!));
  const name = created.deployment!.name;
  await watchUntilFinished(name);
  const d = await client.getDeployment({ name }, auth());
  shown.push(toJsonString(DeploymentSchema, d));
  const { revisions } = await client.listDeploymentRevisions({ name }, auth());
  shown.push(...revisions.map((r) => toJsonString(DeploymentRevisionSchema, r)));
  return { d, revisions, task: await client.getDeploymentStatus({ name }, auth()) };
}

beforeAll(async () => {
  tdb = await createTestDatabase({ migrate: false });
  const model = buildSampleModel();
  elsewhere = http.createServer((req, res) => {
    elsewhereAuth.push(req.headers.authorization);
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(model.length) }).end(model);
  });
  elsewhereUrl = await listen(elsewhere);
  privateServer = http.createServer((req, res) => {
    if (req.headers.authorization !== `Bearer ${TOKEN}`) {
      res.writeHead(401, { "www-authenticate": "Bearer" }).end("no");
      return;
    }
    if (req.url === "/moved.onnx") {
      res.writeHead(302, { location: `${elsewhereUrl}/model.onnx` }).end();
      return;
    }
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(model.length) }).end(model);
  });
  privateUrl = await listen(privateServer);
  // debug: every log line the process can write is searched for the token.
  sys = await startSystem({ databaseUrl: tdb.url, natsUrl: NATS_URL, env: { LOG_LEVEL: "debug" } });
  client = createClient(DeploymentService, createConnectTransport({ baseUrl: sys.httpUrl, httpVersion: "1.1" }));
});

afterAll(async () => {
  const output = sys?.output() ?? "";
  const code = await sys?.stop();
  await new Promise<void>((r) => (privateServer ? privateServer.close(() => r()) : r()));
  await new Promise<void>((r) => (elsewhere ? elsewhere.close(() => r()) : r()));
  await tdb?.drop();
  expect(output).not.toContain("unhandled rejection");
  expect(output).not.toContain(TOKEN);
  expect(output).not.toContain(WRONG);
  expect(code).toBe(0);
});

describe("private weights (ModelSource.token)", () => {
  it("downloads with Authorization: Bearer and runs; responses say tokenSet and never the token", async () => {
    const { d, revisions, task } = await deploy({ name: "acme/private", uri: `${privateUrl}/model.onnx`, token: TOKEN });
    expect(task.status).toBe(TaskStatus.COMPLETED);
    expect(d.state).toBe(DeploymentState.RUNNING);
    expect(d.model!.tokenSet).toBe(true);
    expect(d.model!.token).toBe("");
    expect(revisions.map((r) => [r.model!.tokenSet, r.model!.token])).toEqual([[true, ""]]);
    expect((await fetch(`${d.endpointUrl}/ready`)).status).toBe(200);

    // The same request again (same requestId, same token): the first result,
    // although each sealing of the token differs.
    const again = () =>
      client.createDeployment({ model: { name: "acme/private", uri: `${privateUrl}/model.onnx`, token: TOKEN }, requestId: "private-1" }, auth());
    const first = await again();
    const second = await again();
    expect(second.deployment!.name).toBe(first.deployment!.name);
    // The same model and token is no change; another token is a new revision.
    await expect(
      client.updateDeployment({ name: d.name, model: { name: "acme/private", uri: `${privateUrl}/model.onnx`, token: TOKEN } }, auth()),
    ).rejects.toMatchObject({ code: Code.FailedPrecondition });
  });

  it("an update's model replaces the old one whole: without a token it has none, and the old revision keeps serving", async () => {
    const { d } = await deploy({ name: "acme/replaced", uri: `${privateUrl}/model.onnx`, token: TOKEN });
    expect(d.state).toBe(DeploymentState.RUNNING);
    const updated = await client.updateDeployment({ name: d.name, model: { name: "acme/replaced", uri: `${privateUrl}/model.onnx`, revision: "2" } }, auth());
    // The deployment shows the serving revision's model (with its token) until a rollout completes.
    expect(updated.deployment!.model!.tokenSet).toBe(true);
    await watchUntilFinished(d.name, updated.deployment!.sequence);
    const task = await client.getDeploymentTask({ taskId: updated.task!.id }, auth());
    expect(task.status).toBe(TaskStatus.FAILED);
    expect(task.failure!.message).toContain("answered 401: access denied; give the model a token (model.token)");
    const after = await client.getDeployment({ name: d.name }, auth());
    shown.push(toJsonString(DeploymentSchema, after));
    expect(after.state).toBe(DeploymentState.RUNNING);
    expect(after.servingRevision).toBe(1);
    const { revisions } = await client.listDeploymentRevisions({ name: d.name }, auth());
    shown.push(...revisions.map((r) => toJsonString(DeploymentRevisionSchema, r)));
    expect(revisions.map((r) => r.model!.tokenSet)).toEqual([true, false]);
  });

  it("does not send the token to another origin a redirect points at", async () => {
    const { d } = await deploy({ name: "acme/moved", uri: `${privateUrl}/moved.onnx`, token: TOKEN });
    expect(d.state).toBe(DeploymentState.RUNNING);
    expect(elsewhereAuth.length).toBeGreaterThanOrEqual(1);
    expect(elsewhereAuth.every((a) => a === undefined)).toBe(true);
  });

  it("fails a token the server refuses, with a message that does not contain it", async () => {
    const { d, task } = await deploy({ name: "acme/refused", uri: `${privateUrl}/model.onnx`, token: WRONG });
    expect(task.status).toBe(TaskStatus.FAILED);
    expect(d.state).toBe(DeploymentState.FAILED);
    expect(d.failure!.reason).toBe(FailureReason.WEIGHTS_NOT_FOUND);
    expect(d.failure!.message).toContain("answered 401: access denied with the model's token");
    expect(d.failure!.message).not.toContain(WRONG);
    expect(d.model!.tokenSet).toBe(true);
  });

  it("refuses a token on a file:// model (INVALID_ARGUMENT, model.token)", async () => {
    const err = await client.createDeployment({ model: { name: "acme/local", uri: "file:///models/m.onnx", token: TOKEN } }, auth()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.InvalidArgument);
    expect((err as ConnectError).message).not.toContain(TOKEN);
    const violations = (err as ConnectError).findDetails(BadRequestSchema)[0]?.fieldViolations ?? [];
    expect(violations.map((v) => v.field)).toEqual(["model.token"]);
  });

  it("leaves the token in no response, event or table", async () => {
    expect(shown.length).toBeGreaterThan(0);
    for (const text of shown) {
      expect(text).not.toContain(TOKEN);
      expect(text).not.toContain(WRONG);
    }
    // What a dump of the database holds, table by table.
    for (const table of ["deployments", "revisions", "tasks", "events"]) {
      const { rows } = await sql<{ row: string }>`select to_jsonb(x)::text as row from ${sql.table(table)} x`.execute(tdb.db);
      expect(rows.length).toBeGreaterThan(0);
      for (const { row } of rows) {
        expect(row).not.toContain(TOKEN);
        expect(row).not.toContain(WRONG);
      }
    }
    // The sealed form is what is stored (every revision but the one updated without a token has one).
    const { rows } = await sql<{ sealed: string }>`select model->>'tokenSealed' as sealed from revisions`.execute(tdb.db);
    expect(rows.filter((r) => r.sealed !== "")).toHaveLength(rows.length - 1);
    expect(rows.filter((r) => r.sealed !== "").every((r) => r.sealed.startsWith("v1:"))).toBe(true);
  });
});
