// A pooled pg client as Kysely sees it, made safe to hand out:
// - a query that gets no answer in time fails (UNAVAILABLE) and ends the
//   connection. pg's own query_timeout reports by message text only and
//   leaves the connection busy with the unanswered query, and Kysely's
//   PostgresDialect releases a connection after a failed query (outside a
//   transaction) as healthy, so the next caller would queue behind it;
// - a connection that died or timed out is destroyed on release, never
//   pooled again, and refuses further queries at once (a transaction's
//   ROLLBACK on it must not wait out a second timeout);
// - every error leaves classified (db-errors.ts).
import type { PostgresCursor, PostgresPoolClient, PostgresQueryResult } from "kysely";
import type pg from "pg";
import { classifyQueryError, databaseUnavailable } from "./db-errors.js";

export class GuardedClient implements PostgresPoolClient {
  /** The connection is unusable: it timed out under a query, or died. */
  private broken = false;

  constructor(
    private readonly client: pg.PoolClient,
    private readonly queryTimeoutMs: number | undefined,
    /** Clients whose connection emitted 'error' or 'end' (see pool-gate.ts). */
    private readonly lost: WeakSet<pg.ClientBase>,
    private readonly onReleased: () => void,
  ) {}

  private isBroken(): boolean {
    return this.broken || this.lost.has(this.client);
  }

  query<R>(sql: string, parameters: readonly unknown[]): Promise<PostgresQueryResult<R>>;
  query<R>(cursor: PostgresCursor<R>): PostgresCursor<R>;
  query<R>(sql: string | PostgresCursor<R>, parameters?: readonly unknown[]): Promise<PostgresQueryResult<R>> | PostgresCursor<R> {
    // Kysely streams through cursors only when given a cursor class; this project gives none.
    if (typeof sql !== "string") throw new Error("cursors are not supported");
    return this.run<R>(sql, parameters ?? []);
  }

  // pg's callback form: one promise per query here, instead of pg's own
  // promise, its stack-rewriting catch and ours (measurable per query).
  private run<R>(sql: string, parameters: readonly unknown[]): Promise<PostgresQueryResult<R>> {
    if (this.isBroken()) return Promise.reject(databaseUnavailable("the database connection was lost"));
    return new Promise((resolve, reject) => {
      const ms = this.queryTimeoutMs;
      let timedOut = false;
      const timer = ms === undefined ? undefined : setTimeout(() => {
        timedOut = true;
        this.broken = true;
        reject(databaseUnavailable(`the database did not answer within ${ms} ms`));
        // A hung server never answers a cancel either: drop the socket.
        this.client.end().catch(() => {});
      }, ms);
      const done = (err: Error | undefined, result?: pg.QueryResult) => {
        if (timer !== undefined) clearTimeout(timer);
        if (timedOut) return;
        if (err) reject(classifyQueryError(err, this.isBroken()));
        else resolve(result as unknown as PostgresQueryResult<R>);
      };
      try {
        this.client.query(sql, parameters as unknown[], done);
      } catch (err) {
        done(err instanceof Error ? err : new Error(String(err)));
      }
    });
  }

  release(destroy?: boolean): void {
    // pg-pool removes (ends) a client released with any truthy argument.
    this.client.release(destroy === true || this.isBroken() ? true : undefined);
    this.onReleased();
  }
}
