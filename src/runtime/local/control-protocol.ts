// Wire format of the local runtime's control API, shared by the agent's
// server and the LocalDriver client. JSON over HTTP/1.1, loopback by default:
//
//   GET    /v1/health                                   → {"ok":true}
//   POST   /v1/revisions             {spec, weights}    → {}               startRevision
//   GET    /v1/deployments/{uid}/revisions/{n}          → RevisionStatus   revisionStatus
//                                                          (+ "replicas": ReplicaDetail[] for operators)
//          with an ETag: "<statusTag>". A long-poll: with If-None-Match: "<tag>"
//          and ?waitMs=N (≤ 30 s), answers once the status's tag differs from
//          <tag>, or with the current status after N ms (200 either way).
//   POST   /v1/deployments/{uid}/revisions/{n}/stop     → {}               stopRevision (drains first)
//   POST   /v1/deployments/{uid}/revisions/{n}/scale {replicas} → {}       scaleRevision
//   PUT    /v1/deployments/{uid}/route  {spec}          → {endpointUrl}    switchTraffic
//   PUT    /v1/deployments/{uid}/route  {spec, shares}  → {endpointUrl}    splitTraffic
//   GET    /v1/deployments/{uid}/traffic                → DeploymentTraffic trafficStats
//          404 with "noRoute": true when the deployment has no route.
//   DELETE /v1/deployments/{uid}                        → {}               release
//   GET    /v1/observations                             → {deployments: DeploymentObservation[]}
//
// Errors: a 4xx/5xx status with {"error": WireError}, which carries a
// RuntimeError across the wire unchanged (reason, retryable, exitCode, logTail).
import { RuntimeError, type RevisionStatus, type RuntimeFailureReason } from "../driver.js";

export interface WireError {
  reason: RuntimeFailureReason;
  message: string;
  retryable: boolean;
  exitCode?: number;
  logTail?: string;
}

const REASONS: readonly RuntimeFailureReason[] = [
  "WEIGHTS_NOT_FOUND",
  "WEIGHTS_DOWNLOAD_FAILED",
  "WEIGHTS_CHECKSUM_MISMATCH",
  "INSUFFICIENT_RESOURCES",
  "SERVER_EXITED",
  "INVALID_SPEC",
  "INTERNAL",
];

const STATUS_OF: Record<RuntimeFailureReason, number> = {
  INVALID_SPEC: 400,
  WEIGHTS_NOT_FOUND: 404,
  WEIGHTS_CHECKSUM_MISMATCH: 422,
  INSUFFICIENT_RESOURCES: 409,
  SERVER_EXITED: 409,
  WEIGHTS_DOWNLOAD_FAILED: 502,
  INTERNAL: 500,
};

export const controlPaths = {
  health: "/v1/health",
  revisions: "/v1/revisions",
  revision: (uid: string, revision: number) => `/v1/deployments/${encodeURIComponent(uid)}/revisions/${revision}`,
  stopRevision: (uid: string, revision: number) => `/v1/deployments/${encodeURIComponent(uid)}/revisions/${revision}/stop`,
  scaleRevision: (uid: string, revision: number) => `/v1/deployments/${encodeURIComponent(uid)}/revisions/${revision}/scale`,
  route: (uid: string) => `/v1/deployments/${encodeURIComponent(uid)}/route`,
  traffic: (uid: string) => `/v1/deployments/${encodeURIComponent(uid)}/traffic`,
  deployment: (uid: string) => `/v1/deployments/${encodeURIComponent(uid)}`,
  observations: "/v1/observations",
  capacity: "/v1/capacity",
} as const;

/** Longest long-poll the control API holds a request for. */
export const MAX_STATUS_WAIT_MS = 30_000;

/** A revision status's identity for long-polls: equal tags, equal counts and exit. */
export function statusTag(s: RevisionStatus): string {
  const exited = s.exited ? `x${s.exited.exitCode ?? ""}:${s.exited.signal ?? ""}` : "";
  return `${s.desired}/${s.ready}/${s.pending}/${s.restarts}/${exited}`;
}

/** The tag of an If-None-Match header value (`"tag"` or `W/"tag"`), if any. */
export function tagOfHeader(value: string | undefined): string | undefined {
  const m = value ? /^(?:W\/)?"([^"]*)"$/.exec(value.trim()) : null;
  return m?.[1];
}

export function errorToWire(err: RuntimeError): { status: number; body: { error: WireError } } {
  const { exitCode, logTail } = err.options;
  return {
    status: STATUS_OF[err.reason],
    body: {
      error: {
        reason: err.reason,
        message: err.message,
        retryable: err.retryable,
        ...(exitCode !== undefined ? { exitCode } : {}),
        ...(logTail !== undefined ? { logTail } : {}),
      },
    },
  };
}

export function errorFromWire(status: number, body: unknown): RuntimeError {
  const wire = (body as { error?: Partial<WireError> } | undefined)?.error;
  if (!wire || typeof wire.message !== "string" || !REASONS.includes(wire.reason as RuntimeFailureReason)) {
    return new RuntimeError("INTERNAL", `local runtime answered HTTP ${status}`, { retryable: status >= 500 });
  }
  return new RuntimeError(wire.reason as RuntimeFailureReason, wire.message, {
    retryable: wire.retryable === true,
    ...(typeof wire.exitCode === "number" ? { exitCode: wire.exitCode } : {}),
    ...(typeof wire.logTail === "string" ? { logTail: wire.logTail } : {}),
  });
}

/** A control path with its ids replaced, for span names that do not vary per deployment. */
export function pathTemplate(path: string): string {
  return path
    .split("?", 1)[0]!
    .replace(/\/deployments\/[^/]+/, "/deployments/{uid}")
    .replace(/\/revisions\/\d+/, "/revisions/{revision}");
}
