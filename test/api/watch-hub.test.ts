// WatchDeployment on the shared feed, against real Postgres and NATS: idle
// watches issue no query, an event is serialized once for all its gRPC
// streams, and every watch stays gapless and ordered when the feed drops and
// reconnects, when events arrive out of order, and when one arrives before
// its predecessor can be read.
import type { KyselyPlugin } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bindService } from "../../src/api/call-wrapper.js";
import { createDeploymentService } from "../../src/api/deployment-service.js";
import type { ApiDeps } from "../../src/api/deps.js";
import { createGrpcServer, type GrpcServer } from "../../src/api/grpc-server.js";
import { createDeployment } from "../../src/deployments/create.js";
import { createSharedSerializer } from "../../src/api/shared-serializer.js";
import { createWatchHub, type WatchHub } from "../../src/api/watch-hub.js";
import { createApiKey } from "../../src/db/api-keys.js";
import { applyChange } from "../../src/db/changes.js";
import type { Db } from "../../src/db/connect.js";
import type { DeploymentEvent } from "../../src/domain/types.js";
import { DeploymentService } from "../../src/gen/modeldeploy/v1/deployment_service_pb.js";
import type { DeploymentEvent as PbDeploymentEvent } from "../../src/gen/modeldeploy/v1/resources_pb.js";
import { silentLogger } from "../../src/log.js";
import { createEventBus, type EventBus } from "../../src/queue/event-bus.js";
import { connectNats, type NatsConnection } from "../../src/queue/nats.js";
import { createInput, testApiDeps } from "../helpers/api-deps.js";
import { grpcClient, serverStream } from "../helpers/grpc-client.js";
import { startPrivateNats, type PrivateNats } from "../helpers/private-nats.js";
import { createTestDatabase, randomName, waitFor, type TestDatabase } from "../helpers/services.js";

/** Counts every query executed through the Db it is plugged into. */
function queryCounter(): KyselyPlugin & { count: number } {
  return {
    count: 0,
    transformQuery: (args) => args.node,
    transformResult(args) {
      this.count++;
      return Promise.resolve(args.result);
    },
  };
}

let tdb: TestDatabase;
let nats: PrivateNats;
let apiNc: NatsConnection;
let publisherNc: NatsConnection;
let apiBus: EventBus;
let publisher: EventBus;
const prefix = randomName("mdwatch");
const cleanups: Array<() => Promise<void> | void> = [];

beforeAll(async () => {
  tdb = await createTestDatabase();
  nats = await startPrivateNats();
  apiNc = await connectNats(nats.url, "modeldeploy-test-watch-api");
  publisherNc = await connectNats(nats.url, "modeldeploy-test-watch-publisher");
  apiBus = createEventBus(apiNc, prefix);
  publisher = createEventBus(publisherNc, prefix);
});

afterAll(async () => {
  for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => {});
  await apiBus?.close();
  await publisher?.close();
  await apiNc?.close();
  await publisherNc?.close();
  await nats?.destroy();
  await tdb?.drop();
});

/** A deployment to watch, created through the API's own mutation path. */
async function newDeployment(deps: ApiDeps): Promise<{ name: string; uid: string }> {
  const { deployment } = await createDeployment(deps, { workspace: "acme", name: "tester", scopes: [] }, createInput());
  return { name: deployment.name, uid: deployment.uid };
}

/** Reads a hub stream in the background; `seen` holds the sequences in the order received. */
function reader(it: AsyncIterableIterator<PbDeploymentEvent>) {
  const seen: number[] = [];
  const done = (async () => {
    for await (const e of it) seen.push(Number(e.sequence));
  })();
  return { seen, done, stop: () => it.return?.() };
}

function hubWith(db: Db, o: { reconcileMs?: number } = {}): WatchHub {
  const hub = createWatchHub({ db, bus: apiBus, logger: silentLogger, reconcileMs: o.reconcileMs ?? 0 });
  cleanups.push(() => hub.close());
  return hub;
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe("watch hub", () => {
  it("opens a watch with one query, and idle watches issue none, even while events arrive in order", async () => {
    const counter = queryCounter();
    const db = tdb.db.withPlugin(counter);
    const deps = testApiDeps(tdb.db, publisher);
    const d = await newDeployment(deps);
    const hub = hubWith(db);
    const before = counter.count;
    const readers: Array<ReturnType<typeof reader>> = [];
    for (let i = 0; i < 200; i++) {
      readers.push(reader(await hub.open({ workspace: "acme", name: d.name, afterSequence: undefined, untilDeleted: false })));
    }
    expect(counter.count - before).toBe(200);
    await waitFor("every snapshot", () => readers.every((r) => r.seen.length === 1));
    const opened = counter.count;
    // Longer than the old per-stream poll (2 s): nothing is read while idle.
    await new Promise((r) => setTimeout(r, 2500));
    expect(counter.count).toBe(opened);
    // Events in order come from the feed alone.
    for (let i = 0; i < 3; i++) publisher.publish([await applyChange(tdb.db, { deploymentUid: d.uid, type: "PROGRESS", deployment: { modifier: `p${i}` } })]);
    await waitFor("three events on every stream", () => readers.every((r) => r.seen.length === 4));
    expect(counter.count).toBe(opened);
    for (const r of readers) expect(r.seen).toEqual(range(1, 4));
    await Promise.all(readers.map((r) => r.stop()));
    expect(hub.stats()).toEqual({ channels: 0, opening: 0 });
  });

  it("delivers in order an event published out of order, and one whose predecessor the feed lost", async () => {
    const deps = testApiDeps(tdb.db, publisher);
    const d = await newDeployment(deps);
    const hub = hubWith(tdb.db);
    const r = reader(await hub.open({ workspace: "acme", name: d.name, afterSequence: undefined, untilDeleted: false }));
    const e2 = await applyChange(tdb.db, { deploymentUid: d.uid, type: "PROGRESS", deployment: { modifier: "a" } });
    const e3 = await applyChange(tdb.db, { deploymentUid: d.uid, type: "PROGRESS", deployment: { modifier: "b" } });
    publisher.publish([e3, e2]);
    // 4 is never published: 5 shows the gap, which is read from Postgres.
    await applyChange(tdb.db, { deploymentUid: d.uid, type: "PROGRESS", deployment: { modifier: "c" } });
    publisher.publish([await applyChange(tdb.db, { deploymentUid: d.uid, type: "PROGRESS", deployment: { modifier: "d" } })]);
    await waitFor("sequence 5", () => r.seen.includes(5));
    expect(r.seen).toEqual(range(1, 5));
    await r.stop();
  });

  it("holds an event that arrives before its predecessor is visible, then delivers both in order", async () => {
    const deps = testApiDeps(tdb.db, publisher);
    const d = await newDeployment(deps);
    const hub = hubWith(tdb.db);
    const r = reader(await hub.open({ workspace: "acme", name: d.name, afterSequence: undefined, untilDeleted: false }));
    let commit!: () => void;
    const held = new Promise<void>((resolve) => (commit = resolve));
    let e2: DeploymentEvent | undefined;
    // Sequence 2 is written but not committed while 3 arrives live.
    const tx = tdb.db.transaction().execute(async (trx) => {
      e2 = await applyChange(trx, { deploymentUid: d.uid, type: "PROGRESS", deployment: { modifier: "held" } });
      await held;
    });
    await waitFor("sequence 2 written", () => e2);
    publisher.publish([{ ...e2!, sequence: 3, cursor: "" }]);
    // The hub looks for 2 in Postgres and does not find it yet.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(r.seen).toEqual([1]);
    commit();
    await tx;
    await waitFor("sequences 2 and 3", () => r.seen.length === 3);
    expect(r.seen).toEqual([1, 2, 3]);
    await r.stop();
  });

  it("resumes from a sequence, replaying from Postgres then live, without gap or duplicate", async () => {
    const deps = testApiDeps(tdb.db, publisher);
    const d = await newDeployment(deps);
    const hub = hubWith(tdb.db);
    const live = reader(await hub.open({ workspace: "acme", name: d.name, afterSequence: undefined, untilDeleted: false }));
    for (let i = 0; i < 80; i++) publisher.publish([await applyChange(tdb.db, { deploymentUid: d.uid, type: "PROGRESS", deployment: { modifier: `r${i}` } })]);
    await waitFor("sequence 81 live", () => live.seen.includes(81));
    // Older than the channel keeps (64 frames): read from Postgres.
    const resumed = reader(await hub.open({ workspace: "acme", name: d.name, afterSequence: 3, untilDeleted: false }));
    const recent = reader(await hub.open({ workspace: "acme", name: d.name, afterSequence: 70, untilDeleted: false }));
    publisher.publish([await applyChange(tdb.db, { deploymentUid: d.uid, type: "PROGRESS", deployment: { modifier: "last" } })]);
    await waitFor("sequence 82 everywhere", () => [live, resumed, recent].every((r) => r.seen.includes(82)));
    expect(live.seen).toEqual(range(1, 82));
    expect(resumed.seen).toEqual(range(4, 82));
    expect(recent.seen).toEqual(range(71, 82));
    await Promise.all([live, resumed, recent].map((r) => r.stop()));
  });

  it("catches up from Postgres after the feed reconnects: gapless, ordered, one read per deployment", async () => {
    const counter = queryCounter();
    const db = tdb.db.withPlugin(counter);
    const deps = testApiDeps(tdb.db, publisher);
    const d = await newDeployment(deps);
    const hub = hubWith(db);
    const readers: Array<ReturnType<typeof reader>> = [];
    for (let i = 0; i < 50; i++) readers.push(reader(await hub.open({ workspace: "acme", name: d.name, afterSequence: undefined, untilDeleted: false })));
    publisher.publish([await applyChange(tdb.db, { deploymentUid: d.uid, type: "PROGRESS", deployment: { modifier: "before" } })]);
    await waitFor("sequence 2 everywhere", () => readers.every((r) => r.seen.includes(2)));

    await nats.stop("SIGKILL");
    // Committed while the feed is down: published into the void.
    for (let i = 0; i < 5; i++)
      publisher.publish([await applyChange(tdb.db, { deploymentUid: d.uid, type: "PROGRESS", deployment: { modifier: `down${i}` } })]);
    const beforeReconnect = counter.count;
    await nats.start();
    await waitFor("the missed events on every stream", () => readers.every((r) => r.seen.includes(7)), 60_000);
    // One read for the deployment (of its channel), not one per stream.
    expect(counter.count - beforeReconnect).toBeLessThanOrEqual(2);
    // And live again afterwards (published until the subscription is back).
    let next: DeploymentEvent | undefined;
    await waitFor(
      "a live event after the reconnect",
      async () => {
        if (next === undefined) next = await applyChange(tdb.db, { deploymentUid: d.uid, type: "PROGRESS", deployment: { modifier: "after" } });
        publisher.publish([next]);
        return readers.every((r) => r.seen.includes(8));
      },
      30_000,
      200,
    );
    for (const r of readers) expect(r.seen).toEqual(range(1, 8));
    await Promise.all(readers.map((r) => r.stop()));
  });

  it("finds an event whose publish was lost, at the next reconcile (one query for all watched deployments)", async () => {
    const deps = testApiDeps(tdb.db, publisher);
    const d = await newDeployment(deps);
    const hub = hubWith(tdb.db, { reconcileMs: 100 });
    const r = reader(await hub.open({ workspace: "acme", name: d.name, afterSequence: undefined, untilDeleted: false }));
    // The publisher "died" between commit and publish.
    await applyChange(tdb.db, { deploymentUid: d.uid, type: "PROGRESS", deployment: { modifier: "lost" } });
    await waitFor("the unpublished event", () => r.seen.includes(2));
    expect(r.seen).toEqual([1, 2]);
    await r.stop();
  });
});

describe("WatchDeployment over native gRPC", () => {
  let server: GrpcServer;
  let apiKey: string;
  let port: number;
  const serializer = createSharedSerializer();

  beforeAll(async () => {
    const deps = testApiDeps(tdb.db, apiBus, { watches: hubWith(tdb.db) });
    server = createGrpcServer({
      services: [bindService(DeploymentService, createDeploymentService(deps))],
      logger: silentLogger,
      streamSerializer: serializer,
    });
    ({ key: apiKey } = await createApiKey(tdb.db, { workspace: "acme", principal: "watcher", scopes: ["deployments:read", "deployments:write"] }));
    port = await server.listen("127.0.0.1", 0);
  });
  afterAll(async () => {
    await server?.shutdown(1000);
  });

  it("serializes one event once for all its streams", async () => {
    const client = grpcClient(DeploymentService, `127.0.0.1:${port}`);
    cleanups.push(() => client.close());
    const d = await newDeployment(testApiDeps(tdb.db, publisher));
    const streams = Array.from({ length: 50 }, () => {
      const call = serverStream<{ sequence: bigint }>(client, "watchDeployment", { name: d.name }, apiKey);
      const seen: number[] = [];
      call.on("data", (e) => seen.push(Number(e.sequence)));
      call.on("error", () => {});
      return { call, seen };
    });
    await waitFor("every snapshot", () => streams.every((s) => s.seen.length === 1));
    const before = { ...serializer.stats };
    publisher.publish([await applyChange(tdb.db, { deploymentUid: d.uid, type: "PROGRESS", deployment: { modifier: "x" } })]);
    await waitFor("the event on every stream", () => streams.every((s) => s.seen.length === 2));
    expect(serializer.stats.serialized - before.serialized).toBe(1);
    expect(serializer.stats.reused - before.reused).toBe(49);
    for (const s of streams) {
      expect(s.seen).toEqual([1, 2]);
      s.call.cancel();
    }
  });

  it("pushes every event to many streams, each gapless and in order, live and resumed", async () => {
    const client = grpcClient(DeploymentService, `127.0.0.1:${port}`);
    cleanups.push(() => client.close());
    const d = await newDeployment(testApiDeps(tdb.db, publisher));
    const watch = (request: { name: string; afterSequence?: bigint }) => {
      const call = serverStream<{ sequence: bigint }>(client, "watchDeployment", request, apiKey);
      const seen: number[] = [];
      call.on("data", (e) => seen.push(Number(e.sequence)));
      call.on("error", () => {});
      return { call, seen };
    };
    const streams = Array.from({ length: 300 }, () => watch({ name: d.name }));
    await waitFor("every snapshot", () => streams.every((s) => s.seen.length === 1));
    // Published in bursts and partly out of order: the channel orders, the streams follow.
    for (let i = 0; i < 20; i += 2) {
      const a = await applyChange(tdb.db, { deploymentUid: d.uid, type: "PROGRESS", deployment: { modifier: `m${i}` } });
      const b = await applyChange(tdb.db, { deploymentUid: d.uid, type: "PROGRESS", deployment: { modifier: `m${i + 1}` } });
      publisher.publish([b, a]);
    }
    const resumed = watch({ name: d.name, afterSequence: 5n });
    publisher.publish([await applyChange(tdb.db, { deploymentUid: d.uid, type: "PROGRESS", deployment: { modifier: "last" } })]);
    await waitFor("sequence 22 on every stream", () => [...streams, resumed].every((s) => s.seen.includes(22)));
    for (const s of streams) expect(s.seen).toEqual(range(1, 22));
    expect(resumed.seen).toEqual(range(6, 22));
    for (const s of [...streams, resumed]) s.call.cancel();
  });

  it("lets a client that stops reading fall behind without holding its events, then catches it up from Postgres", async () => {
    const counter = queryCounter();
    const hub = hubWith(tdb.db.withPlugin(counter));
    const own = createGrpcServer({
      services: [bindService(DeploymentService, createDeploymentService(testApiDeps(tdb.db, apiBus, { watches: hub })))],
      logger: silentLogger,
    });
    cleanups.push(() => own.shutdown(1000));
    const ownPort = await own.listen("127.0.0.1", 0);
    // Two connections (two targets): the stalled stream must not stall the other's connection window.
    const fastClient = grpcClient(DeploymentService, `127.0.0.1:${ownPort}`);
    const slowClient = grpcClient(DeploymentService, `localhost:${ownPort}`);
    cleanups.push(
      () => fastClient.close(),
      () => slowClient.close(),
    );
    const d = await newDeployment(testApiDeps(tdb.db, publisher));
    const watch = (client: typeof fastClient) => {
      const call = serverStream<{ sequence: bigint }>(client, "watchDeployment", { name: d.name }, apiKey);
      const seen: number[] = [];
      call.on("data", (e) => seen.push(Number(e.sequence)));
      call.on("error", () => {});
      return { call, seen };
    };
    const fast = watch(fastClient);
    const slow = watch(slowClient);
    await waitFor("both snapshots", () => fast.seen.length === 1 && slow.seen.length === 1);
    slow.call.pause();
    const before = counter.count;
    // Far more than HTTP/2 flow control, grpc-js's buffer and the channel's recent frames hold (64).
    const total = 200;
    const bulk = "x".repeat(4000);
    for (let i = 0; i < total; i++) {
      publisher.publish([await applyChange(tdb.db, { deploymentUid: d.uid, type: "PROGRESS", deployment: { modifier: `${bulk}${i}` } })]);
    }
    await waitFor("every event on the reading stream", () => fast.seen.length === total + 1, 30_000);
    expect(fast.seen).toEqual(range(1, total + 1));
    expect(slow.seen.length).toBeLessThan(total + 1);
    // Live frames went only to the stream in step: nothing was read for it.
    expect(counter.count).toBe(before);
    slow.call.resume();
    await waitFor("every event on the stream that stopped reading", () => slow.seen.length === total + 1, 30_000);
    expect(slow.seen).toEqual(range(1, total + 1));
    // What it missed while blocked came from Postgres, not from a queue of its own.
    expect(counter.count).toBeGreaterThan(before);
    fast.call.cancel();
    slow.call.cancel();
  });
});
