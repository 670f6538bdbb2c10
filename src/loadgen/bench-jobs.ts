// The bench's jobs for the load generator (bench.ts): what to run, as JSON.
export interface UnaryJob {
  kind: "unary";
  /** grpc: @grpc/grpc-js over HTTP/2; connect-json: the Connect protocol, JSON over HTTP/1.1 (node:http). */
  protocol: "grpc" | "connect-json";
  baseUrl: string;
  apiKey?: string;
  method: "create" | "get";
  /** get: the deployment read; create: the model name (deployments are named after it). */
  name: string;
  /** Closed loop: this many calls in flight. */
  concurrency: number;
  /** Open loop instead: calls started per second (concurrency is then a cap). */
  ratePerSec?: number;
  /** Stop after this long, or after count calls, whichever comes first. */
  durationMs: number;
  count?: number;
  warmupMs: number;
  /** HTTP/2 connections (grpc) or sockets (connect-json) the calls spread over. */
  connections: number;
  /** create: replicas asked for. */
  replicas?: number;
}

export interface UnaryResult {
  ok: number;
  errors: number;
  firstError: string;
  seconds: number;
  /** OK calls per second. */
  rate: number;
  p50: number;
  p99: number;
}

export interface WatchJob {
  kind: "watch";
  baseUrl: string;
  apiKey?: string;
  name: string;
  streams: number;
  connections: number;
  /** Give up waiting for the event after this long. */
  timeoutMs: number;
}

/** Printed once every stream has its first (snapshot) event. */
export interface WatchOpen {
  open: number;
  failed: number;
  firstError: string;
}

/** Printed once every open stream saw the next event (or at the timeout). */
export interface WatchResult {
  /** Arrival times of the first event after the snapshot, ms since the epoch (sub-ms precision). */
  arrivals: number[];
  /** Open streams that never saw the event (lost: of those, the ones that failed). */
  missing: number;
  lost: number;
  lostError: string;
}

export type BenchJob = UnaryJob | WatchJob;
