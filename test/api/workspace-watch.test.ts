// WatchDeployments against real Postgres and NATS: a snapshot, then live
// changes; a resume from any event's cursor with no gap and no duplicate,
// also when transactions commit out of cursor order; the states filter;
// paging; refusals; another workspace's events never shown.
import { createClient, ConnectError, Code, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bindService } from "../../src/api/call-wrapper.js";
import { createConnectServer, type ConnectServer } from "../../src/api/connect-server.js";
import { createDeploymentService } from "../../src/api/deployment-service.js";
import { errorInfoOf } from "../../src/api/errors.js";
import { openWorkspaceWatch } from "../../src/api/workspace-watch.js";
import { createApiKey } from "../../src/db/api-keys.js";
import { applyChange } from "../../src/db/changes.js";
import { createDeployment } from "../../src/deployments/create.js";
import type { DeploymentState as State, Principal } from "../../src/domain/types.js";
import { DeploymentService } from "../../src/gen/modeldeploy/v1/deployment_service_pb.js";
import { DeploymentState, EventType, type DeploymentEvent } from "../../src/gen/modeldeploy/v1/resources_pb.js";
import { silentLogger } from "../../src/log.js";
import { createEventBus, type EventBus } from "../../src/queue/event-bus.js";
import { createInput, testApiDeps } from "../helpers/api-deps.js";
import { createTestDatabase, createTestQueue, type TestDatabase, type TestQueue } from "../helpers/services.js";
import type { ApiDeps } from "../../src/api/deps.js";

let tdb: TestDatabase;
let tq: TestQueue;
let bus: EventBus;
let deps: ApiDeps;
let server: ConnectServer;
let client: Client<typeof DeploymentService>;
let key: string;
const alice: Principal = { workspace: "acme", name: "alice", scopes: ["deployments:read", "deployments:write"] };
const bob: Principal = { workspace: "other", name: "bob", scopes: alice.scopes };

beforeAll(async () => {
  tdb = await createTestDatabase();
  tq = await createTestQueue();
  bus = createEventBus(tq.nc, tq.prefix);
  deps = testApiDeps(tdb.db, bus);
  server = createConnectServer({ services: [bindService(DeploymentService, createDeploymentService(deps))], logger: silentLogger });
  const port = await server.listen("127.0.0.1", 0);
  client = createClient(DeploymentService, createConnectTransport({ baseUrl: `http://127.0.0.1:${port}`, httpVersion: "1.1" }));
  key = (await createApiKey(tdb.db, { workspace: "acme", principal: "alice", scopes: [...alice.scopes] })).key;
});

afterAll(async () => {
  await server?.close(1000);
  await bus?.close();
  await tq?.drop();
  await tdb?.drop();
});

/** Reads n messages. */
async function take(it: AsyncIterator<DeploymentEvent>, n: number): Promise<DeploymentEvent[]> {
  const out: DeploymentEvent[] = [];
  while (out.length < n) {
    const r = await it.next();
    if (r.done) throw new Error(`the stream ended after ${out.length} of ${n} messages`);
    out.push(r.value);
  }
  return out;
}

const ids = (events: DeploymentEvent[]) => events.map((e) => `${e.deployment!.uid}#${e.sequence}`);

async function move(uid: string, state: State): Promise<void> {
  deps.sink([await applyChange(tdb.db, { deploymentUid: uid, type: "STATE_CHANGED", deployment: { state } })]);
}

describe("WatchDeployments", () => {
  it("sends a snapshot of the workspace, then every change, and resumes from any cursor with no gap and no duplicate", async () => {
    const a = await createDeployment(deps, alice, createInput({ suffix: "wa" }));
    const b = await createDeployment(deps, alice, createInput({ suffix: "wb" }));
    await createDeployment(deps, bob, createInput({ suffix: "elsewhere" }));
    const ac = new AbortController();
    const it = client.watchDeployments({}, { headers: { authorization: `Bearer ${key}` }, signal: ac.signal })[Symbol.asyncIterator]();
    const snap = await take(it, 2);
    expect(snap.map((e) => e.type)).toEqual([EventType.SNAPSHOT, EventType.SNAPSHOT]);
    expect(new Set(snap.map((e) => e.deployment!.uid))).toEqual(new Set([a.deployment.uid, b.deployment.uid]));
    // Only the last snapshot message resumes after all of it.
    expect(snap[0]!.cursor).toBe("");
    expect(snap[1]!.cursor).not.toBe("");

    const c = await createDeployment(deps, alice, createInput({ suffix: "wc" }));
    await move(a.deployment.uid, "RUNNING");
    await createDeployment(deps, bob, createInput({ suffix: "elsewhere2" }));
    await move(b.deployment.uid, "FAILED");
    const live = await take(it, 3);
    expect(ids(live)).toEqual([`${c.deployment.uid}#1`, `${a.deployment.uid}#2`, `${b.deployment.uid}#2`]);
    expect(live.map((e) => e.deployment!.state)).toEqual([DeploymentState.PENDING, DeploymentState.RUNNING, DeploymentState.FAILED]);
    ac.abort();

    // From the snapshot's cursor: the three changes; from the first change's: the last two.
    for (const [from, expected] of [
      [snap[1]!.cursor, live],
      [live[0]!.cursor, live.slice(1)],
    ] as const) {
      const ac2 = new AbortController();
      const again = client.watchDeployments({ afterCursor: from }, { headers: { authorization: `Bearer ${key}` }, signal: ac2.signal })[Symbol.asyncIterator]();
      const got = await take(again, expected.length);
      expect(ids(got)).toEqual(ids(expected));
      // Nothing more, until the next change, which comes next (no duplicate of the old ones).
      await move(c.deployment.uid, "STOPPED");
      const [next] = await take(again, 1);
      expect(next!.deployment!.uid).toBe(c.deployment.uid);
      expect(next!.deployment!.state).toBe(DeploymentState.STOPPED);
      ac2.abort();
    }
  });

  it("misses nothing when transactions commit out of cursor order", async () => {
    const carol: Principal = { workspace: "ooo", name: "carol", scopes: alice.scopes };
    const x = await createDeployment(deps, carol, createInput({ suffix: "x" }));
    const y = await createDeployment(deps, carol, createInput({ suffix: "y" }));
    const it = openWorkspaceWatch({ db: tdb.db, bus, safetyMs: 100 }, { workspace: "ooo", states: [], afterCursor: "" });
    const snap = await take(it, 2);

    // x's change takes its cursor first but commits last.
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let inserted!: () => void;
    const didInsert = new Promise<void>((r) => (inserted = r));
    const slow = tdb.db.transaction().execute(async (trx) => {
      const e = await applyChange(trx, { deploymentUid: x.deployment.uid, type: "STATE_CHANGED", deployment: { state: "RUNNING" } });
      inserted();
      await held;
      return e;
    });
    await didInsert;
    await move(y.deployment.uid, "FAILED");
    const [ey] = await take(it, 1);
    expect(ids([ey!])).toEqual([`${y.deployment.uid}#2`]);
    release();
    deps.sink([await slow]);
    const [ex] = await take(it, 1);
    expect(ids([ex!])).toEqual([`${x.deployment.uid}#2`]);
    expect(BigInt((await slow).cursor)).toBeLessThan(
      BigInt(
        (await tdb.db.selectFrom("events").select("cursor").where("deployment_uid", "=", y.deployment.uid).where("sequence", "=", 2).executeTakeFirstOrThrow())
          .cursor,
      ),
    );
    await it.return!();

    // Resumed from y's cursor, x's late commit is still there; from x's, nothing is left.
    const fromY = openWorkspaceWatch({ db: tdb.db, bus, safetyMs: 100 }, { workspace: "ooo", states: [], afterCursor: ey!.cursor });
    expect(ids(await take(fromY, 1))).toEqual([`${x.deployment.uid}#2`]);
    await fromY.return!();
    const fromSnapshot = openWorkspaceWatch({ db: tdb.db, bus, safetyMs: 100 }, { workspace: "ooo", states: [], afterCursor: snap[1]!.cursor });
    expect(new Set(ids(await take(fromSnapshot, 2)))).toEqual(new Set([`${x.deployment.uid}#2`, `${y.deployment.uid}#2`]));
    await fromSnapshot.return!();
    const fromX = openWorkspaceWatch({ db: tdb.db, bus, safetyMs: 100 }, { workspace: "ooo", states: [], afterCursor: ex!.cursor });
    await move(x.deployment.uid, "STOPPED");
    expect(ids(await take(fromX, 1))).toEqual([`${x.deployment.uid}#3`]);
    await fromX.return!();
  });

  it("reads page by page, resumes at a page boundary, and filters by state", async () => {
    const dave: Principal = { workspace: "paged", name: "dave", scopes: alice.scopes };
    const created = [];
    for (const suffix of ["p1", "p2", "p3"]) created.push(await createDeployment(deps, dave, createInput({ suffix })));
    const all = openWorkspaceWatch({ db: tdb.db, bus, pageSize: 2, safetyMs: 100 }, { workspace: "paged", states: [], afterCursor: "" });
    const snapshot = await take(all, 3);
    expect(snapshot.every((e) => e.type === EventType.SNAPSHOT)).toBe(true);
    // Filtered, from the snapshot's position.
    const running = openWorkspaceWatch(
      { db: tdb.db, bus, pageSize: 2, safetyMs: 100 },
      { workspace: "paged", states: ["RUNNING"], afterCursor: snapshot[2]!.cursor },
    );
    const [p1, p2, p3] = created.map((c) => c.deployment.uid) as [string, string, string];
    await move(p1, "RUNNING");
    await move(p2, "RUNNING");
    await move(p3, "FAILED");
    await move(p1, "STOPPED");
    await move(p2, "RUNNING");
    const changes = await take(all, 5);
    expect(ids(changes)).toEqual([`${p1}#2`, `${p2}#2`, `${p3}#2`, `${p1}#3`, `${p2}#3`]);
    // Filtered: in RUNNING, or leaving it (p1 to STOPPED); p3 never shows.
    expect(ids(await take(running, 4))).toEqual([`${p1}#2`, `${p2}#2`, `${p1}#3`, `${p2}#3`]);
    await running.return!();
    // Resumed from the end of the first page (2 events a page).
    const resumed = openWorkspaceWatch({ db: tdb.db, bus, pageSize: 2, safetyMs: 100 }, { workspace: "paged", states: [], afterCursor: changes[1]!.cursor });
    expect(ids(await take(resumed, 3))).toEqual(ids(changes.slice(2)));
    await resumed.return!();
    await all.return!();
  });

  it("refuses a cursor that is not one, and unknown states", async () => {
    const bad = async (req: { afterCursor?: string; states?: DeploymentState[] }) => {
      try {
        for await (const _ of client.watchDeployments(req, { headers: { authorization: `Bearer ${key}` } })) break;
      } catch (e) {
        return e as ConnectError;
      }
      throw new Error("not refused");
    };
    const cursor = await bad({ afterCursor: "not-a-cursor" });
    expect(cursor.code).toBe(Code.InvalidArgument);
    expect(errorInfoOf(cursor)?.reason).toBe("CURSOR_INVALID");
    const states = await bad({ states: [DeploymentState.UNSPECIFIED] });
    expect(errorInfoOf(states)?.reason).toBe("STATE_INVALID");
  });
});
