// pg and socket errors in the domain's words, decided by code (SQLSTATE,
// errno) or by where they arose (checkout, a connection that died, our own
// timer), never by message text.
import { DependencyUnavailableError, WriteConflictError } from "../domain/errors.js";
import { isSocketFailure } from "../socket-errors.js";

// SQLSTATEs meaning "the server cannot take this now, try again":
// 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now,
// 53300 too_many_connections, 57014 query_canceled (statement_timeout);
// class 08 (connection exception) is matched by prefix.
const UNAVAILABLE_SQLSTATES = new Set(["57P01", "57P02", "57P03", "53300", "57014"]);

// 40P01 deadlock_detected, 40001 serialization_failure: the statement (or
// transaction) was rolled back whole and may simply run again.
const CONFLICT_SQLSTATES = new Set(["40P01", "40001"]);

function codeOf(err: unknown): string | undefined {
  const code = typeof err === "object" && err !== null ? (err as { code?: unknown }).code : undefined;
  return typeof code === "string" ? code : undefined;
}

export function isUnavailableCode(err: unknown): boolean {
  const code = codeOf(err);
  return code !== undefined && (UNAVAILABLE_SQLSTATES.has(code) || code.startsWith("08") || isSocketFailure(err));
}

export function isWriteConflict(err: unknown): boolean {
  const code = codeOf(err);
  return code !== undefined && CONFLICT_SQLSTATES.has(code);
}

export function databaseUnavailable(message: string, cause?: unknown): DependencyUnavailableError {
  return new DependencyUnavailableError("database", message, { cause });
}

/**
 * The error a failed query becomes. `connectionLost`: the connection died
 * under it (pg reports that without a code: "Connection terminated…").
 */
export function classifyQueryError(err: unknown, connectionLost: boolean): unknown {
  if (err instanceof DependencyUnavailableError || err instanceof WriteConflictError) return err;
  if (connectionLost || isUnavailableCode(err)) {
    const code = codeOf(err);
    return databaseUnavailable(code === "57014" ? "a database statement timed out" : "the database connection failed", err);
  }
  return err;
}

/** 23505 unique_violation on this constraint (or index). */
export function isUniqueViolation(err: unknown, constraint: string): boolean {
  return codeOf(err) === "23505" && (err as { constraint?: unknown }).constraint === constraint;
}
