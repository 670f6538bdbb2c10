// A pooled pg client, made safe to hand out, and the connection Kysely uses
// (gated-driver.ts):
// - a query that gets no answer in time fails (UNAVAILABLE) and ends the
//   connection. pg's own query_timeout reports by message text only and
//   leaves the connection busy with the unanswered query;
// - a connection that died, timed out or was discarded (a failed ROLLBACK)
//   is destroyed on release, never pooled again, and refuses further queries
//   at once (a transaction's ROLLBACK on it must not wait out a second timeout);
// - every error leaves classified (db-errors.ts).
import type { CompiledQuery, DatabaseConnection, QueryResult } from "kysely";
import type pg from "pg";
import { classifyQueryError, databaseUnavailable } from "./db-errors.js";

export class GuardedClient implements DatabaseConnection {
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

  async executeQuery<R>(compiled: CompiledQuery): Promise<QueryResult<R>> {
    const { command, rowCount, rows } = await this.run(compiled.sql, compiled.parameters);
    // What kysely's PostgresConnection reports: COMMIT/ROLLBACK by tag, affected rows for writes.
    if (command === "ROLLBACK" || command === "COMMIT") return { rows: [{ command } as R] };
    const writes = command === "INSERT" || command === "UPDATE" || command === "DELETE" || command === "MERGE";
    return { numAffectedRows: writes ? BigInt(rowCount ?? 0) : undefined, rows: (rows ?? []) as R[] };
  }

  // Kysely streams only through a cursor class; this project gives none.
  // eslint-disable-next-line require-yield
  async *streamQuery<R>(): AsyncIterableIterator<QueryResult<R>> {
    throw new Error("streaming queries are not supported");
  }

  // pg's callback form: one promise per query here, instead of pg's own
  // promise, its stack-rewriting catch and ours (measurable per query).
  private run(sql: string, parameters: readonly unknown[]): Promise<pg.QueryResult> {
    if (this.isBroken()) return Promise.reject(databaseUnavailable("the database connection was lost"));
    return new Promise((resolve, reject) => {
      const ms = this.queryTimeoutMs;
      let timedOut = false;
      const timer =
        ms === undefined
          ? undefined
          : setTimeout(() => {
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
        else resolve(result!);
      };
      try {
        this.client.query(sql, parameters as unknown[], done);
      } catch (err) {
        done(err instanceof Error ? err : new Error(String(err)));
      }
    });
  }

  /** Never pool this connection again (its state is unknown). */
  discard(): void {
    this.broken = true;
  }

  release(): void {
    // pg-pool removes (ends) a client released with any truthy argument.
    this.client.release(this.isBroken() ? true : undefined);
    this.onReleased();
  }
}
