// One Kysely instance per process over a pg pool, behind a gate (pool-gate.ts)
// that bounds waits, the queue of waiters and every query.
import { createHash } from "node:crypto";
import { CompiledQuery, Kysely, PostgresDialect, type Compilable } from "kysely";
import pg from "pg";
import type { Database } from "./database.js";
import type { Executor } from "./executor.js";
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

/** Runs fixed SQL text (no query building per call) as a prepared statement. */
export async function executePreparedSql<R>(db: Executor, text: string, parameters: readonly unknown[]): Promise<R[]> {
  markPrepared(text);
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
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool: gate }) });
  gates.set(db, gate);
  return db;
}

const gates = new WeakMap<Db, PoolGate>();

/** Connections out and callers waiting for one, of a Db made by createDb. */
export function poolStats(db: Db): { active: number; waiting: number } | undefined {
  return gates.get(db)?.stats();
}
