// The db layer against a Postgres that stops, dies and hangs (a private
// server): no error escapes as an unhandled 'error' event, every failure is
// DependencyUnavailableError("database") and comes fast, the same Kysely
// instance works again once the server is back, and a connection whose query
// got no answer is dropped, never handed out again.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sql } from "kysely";
import { createDb, dbForCall, type Db } from "../../src/db/connect.js";
import { DependencyUnavailableError } from "../../src/domain/errors.js";
import { createDatabaseOn, startPrivatePostgres, type PrivatePostgres } from "../helpers/private-postgres.js";
import { waitFor } from "../helpers/services.js";

const POOL = 5;
const QUERY_TIMEOUT_MS = 1500;
let server: PrivatePostgres;
let db: Db;
const uncaught: unknown[] = [];
const onUncaught = (err: unknown) => uncaught.push(err);

beforeAll(async () => {
  process.on("uncaughtException", onUncaught);
  server = await startPrivatePostgres();
  const url = await createDatabaseOn(server.url, "faults");
  db = createDb({ url, poolMax: POOL, connectTimeoutMs: 1000, statementTimeoutMs: 1000, queryTimeoutMs: QUERY_TIMEOUT_MS, maxWaiting: 200 });
  await sql`create table writes (n int not null)`.execute(db);
});

afterAll(async () => {
  process.off("uncaughtException", onUncaught);
  await db?.destroy();
  await server?.destroy();
});

const isDatabaseUnavailable = (err: unknown) => err instanceof DependencyUnavailableError && err.dependency === "database";

/** Queries and transactions in a loop until stopped; failures other than "database unavailable" are kept. */
function load(workers: number) {
  let stopped = false;
  let ok = 0;
  let unavailable = 0;
  const unexpected: unknown[] = [];
  const loops = Array.from({ length: workers }, async (_, i) => {
    while (!stopped) {
      try {
        if (i % 2 === 0) await sql`select pg_sleep(0.01)`.execute(db);
        else {
          await db.transaction().execute(async (trx) => {
            await sql`insert into writes values (${i})`.execute(trx);
            await sql`select pg_sleep(0.01)`.execute(trx);
            await sql`insert into writes values (${i})`.execute(trx);
          });
        }
        ok++;
      } catch (err) {
        if (isDatabaseUnavailable(err)) unavailable++;
        else unexpected.push(err);
        await new Promise((r) => setTimeout(r, 5));
      }
    }
  });
  return {
    counts: () => ({ ok, unavailable }),
    async stop() {
      stopped = true;
      await Promise.all(loops);
      return unexpected;
    },
  };
}

/** How one query fares now: its outcome and how long it took. */
async function probe(): Promise<{ ok: boolean; err?: unknown; ms: number }> {
  const started = performance.now();
  try {
    await sql`select 1`.execute(db);
    return { ok: true, ms: performance.now() - started };
  } catch (err) {
    return { ok: false, err, ms: performance.now() - started };
  }
}

describe("Postgres stopped and killed under load", () => {
  for (const fault of ["fast", "immediate", "kill"] as const) {
    it(`survives ${fault === "kill" ? "a SIGKILL" : `pg_ctl stop -m ${fault}`} with queries and transactions in flight, then recovers`, async () => {
      const l = load(12);
      try {
        await waitFor("load running", () => l.counts().ok > 50);
        if (fault === "kill") await server.kill();
        else await server.stop(fault);
        // While it is down, calls fail fast and say why.
        const down = await probe();
        expect(down.ok).toBe(false);
        expect(isDatabaseUnavailable(down.err)).toBe(true);
        expect(down.ms).toBeLessThan(1000);
        const failedBefore = l.counts().unavailable;
        await waitFor("load fails meanwhile", () => l.counts().unavailable > failedBefore + 10);
        await server.start();
        await waitFor("a query succeeds again", async () => (await probe()).ok, 10_000, 20);
        const okAfter = l.counts().ok;
        await waitFor("load succeeds again", () => l.counts().ok > okAfter + 50, 10_000);
      } finally {
        expect(await l.stop()).toEqual([]);
      }
      expect(uncaught).toEqual([]);
    });
  }
});

describe("Postgres frozen (SIGSTOP)", () => {
  it("fails a query after the query timeout, ends a waiting call at its deadline, and never reuses a timed-out connection", async () => {
    // Every pooled connection, each with its own backend pid.
    const pidsOf = async () =>
      new Set(
        await Promise.all(
          Array.from({ length: POOL }, async () => (await sql<{ pid: number }>`select pg_backend_pid() as pid, pg_sleep(0.2)`.execute(db)).rows[0]!.pid),
        ),
      );
    const before = await pidsOf();
    expect(before.size).toBe(POOL);
    server.freeze();
    try {
      const started = performance.now();
      const hung = Array.from({ length: POOL }, () =>
        sql`select 1`.execute(db).then(
          () => undefined,
          (e: unknown) => e,
        ),
      );
      // Every connection is held by an unanswered query: a call waits, and leaves at its deadline.
      const waited = await sql`select 1`.execute(dbForCall(db, { signal: AbortSignal.timeout(300) })).catch((e: unknown) => e);
      expect((waited as DOMException).name).toBe("TimeoutError");
      const errors = await Promise.all(hung);
      const elapsed = performance.now() - started;
      for (const err of errors) {
        expect(isDatabaseUnavailable(err)).toBe(true);
        expect((err as Error).message).toBe(`the database did not answer within ${QUERY_TIMEOUT_MS} ms`);
      }
      expect(elapsed).toBeGreaterThanOrEqual(QUERY_TIMEOUT_MS - 50);
      expect(elapsed).toBeLessThan(QUERY_TIMEOUT_MS + 5000);
      // New connections to a hung server time out too.
      const connecting = await probe();
      expect(isDatabaseUnavailable(connecting.err)).toBe(true);
    } finally {
      server.thaw();
    }
    await waitFor("a query succeeds after the thaw", async () => (await probe()).ok, 10_000, 20);
    const after = await pidsOf();
    expect([...after].filter((pid) => before.has(pid))).toEqual([]);
    expect(uncaught).toEqual([]);
  });
});
