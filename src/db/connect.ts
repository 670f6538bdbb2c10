// One Kysely instance per process over a pg pool with bounded waits.
import { Kysely, PostgresDialect } from "kysely";
import pg from "pg";
import type { Database } from "./database.js";

export interface DbOptions {
  url: string;
  poolMax: number;
  connectTimeoutMs: number;
}

export type Db = Kysely<Database>;

export function createDb(options: DbOptions): Db {
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.poolMax,
    // pg waits forever by default when the pool is exhausted or the server is gone.
    connectionTimeoutMillis: options.connectTimeoutMs,
    idleTimeoutMillis: 30_000,
  });
  // An idle client's error (server restart) must not crash the process.
  pool.on("error", () => {});
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
}
