// One Kysely instance per process over a pg pool, behind a gate (pool-gate.ts)
// that bounds waits, the queue of waiters and every query; dbForCall gives
// the same database for the work of one API call.
import { createHash } from "node:crypto";
import {
  CompiledQuery,
  Kysely,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  type Compilable,
  type Dialect,
  type Driver,
  type KyselyConfig,
} from "kysely";
import pg from "pg";
import type { CallScope } from "./call-scope.js";
import type { Database } from "./database.js";
import type { Executor } from "./executor.js";
import { CallConnectionProvider, GatedDriver } from "./gated-driver.js";
import { createPoolGate, type PoolGate } from "./pool-gate.js";

export interface DbOptions {
  url: string;
  poolMax: number;
  /** Longest wait for a connection: a free one from the pool, or a new one to the server. */
  connectTimeoutMs: number;
  /** Server-side statement_timeout; unset: the server's setting. */
  statementTimeoutMs?: number;
  /** Client-side limit on one query, for a server that does not answer at all; unset: none. */
  queryTimeoutMs?: number;
  /** Callers that may wait for a connection; past it a call fails at once; unset: no bound. */
  maxWaiting?: number;
}

export type Db = Kysely<Database>;

// Hot statements run as named prepared statements: each pooled connection
// sends Parse once and Postgres plans once per connection, instead of parsing
// and planning the text on every call. Measured on this machine, parse and
// plan of the CTE writes were a large share of Postgres' CPU per create.
// Keyed by SQL text; bounded so that a caller with unbounded SQL shapes
// cannot fill every connection with statements (beyond the cap, unnamed).
const MAX_PREPARED = 128;
const preparedNames = new Map<string, string>();

function markPrepared(text: string): void {
  if (!preparedNames.has(text) && preparedNames.size < MAX_PREPARED) {
    preparedNames.set(text, `md_${createHash("sha1").update(text).digest("hex").slice(0, 20)}`);
  }
}

/** Compiles `query` and marks its SQL text to run as a named prepared statement. */
export function prepared<R>(query: Compilable<R>): CompiledQuery<R> {
  const compiled = query.compile();
  markPrepared(compiled.sql);
  return compiled;
}

/** Runs a hot query as a prepared statement; returns its rows. */
export async function executePrepared<R>(db: Executor, query: Compilable<R>): Promise<R[]> {
  const result = await db.executeQuery(prepared(query));
  return result.rows;
}

/**
 * The gate a Db made here (createGatedDb, dbForCall) runs a statement on,
 * and the call it is for; absent on a Transaction or any other Kysely,
 * which keep their own connection.
 */
const directRoute = Symbol("modeldeploy.db.directRoute");
type Routed = { [directRoute]?: { gate: PoolGate; call: CallScope | undefined } };

/** Runs fixed SQL text (no query building per call) as a prepared statement. */
export async function executePreparedSql<R>(db: Executor, text: string, parameters: readonly unknown[]): Promise<R[]> {
  markPrepared(text);
  const route = (db as Routed)[directRoute];
  if (route !== undefined) {
    // What Kysely does here (acquire, run, release; this Db has no plugins
    // and no log), without its chain of async steps: ~5 us of a hot read.
    const connection = await route.gate.connect(route.call);
    try {
      return (await connection.executeQuery<R>(CompiledQuery.raw(text, [...parameters]))).rows;
    } finally {
      connection.release();
    }
  }
  const result = await db.executeQuery<R>(CompiledQuery.raw(text, [...parameters]));
  return result.rows;
}

/** A pg client that sends the SQL texts marked by prepared() as named statements. */
class PreparingClient extends pg.Client {}
type QueryFn = (this: pg.Client, ...args: unknown[]) => unknown;
const baseQuery = pg.Client.prototype.query as unknown as QueryFn;
// Assigned rather than overridden: pg's overloads of query() cannot be restated.
(PreparingClient.prototype as unknown as { query: QueryFn }).query = function (this: pg.Client, ...args: unknown[]) {
  // (text, values) or (text, values, callback), as guarded-client.ts calls it.
  const [text, values, callback] = args;
  if ((args.length === 2 || (args.length === 3 && typeof callback === "function")) && typeof text === "string" && Array.isArray(values)) {
    const name = preparedNames.get(text);
    if (name !== undefined) return baseQuery.call(this, { name, text, values }, callback);
  }
  return baseQuery.apply(this, args);
};

export function createDb(options: DbOptions): Db {
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.poolMax,
    // pg waits forever by default for a server that accepts but never answers.
    connectionTimeoutMillis: options.connectTimeoutMs,
    idleTimeoutMillis: 30_000,
    ...(options.statementTimeoutMs !== undefined ? { statement_timeout: options.statementTimeoutMs } : {}),
    Client: PreparingClient,
  });
  const gate = createPoolGate(pool, {
    size: options.poolMax,
    maxWaiting: options.maxWaiting,
    waitTimeoutMs: options.connectTimeoutMs,
    queryTimeoutMs: options.queryTimeoutMs,
  });
  return createGatedDb(gate);
}

interface GatedParts {
  gate: PoolGate;
  driver: GatedDriver;
  /** The driver as a call's Kysely sees it: destroying that one must not end the pool. */
  borrowed: Driver;
  dialect: Dialect;
  config: KyselyConfig;
}

const parts = new WeakMap<Db, GatedParts>();

/** A Kysely over a pool gate (createDb uses it; tests build gates of their own). */
export function createGatedDb(gate: PoolGate): Db {
  const driver = new GatedDriver(gate);
  const dialect: Dialect = {
    createDriver: () => driver,
    createAdapter: () => new PostgresAdapter(),
    createQueryCompiler: () => new PostgresQueryCompiler(),
    createIntrospector: (db) => new PostgresIntrospector(db),
  };
  const config: KyselyConfig = { dialect };
  const db = new Kysely<Database>(config);
  const borrowed: Driver = {
    init: () => driver.init(),
    acquireConnection: () => driver.acquireConnection(),
    beginTransaction: (c, s) => driver.beginTransaction(c, s),
    commitTransaction: (c) => driver.commitTransaction(c),
    rollbackTransaction: (c) => driver.rollbackTransaction(c),
    savepoint: (c, n, q) => driver.savepoint(c, n, q),
    rollbackToSavepoint: (c, n, q) => driver.rollbackToSavepoint(c, n, q),
    releaseSavepoint: (c, n, q) => driver.releaseSavepoint(c, n, q),
    releaseConnection: (c) => driver.releaseConnection(c),
    destroy: async () => {},
  };
  parts.set(db, { gate, driver, borrowed, dialect, config });
  (db as Routed)[directRoute] = { gate, call: undefined };
  return db;
}

/**
 * `db` for the work of one API call: a wait for a connection ends (with the
 * signal's reason) as soon as the call is cancelled or its deadline passes.
 * Cheap (no connection, no query); never destroy it. A Db not made by
 * createDb is returned as it is.
 */
export function dbForCall(db: Db, call: CallScope): Db {
  const p = parts.get(db);
  if (p === undefined) return db;
  const forCall = new Kysely<Database>({
    config: p.config,
    dialect: p.dialect,
    driver: p.borrowed,
    executor: db.getExecutor().withConnectionProvider(new CallConnectionProvider(p.driver, call)),
  });
  (forCall as Routed)[directRoute] = { gate: p.gate, call };
  return forCall;
}

/** Connections out and callers waiting for one, of a Db made by createDb. */
export function poolStats(db: Db): { active: number; waiting: number } | undefined {
  return parts.get(db)?.gate.stats();
}
