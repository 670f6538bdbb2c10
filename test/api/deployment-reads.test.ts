// Reads through a real Connect server over the real DeploymentService, on a
// real Postgres: deployments are created with CreateDeployment, moved to their
// states with the same change writer the worker uses, then listed with
// `states`, page size and page tokens, and watched from a sequence.
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bindService } from "../../src/api/call-wrapper.js";
import { createConnectServer, type ConnectServer } from "../../src/api/connect-server.js";
import { createDeploymentService } from "../../src/api/deployment-service.js";
import { errorInfoOf } from "../../src/api/errors.js";
import { createApiKey } from "../../src/db/api-keys.js";
import { applyChange } from "../../src/db/changes.js";
import type { DeploymentState as State } from "../../src/domain/types.js";
import { DeploymentService, ListDeploymentsRequestSchema } from "../../src/gen/modeldeploy/v1/deployment_service_pb.js";
import { DeploymentState } from "../../src/gen/modeldeploy/v1/resources_pb.js";
import { testApiDeps } from "../helpers/api-deps.js";
import { silentLogger } from "../../src/log.js";
import { createEventBus, type EventBus } from "../../src/queue/event-bus.js";
import { createTestDatabase, createTestQueue, type TestDatabase, type TestQueue } from "../helpers/services.js";

let tdb: TestDatabase;
let tq: TestQueue;
let bus: EventBus;
let server: ConnectServer;
let client: Client<typeof DeploymentService>;
let acmeKey: string;
let otherKey: string;

/** name → uid of every deployment of workspace acme, by the state it was put in. */
const byState = new Map<State, { name: string; uid: string }[]>();

// Deliberately interleaved, so that a filtered page never lines up with an unfiltered one.
const PLAN: State[] = [
  "RUNNING",
  "PENDING",
  "FAILED",
  "RUNNING",
  "DELETED",
  "STOPPED",
  "RUNNING",
  "FAILED",
  "DEPLOYING",
  "RUNNING",
  "DELETED",
  "FAILED",
  "RUNNING",
];

const uidsIn = (...states: State[]) =>
  states
    .flatMap((s) => byState.get(s) ?? [])
    .map((d) => d.uid)
    .sort();

async function createIn(apiKey: string, suffix: string, state: State): Promise<{ name: string; uid: string }> {
  const res = await client.createDeployment(
    {
      model: { name: "acme/tiny-linear", revision: "1", uri: "file:///nonexistent/noop.onnx" },
      resources: { cpu: 1, memory: "128Mi", threadCount: 1 },
      scaling: { minReplicas: 1, maxReplicas: 1 },
      suffix,
      labels: { tier: Number(suffix.slice(1)) % 2 === 0 ? "even" : "odd" },
    },
    { headers: { authorization: `Bearer ${apiKey}` } },
  );
  const uid = res.deployment!.uid;
  if (state !== "PENDING") {
    await applyChange(tdb.db, { deploymentUid: uid, type: "STATE_CHANGED", deployment: { state } });
  }
  return { name: res.deployment!.name, uid };
}

type ListRequest = MessageInitShape<typeof ListDeploymentsRequestSchema>;

function list(req: ListRequest, apiKey = acmeKey) {
  return client.listDeployments(req, { headers: { authorization: `Bearer ${apiKey}` } });
}

/** Follows nextPageToken to the end; returns every page's uids. */
async function allPages(req: ListRequest): Promise<string[][]> {
  const pages: string[][] = [];
  let pageToken = "";
  for (;;) {
    const res = await list({ ...req, pageToken });
    pages.push(res.deployments.map((d) => d.uid));
    if (!res.nextPageToken) return pages;
    pageToken = res.nextPageToken;
    expect(pages.length).toBeLessThan(50); // no endless paging
  }
}

beforeAll(async () => {
  tdb = await createTestDatabase();
  tq = await createTestQueue();
  bus = createEventBus(tq.nc, tq.prefix);
  const deps = testApiDeps(tdb.db, bus);
  server = createConnectServer({ services: [bindService(DeploymentService, createDeploymentService(deps))], logger: silentLogger });
  const port = await server.listen("127.0.0.1", 0);
  client = createClient(DeploymentService, createConnectTransport({ baseUrl: `http://127.0.0.1:${port}`, httpVersion: "1.1" }));
  const scopes = ["deployments:read", "deployments:write"];
  acmeKey = (await createApiKey(tdb.db, { workspace: "acme", principal: "alice", scopes })).key;
  otherKey = (await createApiKey(tdb.db, { workspace: "other", principal: "bob", scopes })).key;

  for (const [i, state] of PLAN.entries()) {
    const d = await createIn(acmeKey, `d${i}`, state);
    byState.set(state, [...(byState.get(state) ?? []), d]);
  }
  // Another workspace's deployments in the same states must never show up.
  await createIn(otherKey, "d100", "RUNNING");
  await createIn(otherKey, "d101", "FAILED");
});

afterAll(async () => {
  await server?.close(1000);
  await bus?.close();
  await tq?.drop();
  await tdb?.drop();
});

describe("ListDeployments states filter", () => {
  it("returns exactly the deployments in one state", async () => {
    const res = await list({ states: [DeploymentState.RUNNING] });
    expect(res.deployments.map((d) => d.uid).sort()).toEqual(uidsIn("RUNNING"));
    expect(res.deployments.every((d) => d.state === DeploymentState.RUNNING)).toBe(true);
    expect(res.deployments.every((d) => d.name.startsWith("tiny-linear-d"))).toBe(true);
    expect(res.nextPageToken).toBe("");

    const failed = await list({ states: [DeploymentState.FAILED] });
    expect(failed.deployments.map((d) => d.uid).sort()).toEqual(uidsIn("FAILED"));

    const pending = await list({ states: [DeploymentState.PENDING] });
    expect(pending.deployments.map((d) => d.uid).sort()).toEqual(uidsIn("PENDING"));

    // A state nothing is in: an empty page, no token.
    const updating = await list({ states: [DeploymentState.UPDATING] });
    expect(updating.deployments).toEqual([]);
    expect(updating.nextPageToken).toBe("");
  });

  it("returns the union of several states, in uid order", async () => {
    const res = await list({ states: [DeploymentState.FAILED, DeploymentState.STOPPED, DeploymentState.DEPLOYING] });
    const uids = res.deployments.map((d) => d.uid);
    expect(uids).toEqual(uidsIn("FAILED", "STOPPED", "DEPLOYING"));
    expect(new Set(res.deployments.map((d) => d.state))).toEqual(new Set([DeploymentState.FAILED, DeploymentState.STOPPED, DeploymentState.DEPLOYING]));
  });

  it("lists every state but DELETED when no state is given, and DELETED ones only when asked", async () => {
    const all = await list({});
    expect(all.deployments.map((d) => d.uid)).toEqual(uidsIn("RUNNING", "PENDING", "FAILED", "STOPPED", "DEPLOYING"));
    expect(all.deployments.some((d) => d.state === DeploymentState.DELETED)).toBe(false);

    const deleted = await list({ states: [DeploymentState.DELETED] });
    expect(deleted.deployments.map((d) => d.uid)).toEqual(uidsIn("DELETED"));
    expect(deleted.deployments.every((d) => d.state === DeploymentState.DELETED)).toBe(true);
  });

  it("pages through a filtered list: no duplicate, no gap, nothing of other states", async () => {
    const states = [DeploymentState.RUNNING, DeploymentState.FAILED];
    const expected = uidsIn("RUNNING", "FAILED");
    expect(expected).toHaveLength(8);

    for (const pageSize of [1, 3, 5]) {
      const pages = await allPages({ states, pageSize });
      expect(pages.length).toBe(Math.ceil(expected.length / pageSize));
      for (const page of pages.slice(0, -1)) expect(page).toHaveLength(pageSize);
      expect(pages.flat()).toEqual(expected);
    }
    // A page size equal to the number of matches: one page, no token to an empty page.
    const exact = await list({ states, pageSize: expected.length });
    expect(exact.deployments.map((d) => d.uid)).toEqual(expected);
    expect(exact.nextPageToken).toBe("");

    // The filter may be given in any order; the token stays valid.
    const first = await list({ states, pageSize: 3 });
    const second = await list({ states: [...states].reverse(), pageSize: 3, pageToken: first.nextPageToken });
    expect([...first.deployments, ...second.deployments].map((d) => d.uid)).toEqual(expected.slice(0, 6));
  });

  it("combines the states filter with a label selector and paging", async () => {
    const oddRunning = (byState.get("RUNNING") ?? []).filter((d) => Number(d.name.split("-d").at(-1)) % 2 === 1);
    // PLAN puts RUNNING at d0, d3, d6, d9, d12: d3 and d9 are odd.
    expect(oddRunning).toHaveLength(2);
    const pages = await allPages({ states: [DeploymentState.RUNNING], labelSelector: "tier=odd", pageSize: 1 });
    expect(pages).toHaveLength(2);
    expect(pages.flat()).toEqual(oddRunning.map((d) => d.uid).sort());
  });

  it("refuses a page token issued for other states", async () => {
    const first = await list({ states: [DeploymentState.RUNNING], pageSize: 2 });
    expect(first.nextPageToken).not.toBe("");
    for (const states of [[DeploymentState.FAILED], [], [DeploymentState.RUNNING, DeploymentState.FAILED]]) {
      const err = await list({ states, pageSize: 2, pageToken: first.nextPageToken }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ConnectError);
      expect((err as ConnectError).code).toBe(Code.InvalidArgument);
      expect(errorInfoOf(err)?.reason).toBe("PAGE_TOKEN_INVALID");
    }
  });

  it("rejects an unknown or unspecified state with INVALID_ARGUMENT", async () => {
    for (const bad of [DeploymentState.UNSPECIFIED, 42 as DeploymentState]) {
      const err = await list({ states: [DeploymentState.RUNNING, bad] }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ConnectError);
      expect((err as ConnectError).code).toBe(Code.InvalidArgument);
      expect(errorInfoOf(err)?.reason).toBe("STATE_INVALID");
    }
  });

  it("only lists the caller's workspace", async () => {
    const res = await list({ states: [DeploymentState.RUNNING, DeploymentState.FAILED] }, otherKey);
    expect(res.deployments.map((d) => d.name).sort()).toEqual(["tiny-linear-d100", "tiny-linear-d101"]);
    const acme = new Set(uidsIn("RUNNING", "FAILED"));
    expect(res.deployments.some((d) => acme.has(d.uid))).toBe(false);
  });
});

describe("WatchDeployment from afterSequence", () => {
  it("resumes right after the given sequence, and refuses one beyond the last event", async () => {
    const running = byState.get("RUNNING")![0]!;
    const headers = { authorization: `Bearer ${acmeKey}` };
    // Created (1), then moved to RUNNING (2).
    const ac = new AbortController();
    const seen: Array<[number, string]> = [];
    try {
      for await (const e of client.watchDeployment({ name: running.name, afterSequence: 1n }, { headers, signal: ac.signal })) {
        seen.push([Number(e.sequence), DeploymentState[e.deployment!.state]]);
        ac.abort();
      }
    } catch (err) {
      if (!ac.signal.aborted) throw err;
    }
    expect(seen).toEqual([[2, "RUNNING"]]);

    const beyond = await (async () => {
      for await (const _ of client.watchDeployment({ name: running.name, afterSequence: 3n }, { headers })) return "an event";
      return "the end";
    })().catch((e: unknown) => e);
    expect(beyond).toBeInstanceOf(ConnectError);
    expect((beyond as ConnectError).code).toBe(Code.OutOfRange);
    expect(errorInfoOf(beyond)?.reason).toBe("SEQUENCE_OUT_OF_RANGE");
    expect(errorInfoOf(beyond)?.metadata).toMatchObject({ afterSequence: "3", lastSequence: "2" });
  });
});
