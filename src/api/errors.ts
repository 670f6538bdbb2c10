// The API's one error type at the boundary is ConnectError. This module builds
// the errors handlers return (with google.rpc details) and translates anything
// else that escapes a handler, so that internal causes never reach a client.
import { Code, ConnectError } from "@connectrpc/connect";
import { DependencyUnavailableError, deploymentNotFound, RefusedError, WriteConflictError, type Dependency, type RefusalKind } from "../domain/errors.js";
import { BadRequestSchema, ErrorInfoSchema, type ErrorInfo } from "../gen/google/rpc/error_details_pb.js";
import { isSocketFailure } from "../socket-errors.js";

/** The google.rpc.ErrorInfo domain of every error this API raises. */
export const errorDomain = "modeldeploy";

export interface FieldViolation {
  /** Path of the field in the request, e.g. "resources.accelerator_count". */
  field: string;
  description: string;
  reason?: string;
}

export interface ApiErrorOptions {
  /** UPPER_SNAKE_CASE reason; attaches a google.rpc.ErrorInfo detail. */
  reason?: string;
  /** ErrorInfo metadata (only sent when `reason` is given). */
  metadata?: Record<string, string>;
  /** Attaches a google.rpc.BadRequest detail. */
  fieldViolations?: FieldViolation[];
  /** Kept on the error for logs; never sent to the client. */
  cause?: unknown;
}

/**
 * Create the ConnectError a handler throws. Both transports send `message`
 * as the status message and the details as google.rpc.Status details
 * (gRPC: `grpc-status-details-bin`; Connect: the JSON error's `details`).
 */
export function apiError(code: Code, message: string, opts: ApiErrorOptions = {}): ConnectError {
  const details: ConstructorParameters<typeof ConnectError>[3] = [];
  if (opts.reason !== undefined && opts.reason !== "") {
    details.push({
      desc: ErrorInfoSchema,
      value: { reason: opts.reason, domain: errorDomain, metadata: { ...opts.metadata } },
    });
  }
  if (opts.fieldViolations !== undefined && opts.fieldViolations.length > 0) {
    details.push({
      desc: BadRequestSchema,
      value: {
        fieldViolations: opts.fieldViolations.map((v) => ({
          field: v.field,
          description: v.description,
          reason: v.reason ?? "",
        })),
      },
    });
  }
  return new ConnectError(message, code, undefined, details, opts.cause);
}

/** Type guard: is `err` a ConnectError (optionally with this code)? */
export function isConnectError(err: unknown, code?: Code): err is ConnectError {
  return err instanceof ConnectError && (code === undefined || err.code === code);
}

/** The google.rpc.ErrorInfo detail of an error (sent or received), if any. */
export function errorInfoOf(err: unknown): ErrorInfo | undefined {
  if (!(err instanceof ConnectError)) return undefined;
  return err.findDetails(ErrorInfoSchema)[0];
}

/** Does `err` carry a google.rpc.ErrorInfo with this reason? */
export function hasReason(err: unknown, reason: string): err is ConnectError {
  return errorInfoOf(err)?.reason === reason;
}

/** Which dependency an "unreachable" error points at ("network": a socket error from a layer that did not say whose). */
export type UnavailableDependency = Dependency | "network";

// Bare socket errors (isSocketFailure, by errno code) from a layer that did
// not say whose they were. The db and queue layers classify their own errors
// as DependencyUnavailableError (src/db/db-errors.ts, src/queue/queue-errors.ts);
// nothing here reads an error's message text.

/** `err`, then its `cause` chain and AggregateError members, breadth first. */
function* causes(err: unknown): Generator<object> {
  const seen = new Set<unknown>();
  const queue: unknown[] = [err];
  while (queue.length > 0 && seen.size < 16) {
    const e = queue.shift();
    if (typeof e !== "object" || e === null || seen.has(e)) continue;
    seen.add(e);
    yield e;
    const cause = (e as { cause?: unknown }).cause;
    if (cause !== undefined) queue.push(cause);
    if (e instanceof AggregateError) queue.push(...(e.errors as unknown[]));
  }
}

/**
 * If `err` (or anything in its `cause` chain, or an AggregateError member)
 * shows that the database or the queue is unreachable, say which.
 */
export function unavailableDependency(err: unknown): UnavailableDependency | undefined {
  let network = false;
  for (const e of causes(err)) {
    // A named dependency wins over a bare socket error.
    if (e instanceof DependencyUnavailableError) return e.dependency;
    network ||= isSocketFailure(e);
  }
  return network ? "network" : undefined;
}

/** Type-guard-ish helper: does `err` mean a dependency is unreachable (retryable)? */
export function isUnavailableError(err: unknown): boolean {
  return unavailableDependency(err) !== undefined;
}

const unavailableReasons: Record<UnavailableDependency, string> = {
  database: "DATABASE_UNAVAILABLE",
  queue: "QUEUE_UNAVAILABLE",
  runtime: "RUNTIME_UNAVAILABLE",
  network: "DEPENDENCY_UNAVAILABLE",
};

function unavailableMessage(dep: UnavailableDependency, err: unknown): string {
  const domain = [...causes(err)].find((e): e is DependencyUnavailableError => e instanceof DependencyUnavailableError);
  // The domain error's message is ours (no driver text): it says what happened.
  if (domain !== undefined) return `${dep} unavailable: ${domain.message}; retry`;
  return dep === "network" ? "a dependency is unavailable, retry" : `${dep} unavailable, retry`;
}

/**
 * Translate anything a handler throws into the ConnectError sent to the
 * client. ConnectErrors pass through unchanged. An unreachable dependency →
 * UNAVAILABLE with ErrorInfo reason DATABASE_UNAVAILABLE / QUEUE_UNAVAILABLE
 * / … and metadata `dependency`; writes that kept colliding → ABORTED (retry
 * the call); anything else → INTERNAL "internal error". The original error
 * is kept as `cause` (for logs), never in the message.
 */
export function toConnectError(err: unknown): ConnectError {
  if (err instanceof ConnectError) return err;
  if (err instanceof RefusedError) return refusalToConnectError(err);
  const dep = unavailableDependency(err);
  if (dep !== undefined) {
    return apiError(Code.Unavailable, unavailableMessage(dep, err), {
      reason: unavailableReasons[dep],
      metadata: { dependency: dep },
      cause: err,
    });
  }
  if ([...causes(err)].some((e) => e instanceof WriteConflictError)) {
    return apiError(Code.Aborted, "the change collided with concurrent changes to the same deployment; retry", {
      reason: "WRITE_CONFLICT",
      cause: err,
    });
  }
  return new ConnectError("internal error", Code.Internal, undefined, undefined, err);
}

const refusalCodes: Record<RefusalKind, Code> = {
  invalid: Code.InvalidArgument,
  not_found: Code.NotFound,
  already_exists: Code.AlreadyExists,
  failed_precondition: Code.FailedPrecondition,
  resource_exhausted: Code.ResourceExhausted,
};

/** A domain refusal as the client sees it: its code, message, ErrorInfo and field violations. */
export function refusalToConnectError(err: RefusedError): ConnectError {
  return apiError(refusalCodes[err.kind], err.message, {
    reason: err.reason,
    metadata: err.metadata,
    fieldViolations: err.problems.map((p) => ({ field: p.field, description: p.description, reason: p.reason })),
  });
}

/** The canonical lower_snake_case name of a code ("not_found"), as in Connect JSON. */
export function codeName(code: Code | 0): string {
  if (code === 0) return "ok";
  const name = Code[code];
  return name === undefined ? String(code) : name.replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
}

/** NOT_FOUND for a deployment name the caller may see. */
export function notFound(name: string): Error {
  return refusalToConnectError(deploymentNotFound(name));
}
