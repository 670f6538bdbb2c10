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

/** How a request is refused; the API maps each to one status code. */
export type RefusalKind = "invalid" | "not_found" | "already_exists" | "failed_precondition" | "resource_exhausted";

/** What was wrong with one field of a request. */
export interface FieldProblem {
  field: string;
  description: string;
  /** ErrorInfo reason, e.g. REPLICAS_INVALID. */
  reason: string;
  metadata: Record<string, string>;
}

/**
 * The domain refuses a request and changes nothing: the message says what to
 * do instead, `reason` (UPPER_SNAKE_CASE) and `metadata` say it for programs.
 */
export class RefusedError extends Error {
  override readonly name = "RefusedError";
  constructor(
    readonly kind: RefusalKind,
    message: string,
    readonly reason: string,
    readonly metadata: Record<string, string> = {},
    readonly problems: readonly FieldProblem[] = [],
  ) {
    super(message);
  }
}

/** A request with bad fields: every problem listed, the first one's reason leads. */
export function invalidRequest(problems: readonly FieldProblem[]): RefusedError {
  const first = problems[0];
  if (!first) throw new Error("invalidRequest needs at least one problem");
  return new RefusedError("invalid", problems.map((p) => p.description).join("; "), first.reason, first.metadata, problems);
}

export function deploymentNotFound(name: string): RefusedError {
  return new RefusedError("not_found", `deployment "${name}" not found`, "DEPLOYMENT_NOT_FOUND", { name });
}
