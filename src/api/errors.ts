// The API's one error type at the boundary is ConnectError. This module builds
// the errors handlers return (with google.rpc details) and translates anything
// else that escapes a handler, so that internal causes never reach a client.
import { Code, ConnectError } from "@connectrpc/connect";
import {
  BadRequestSchema,
  ErrorInfoSchema,
  type ErrorInfo,
} from "../gen/google/rpc/error_details_pb.js";

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

/** Which dependency an "unreachable" error points at. */
export type UnavailableDependency = "database" | "queue" | "network";

// Socket-level failures: the peer is down, unreachable or went away.
const networkErrnos = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EHOSTDOWN",
  "ENETDOWN",
  "EPIPE",
  "EAI_AGAIN",
  "ENOTFOUND",
]);

// Postgres SQLSTATEs that mean "the server cannot take this now, try again":
// class 08 (connection exception), 57P01 admin_shutdown, 57P02 crash_shutdown,
// 57P03 cannot_connect_now, 53300 too_many_connections.
const pgUnavailableStates = new Set(["57P01", "57P02", "57P03", "53300"]);

const pgUnavailableMessages = [
  "timeout exceeded when trying to connect", // pg-pool connectionTimeoutMillis
  "connection terminated", // pg: "Connection terminated unexpectedly" / "... due to connection timeout"
  "client has encountered a connection error",
  "connection is closed",
  "cannot use a pool after calling end on the pool",
];

// @nats-io/* v3 error class names (`err.name`).
const natsUnavailableNames = new Set([
  "ClosedConnectionError",
  "DrainingConnectionError",
  "ConnectionError",
  "NoResponders",
  "NoRespondersError",
  "JetStreamNotEnabled",
]);

const natsUnavailableMessages = ["closed connection", "connection draining", "no responders"];

function classifyOne(err: unknown): UnavailableDependency | undefined {
  if (typeof err !== "object" || err === null) return undefined;
  const e = err as { code?: unknown; name?: unknown; message?: unknown };
  const code = typeof e.code === "string" ? e.code : undefined;
  const name = typeof e.name === "string" ? e.name : "";
  const message = typeof e.message === "string" ? e.message.toLowerCase() : "";
  if (code !== undefined) {
    if (pgUnavailableStates.has(code) || /^08[0-9A-Z]{3}$/.test(code)) return "database";
    if (networkErrnos.has(code)) return "network";
  }
  if (pgUnavailableMessages.some((m) => message.includes(m))) return "database";
  if (natsUnavailableNames.has(name)) return "queue";
  if (natsUnavailableMessages.some((m) => message.startsWith(m))) return "queue";
  // nats.js TimeoutError ("timeout"); also DOMException TimeoutError of AbortSignal.timeout().
  if (name === "TimeoutError") return "network";
  return undefined;
}

/**
 * If `err` (or anything in its `cause` chain, or an AggregateError member)
 * shows that the database or the queue is unreachable, say which.
 */
export function unavailableDependency(err: unknown): UnavailableDependency | undefined {
  const seen = new Set<unknown>();
  const queue: unknown[] = [err];
  let fallback: UnavailableDependency | undefined;
  while (queue.length > 0 && seen.size < 16) {
    const e = queue.shift();
    if (e === undefined || e === null || seen.has(e)) continue;
    seen.add(e);
    const kind = classifyOne(e);
    // Prefer the specific dependency (database/queue) over a bare socket error.
    if (kind === "database" || kind === "queue") return kind;
    if (kind === "network") fallback ??= kind;
    if (typeof e === "object") {
      const cause = (e as { cause?: unknown }).cause;
      if (cause !== undefined) queue.push(cause);
      if (e instanceof AggregateError) queue.push(...(e.errors as unknown[]));
    }
  }
  return fallback;
}

/** Type-guard-ish helper: does `err` mean a dependency is unreachable (retryable)? */
export function isUnavailableError(err: unknown): boolean {
  return unavailableDependency(err) !== undefined;
}

const unavailableMessages: Record<UnavailableDependency, string> = {
  database: "database unavailable, retry",
  queue: "queue unavailable, retry",
  network: "a dependency is unavailable, retry",
};

/**
 * Translate anything a handler throws into the ConnectError sent to the
 * client. ConnectErrors pass through unchanged. Unreachable database/queue →
 * UNAVAILABLE with a generic message; anything else → INTERNAL "internal
 * error". The original error is kept as `cause` (for logs), never in the
 * message.
 */
export function toConnectError(err: unknown): ConnectError {
  if (err instanceof ConnectError) return err;
  const dep = unavailableDependency(err);
  if (dep !== undefined) {
    return apiError(Code.Unavailable, unavailableMessages[dep], {
      reason: dep === "database" ? "DATABASE_UNAVAILABLE" : dep === "queue" ? "QUEUE_UNAVAILABLE" : "DEPENDENCY_UNAVAILABLE",
      cause: err,
    });
  }
  return new ConnectError("internal error", Code.Internal, undefined, undefined, err);
}

/** The canonical lower_snake_case name of a code ("not_found"), as in Connect JSON. */
export function codeName(code: Code | 0): string {
  if (code === 0) return "ok";
  const name = Code[code];
  return name === undefined ? String(code) : name.replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
}
