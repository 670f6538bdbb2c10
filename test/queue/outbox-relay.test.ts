// The relay's passes serve every call: one woken from inside a call's scope
// must not stop when that call is cancelled or completes.
import { jetstreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, expect, it } from "vitest";
import { runInCallScope } from "../../src/db/call-scope.js";
import { createDb, type Db } from "../../src/db/connect.js";
import { insertOutbox } from "../../src/db/outbox.js";
import { silentLogger } from "../../src/log.js";
import { startOutboxRelay } from "../../src/queue/outbox-relay.js";
import { createTestDatabase, createTestQueue, waitFor, type TestDatabase, type TestQueue } from "../helpers/services.js";

let tdb: TestDatabase;
let tq: TestQueue;
let db: Db;

beforeAll(async () => {
  tdb = await createTestDatabase();
  tq = await createTestQueue();
  // One connection, so that the relay's pass must wait for it.
  db = createDb({ url: tdb.url, poolMax: 1, connectTimeoutMs: 30_000 });
});

afterAll(async () => {
  await db?.destroy();
  await tq?.drop();
  await tdb?.drop();
});

it("publishes a pass woken by a call that is cancelled while the pass waits for a connection", async () => {
  // A long interval: only the wake can publish the row within the test.
  const relay = startOutboxRelay({ db, publisher: tq.queue, logger: silentLogger, intervalMs: 600_000 });
  try {
    await waitFor("the relay's first pass", async () => (await db.selectFrom("outbox").select("id").execute()).length === 0);
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let holding!: () => void;
    const isHeld = new Promise<void>((r) => (holding = r));
    const holder = db.transaction().execute(async (trx) => {
      await insertOutbox(trx, "task-1", "msg-1");
      holding();
      await held;
    });
    await isHeld;
    const call = new AbortController();
    runInCallScope({ signal: call.signal }, () => relay.wake());
    call.abort(new Error("the call has completed"));
    release();
    await holder;
    await waitFor("the outbox row published and removed", async () => (await tdb.db.selectFrom("outbox").select("id").execute()).length === 0);
    const jsm = await jetstreamManager(tq.nc);
    expect((await jsm.streams.info(tq.stream)).state.messages).toBe(1);
  } finally {
    await relay.stop();
  }
});
