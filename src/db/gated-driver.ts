// Kysely's Driver for Postgres over the pool gate (pool-gate.ts), in place
// of kysely's PostgresDriver: a connection may be acquired on behalf of a
// call (its signal ends the wait), and the connection Kysely sees is the
// GuardedClient itself, not one more wrapper per query.
import {
  AbortedTransactionError,
  CompiledQuery,
  createQueryId,
  IdentifierNode,
  RawNode,
  type ConnectionProvider,
  type DatabaseConnection,
  type Driver,
  type QueryCompiler,
  type TransactionSettings,
} from "kysely";
import type { CallScope } from "./call-scope.js";
import type { GuardedClient } from "./guarded-client.js";
import type { PoolGate } from "./pool-gate.js";

const savepointCommand = (command: string, name: string) => RawNode.createWithChildren([RawNode.createWithSql(`${command} `), IdentifierNode.create(name)]);

export class GatedDriver implements Driver {
  constructor(private readonly gate: PoolGate) {}

  async init(): Promise<void> {}

  acquireConnection(call?: CallScope): Promise<GuardedClient> {
    return this.gate.connect(call);
  }

  async beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    let text = "begin";
    if (settings.isolationLevel !== undefined || settings.accessMode !== undefined) {
      text = "start transaction";
      if (settings.isolationLevel !== undefined) text += ` isolation level ${settings.isolationLevel}`;
      if (settings.accessMode !== undefined) text += ` ${settings.accessMode}`;
    }
    await connection.executeQuery(CompiledQuery.raw(text));
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    const { rows } = await connection.executeQuery<{ command?: string }>(CompiledQuery.raw("commit"));
    // Postgres answers COMMIT with ROLLBACK when an earlier statement failed.
    if (rows[0]?.command === "ROLLBACK") throw new AbortedTransactionError();
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    try {
      await connection.executeQuery(CompiledQuery.raw("rollback"));
    } catch (err) {
      // Its state is unknown: never pool it again.
      (connection as GuardedClient).discard();
      throw err;
    }
  }

  async savepoint(connection: DatabaseConnection, name: string, compile: QueryCompiler["compileQuery"]): Promise<void> {
    await connection.executeQuery(compile(savepointCommand("savepoint", name), createQueryId()));
  }

  async rollbackToSavepoint(connection: DatabaseConnection, name: string, compile: QueryCompiler["compileQuery"]): Promise<void> {
    await connection.executeQuery(compile(savepointCommand("rollback to", name), createQueryId()));
  }

  async releaseSavepoint(connection: DatabaseConnection, name: string, compile: QueryCompiler["compileQuery"]): Promise<void> {
    await connection.executeQuery(compile(savepointCommand("release", name), createQueryId()));
  }

  async releaseConnection(connection: DatabaseConnection): Promise<void> {
    (connection as GuardedClient).release();
  }

  async destroy(): Promise<void> {
    await this.gate.end();
  }
}

/** Connections for the work of one call: waits for one end with the call. */
export class CallConnectionProvider implements ConnectionProvider {
  constructor(
    private readonly driver: GatedDriver,
    private readonly call: CallScope,
  ) {}

  async provideConnection<T>(consumer: (connection: DatabaseConnection) => Promise<T>): Promise<T> {
    const connection = await this.driver.acquireConnection(this.call);
    try {
      return await consumer(connection);
    } finally {
      connection.release();
    }
  }
}
