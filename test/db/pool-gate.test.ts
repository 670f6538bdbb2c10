// The gate in front of the pool: callers waiting for a connection leave the
// queue the moment their call is cancelled or its deadline passes (their
// queries never run), the queue is bounded, and the wait is timed; work done
// outside any call waits as before.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sql, type Kysely } from "kysely";
import pg from "pg";
import { createGatedDb, dbForCall, executePreparedSql } from "../../src/db/connect.js";
import type { Database } from "../../src/db/database.js";
import { createPoolGate, type PoolGate } from "../../src/db/pool-gate.js";
import { DependencyUnavailableError } from "../../src/domain/errors.js";
import { createTestDatabase, waitFor, type TestDatabase } from "../helpers/services.js";

let tdb: TestDatabase;
const opened: Array<Kysely<Database>> = [];

beforeAll(async () => {
  tdb = await createTestDatabase({ migrate: false });
  await sql`create table ran (caller text not null)`.execute(tdb.db);
});

afterAll(async () => {
  for (const db of opened) await db.destroy();
  await tdb?.drop();
});

function gated(o: { size: number; maxWaiting?: number; waitTimeoutMs?: number }): { db: Kysely<Database>; gate: PoolGate } {
  const pool = new pg.Pool({ connectionString: tdb.url, max: o.size });
  const gate = createPoolGate(pool, { size: o.size, maxWaiting: o.maxWaiting, waitTimeoutMs: o.waitTimeoutMs ?? 60_000, queryTimeoutMs: undefined });
  const db = createGatedDb(gate);
  opened.push(db);
  return { db, gate };
}

/** Holds every connection of `db` until release() is called. */
async function holdAll(db: Kysely<Database>, gate: PoolGate, size: number) {
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  const holders = Array.from({ length: size }, () => db.connection().execute(async () => released));
  await waitFor("every connection held", () => gate.stats().active === size);
  return {
    release: async () => {
      release();
      await Promise.all(holders);
    },
  };
}

const insert = (db: Kysely<Database>, caller: string) => sql`insert into ran values (${caller})`.execute(db);
const ranBy = async (prefix: string) => (await sql<{ n: string }>`select count(*) as n from ran where caller like ${prefix + "%"}`.execute(tdb.db)).rows[0]!.n;

describe("pool gate", () => {
  it("lets a cancelled caller leave the queue at once; its query never runs", async () => {
    const { db, gate } = gated({ size: 2 });
    const held = await holdAll(db, gate, 2);
    const calls = Array.from({ length: 200 }, (_, i) => {
      const ac = new AbortController();
      const done = insert(dbForCall(db, { signal: ac.signal }), `cancelled-${i}`).then(
        () => "ran",
        (e: unknown) => e,
      );
      return { ac, done };
    });
    const kept = insert(dbForCall(db, { signal: new AbortController().signal }), "kept-1");
    await waitFor("all queued", () => gate.stats().waiting === 201);
    const reason = new Error("client went away");
    for (const c of calls) c.ac.abort(reason);
    // They leave while the connections are still held: nothing else could free them.
    expect(gate.stats().waiting).toBe(1);
    for (const c of calls) expect(await c.done).toBe(reason);
    await held.release();
    await kept;
    expect(await ranBy("cancelled-")).toBe("0");
    expect(await ranBy("kept-")).toBe("1");
    expect(gate.stats()).toEqual({ active: 0, waiting: 0 });
  });

  it("listens through a call's onAbort, when it has one, without making its signal", async () => {
    const { db, gate } = gated({ size: 1 });
    const held = await holdAll(db, gate, 1);
    let listener: ((reason: unknown) => void) | undefined;
    let stopped = 0;
    const call = {
      get signal(): AbortSignal {
        throw new Error("the signal was read");
      },
      onAbort(l: (reason: unknown) => void) {
        listener = l;
        return () => stopped++;
      },
    };
    const waiting = insert(dbForCall(db, call), "onabort-1").catch((e: unknown) => e);
    await waitFor("queued", () => gate.stats().waiting === 1);
    const reason = new Error("deadline");
    listener!(reason);
    expect(await waiting).toBe(reason);
    expect(gate.stats().waiting).toBe(0);
    expect(stopped).toBe(1);
    // Already aborted: refused with its reason, never queued.
    const gone = {
      get signal(): AbortSignal {
        throw new Error("the signal was read");
      },
      onAbort: (l: (reason: unknown) => void) => (l(reason), () => {}),
    };
    expect(await insert(dbForCall(db, gone), "onabort-2").catch((e: unknown) => e)).toBe(reason);
    await held.release();
    expect(await ranBy("onabort-")).toBe("0");
  });

  it("runs prepared SQL on the gate for a call (its abort ends the wait), and a transaction's on the transaction's connection", async () => {
    const { db, gate } = gated({ size: 1 });
    // The transaction holds the only connection: a statement that went to the gate would wait forever.
    await db.transaction().execute(async (trx) => {
      const [a] = await executePreparedSql<{ pid: number }>(trx, "select pg_backend_pid() as pid", []);
      const [b] = await executePreparedSql<{ pid: number }>(trx, "select pg_backend_pid() as pid", []);
      expect(a!.pid).toBe(b!.pid);
    });
    const held = await holdAll(db, gate, 1);
    const reason = new Error("client went away");
    const ac = new AbortController();
    const waiting = executePreparedSql(dbForCall(db, { signal: ac.signal }), "select 1 as n", []).catch((e: unknown) => e);
    await waitFor("queued", () => gate.stats().waiting === 1);
    ac.abort(reason);
    expect(await waiting).toBe(reason);
    await held.release();
    expect(await executePreparedSql<{ n: number }>(db, "select 1 as n", [])).toEqual([{ n: 1 }]);
    expect(gate.stats()).toEqual({ active: 0, waiting: 0 });
  });

  it("ends a caller's wait at its deadline", async () => {
    const { db, gate } = gated({ size: 1 });
    const held = await holdAll(db, gate, 1);
    const late = insert(dbForCall(db, { signal: AbortSignal.timeout(200) }), "deadline-1").catch((e: unknown) => e);
    const err = await late;
    expect(err).toBeInstanceOf(DOMException);
    expect((err as DOMException).name).toBe("TimeoutError");
    expect(gate.stats().waiting).toBe(0);
    await held.release();
    expect(await ranBy("deadline-")).toBe("0");
  });

  it("refuses at once past maxWaiting, and times a wait out", async () => {
    const { db, gate } = gated({ size: 1, maxWaiting: 3, waitTimeoutMs: 300 });
    const held = await holdAll(db, gate, 1);
    const waiting = Array.from({ length: 3 }, (_, i) => insert(db, `bounded-${i}`).catch((e: unknown) => e));
    const refused = await insert(db, "bounded-refused").catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(DependencyUnavailableError);
    expect((refused as DependencyUnavailableError).dependency).toBe("database");
    expect((refused as Error).message).toBe("database busy: 3 calls waiting");
    for (const w of await Promise.all(waiting)) {
      expect(w).toBeInstanceOf(DependencyUnavailableError);
      expect((w as Error).message).toMatch(/^no database connection free within 300 ms/);
    }
    await held.release();
    expect(await ranBy("bounded-")).toBe("0");
    await insert(db, "bounded-after");
    expect(await ranBy("bounded-")).toBe("1");
  });

  it("keeps work outside any call waiting until a connection frees, in order", async () => {
    const { db, gate } = gated({ size: 1 });
    const held = await holdAll(db, gate, 1);
    const order: number[] = [];
    const outside = Array.from({ length: 5 }, (_, i) => insert(db, `outside-${i}`).then(() => order.push(i)));
    await waitFor("queued", () => gate.stats().waiting === 5);
    await held.release();
    await Promise.all(outside);
    expect(order).toEqual([0, 1, 2, 3, 4]);
    expect(await ranBy("outside-")).toBe("5");
  });
});
