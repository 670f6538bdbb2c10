// Errors the layers below the API raise, in the domain's own words. The db
// and queue layers turn driver errors into these by code (SQLSTATE, errno,
// JetStream API error code); the API maps them to status codes in one place.

/** What a process depends on and may find unreachable. */
export type Dependency = "database" | "queue" | "runtime";

/** A dependency is down, hung, overloaded or restarting: retry later. */
export class DependencyUnavailableError extends Error {
  override readonly name = "DependencyUnavailableError";
  constructor(
    readonly dependency: Dependency,
    message: string,
    options: { cause?: unknown } = {},
  ) {
    super(message, options);
  }
}

/** Concurrent writers collided (deadlock, serialization failure) and retries ran out. */
export class WriteConflictError extends Error {
  override readonly name = "WriteConflictError";
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, options);
  }
}
