// Every setting, read from the environment once, validated, with defaults in
// one place. The README's configuration table mirrors loadConfig below
// (configVariables() lists what it reads; deploy/ may set only those).
import path from "node:path";

export interface AcceleratorConfig {
  name: string;
  memory: string;
  maxPerReplica: number;
  total: number;
}

export interface Config {
  /** Unset: an embedded Postgres (PGlite) child process is started. */
  databaseUrl: string | undefined;
  databasePoolMax: number;
  databaseConnectTimeoutMs: number;
  /** Server-side statement_timeout: a slow statement is cancelled, its connection kept. */
  databaseStatementTimeoutMs: number;
  /** Client-side: a query the server does not answer at all (hung) fails and its connection is dropped. */
  databaseQueryTimeoutMs: number;
  /** Callers waiting for a pooled connection; past it, calls fail at once with UNAVAILABLE. */
  databaseMaxWaiting: number;
  /** Unset: a `nats-server -js` child process is started. */
  natsUrl: string | undefined;
  /** The nats-server binary for the embedded queue server; unset: PATH, then well-known places. */
  natsServerBin: string | undefined;
  natsStream: string;
  natsSubjectPrefix: string;
  dataDir: string;
  /**
   * MODELDEPLOY_SECRET_KEY: base64 of 32 bytes that seal model tokens (the same
   * on every api and worker). Unset: only the embedded default (`start`
   * without DATABASE_URL) runs, with a key it keeps in its data folder.
   */
  secretKey: string | undefined;
  grpcHost: string;
  grpcPort: number;
  httpHost: string;
  httpPort: number;
  tlsCertFile: string | undefined;
  tlsKeyFile: string | undefined;
  maxRequestBytes: number;
  /** JSON request messages (Connect, gRPC-Web JSON) above this get RESOURCE_EXHAUSTED; at most maxRequestBytes. */
  maxJsonRequestBytes: number;
  /** JSON requests nested deeper get INVALID_ARGUMENT before anything parses them. */
  maxJsonDepth: number;
  /** Open connections per API port (gRPC, HTTP); more get RESOURCE_EXHAUSTED "too many connections". */
  maxConnections: number;
  /** HTTP/2 streams (calls) one connection may have open at once, on both ports. */
  maxStreamsPerConnection: number;
  /** Request header (metadata) bytes; larger get RESOURCE_EXHAUSTED, 4× this is refused by HTTP itself. */
  maxHeaderBytes: number;
  /** Streams one API connection may abandon at once (then a tenth of it per second); past it the connection is closed. */
  maxStreamResets: number;
  /** An API connection with no call open this long is closed. */
  idleConnectionMs: number;
  /** HTTP/2 keepalive pings on API connections, and how long an answer may take. */
  keepaliveTimeMs: number;
  keepaliveTimeoutMs: number;
  runtimeDriver: "local" | "noop";
  gatewayHost: string;
  gatewayPort: number;
  /** The gateway's address in endpoint URLs (behind a Service or proxy); unset: http://gatewayHost:gatewayPort. */
  gatewayPublicUrl: string | undefined;
  runtimeControlHost: string;
  runtimeControlPort: number;
  /** Where workers reach the local runtime agent; derived when unset. */
  runtimeControlUrl: string | undefined;
  localMaxReplicas: number;
  workerConcurrency: number;
  taskAckWaitMs: number;
  taskMaxDeliver: number;
  taskLeaseMs: number;
  sweepIntervalMs: number;
  sweepPendingAfterMs: number;
  progressDeadlineSeconds: number;
  /** How long the API trusts the runtime host's capacity it read (0: reads it for every check). */
  hostCapacityCacheMs: number;
  /** CPU the host offers for reservations: its cores × this (as OpenStack's cpu_allocation_ratio). */
  cpuAllocationRatio: number;
  healthPollMs: number;
  shutdownGraceMs: number;
  logLevel: "debug" | "info" | "warn" | "error";
  accelerators: AcceleratorConfig[];
  /** A separate worker's /metrics and /healthz port; unset: none (`start` serves the worker's series on the API's HTTP port). */
  workerMetricsHost: string;
  workerMetricsPort: number | undefined;
  /** OTLP/HTTP endpoint of traces (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else OTEL_EXPORTER_OTLP_ENDPOINT); unset: tracing off. */
  otlpEndpoint: string | undefined;
  /** OTEL_SERVICE_NAME; default modeldeploy (start) or modeldeploy-<role>. */
  otelServiceName: string | undefined;
}

export class ConfigError extends Error {
  override readonly name = "ConfigError";
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join("\n  ")}`);
  }
}

type Env = Record<string, string | undefined>;

interface Reader {
  str(key: string, fallback: string): string;
  optional(key: string): string | undefined;
  int(key: string, fallback: number, min: number, max: number): number;
  number(key: string, fallback: number, min: number, max: number): number;
  oneOf<T extends string>(key: string, fallback: T, allowed: readonly T[]): T;
}

function reader(env: Env, problems: string[]): Reader {
  const raw = (key: string) => {
    const v = env[key];
    return v === undefined || v.trim() === "" ? undefined : v.trim();
  };
  return {
    str: (key, fallback) => raw(key) ?? fallback,
    optional: (key) => raw(key),
    int(key, fallback, min, max) {
      const v = raw(key);
      if (v === undefined) return fallback;
      const n = Number(v);
      if (!Number.isInteger(n) || n < min || n > max) {
        problems.push(`${key}=${v}: expected a whole number from ${min} to ${max}`);
        return fallback;
      }
      return n;
    },
    number(key, fallback, min, max) {
      const v = raw(key);
      if (v === undefined) return fallback;
      const n = Number(v);
      if (!Number.isFinite(n) || n < min || n > max) {
        problems.push(`${key}=${v}: expected a number from ${min} to ${max}`);
        return fallback;
      }
      return n;
    },
    oneOf(key, fallback, allowed) {
      const v = raw(key);
      if (v === undefined) return fallback;
      if (!(allowed as readonly string[]).includes(v)) {
        problems.push(`${key}=${v}: expected one of ${allowed.join(", ")}`);
        return fallback;
      }
      return v as (typeof allowed)[number];
    },
  };
}

/** "L4-24GB:24GiB:8:16,A100-80GB:80GiB:8:8" = name:memory:maxPerReplica:total. */
export function parseAccelerators(spec: string, problems: string[]): AcceleratorConfig[] {
  const out: AcceleratorConfig[] = [];
  for (const item of spec
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)) {
    const [name, memory, maxPer, total] = item.split(":");
    const maxPerReplica = Number(maxPer);
    const totalN = Number(total);
    if (!name || !memory || !Number.isInteger(maxPerReplica) || maxPerReplica < 1 || !Number.isInteger(totalN) || totalN < 0) {
      problems.push(`MODELDEPLOY_ACCELERATORS item "${item}": expected name:memory:maxPerReplica:total`);
      continue;
    }
    out.push({ name, memory, maxPerReplica, total: totalN });
  }
  return out;
}

const NAME_TOKEN = /^[A-Za-z0-9_-]+$/;

export function loadConfig(env: Env = process.env): Config {
  const problems: string[] = [];
  const r = reader(env, problems);
  const databaseUrl = r.optional("DATABASE_URL");
  const natsStream = r.str("MODELDEPLOY_NATS_STREAM", "MODELDEPLOY_TASKS");
  const natsSubjectPrefix = r.str("MODELDEPLOY_NATS_PREFIX", "modeldeploy");
  if (!NAME_TOKEN.test(natsStream)) problems.push(`MODELDEPLOY_NATS_STREAM=${natsStream}: letters, digits, - and _ only`);
  if (!NAME_TOKEN.test(natsSubjectPrefix)) problems.push(`MODELDEPLOY_NATS_PREFIX=${natsSubjectPrefix}: letters, digits, - and _ only`);
  const secretKey = r.optional("MODELDEPLOY_SECRET_KEY");
  // Never echo the value: it is a secret.
  if (secretKey !== undefined && Buffer.from(secretKey, "base64").length !== 32) {
    problems.push("MODELDEPLOY_SECRET_KEY: expected base64 of 32 bytes (e.g. `openssl rand -base64 32`)");
  }
  const tlsCertFile = r.optional("MODELDEPLOY_TLS_CERT_FILE");
  const tlsKeyFile = r.optional("MODELDEPLOY_TLS_KEY_FILE");
  if ((tlsCertFile === undefined) !== (tlsKeyFile === undefined)) {
    problems.push("MODELDEPLOY_TLS_CERT_FILE and MODELDEPLOY_TLS_KEY_FILE go together");
  }
  const config: Config = {
    databaseUrl,
    // The embedded database serves one connection at a time.
    databasePoolMax: r.int("DATABASE_POOL_MAX", databaseUrl ? 10 : 1, 1, 1000),
    databaseConnectTimeoutMs: r.int("DATABASE_CONNECT_TIMEOUT_MS", 5000, 100, 600_000),
    databaseStatementTimeoutMs: r.int("DATABASE_STATEMENT_TIMEOUT_MS", 5_000, 100, 3_600_000),
    databaseQueryTimeoutMs: r.int("DATABASE_QUERY_TIMEOUT_MS", 8_000, 100, 3_600_000),
    databaseMaxWaiting: r.int("DATABASE_MAX_WAITING", 500, 0, 1_000_000),
    natsUrl: r.optional("NATS_URL"),
    // Checked (an executable file) only when the embedded server is started.
    natsServerBin: r.optional("NATS_SERVER_BIN"),
    natsStream,
    natsSubjectPrefix,
    dataDir: path.resolve(r.str("MODELDEPLOY_DATA_DIR", ".modeldeploy")),
    secretKey,
    grpcHost: r.str("MODELDEPLOY_GRPC_HOST", "127.0.0.1"),
    grpcPort: r.int("MODELDEPLOY_GRPC_PORT", 50051, 0, 65535),
    httpHost: r.str("MODELDEPLOY_HTTP_HOST", "127.0.0.1"),
    httpPort: r.int("MODELDEPLOY_HTTP_PORT", 8080, 0, 65535),
    tlsCertFile,
    tlsKeyFile,
    maxRequestBytes: r.int("MODELDEPLOY_MAX_REQUEST_BYTES", 4 * 1024 * 1024, 1024, 256 * 1024 * 1024),
    maxJsonRequestBytes: r.int("MODELDEPLOY_MAX_JSON_REQUEST_BYTES", 256 * 1024, 1024, 256 * 1024 * 1024),
    maxJsonDepth: r.int("MODELDEPLOY_MAX_JSON_DEPTH", 64, 2, 10_000),
    maxConnections: r.int("MODELDEPLOY_MAX_CONNECTIONS", 2000, 1, 1_000_000),
    maxStreamsPerConnection: r.int("MODELDEPLOY_MAX_STREAMS_PER_CONNECTION", 1000, 1, 1_000_000),
    maxHeaderBytes: r.int("MODELDEPLOY_MAX_HEADER_BYTES", 16 * 1024, 1024, 1024 * 1024),
    maxStreamResets: r.int("MODELDEPLOY_MAX_STREAM_RESETS", 1000, 10, 1_000_000),
    idleConnectionMs: r.int("MODELDEPLOY_IDLE_CONNECTION_MS", 300_000, 100, 86_400_000),
    keepaliveTimeMs: r.int("MODELDEPLOY_KEEPALIVE_TIME_MS", 60_000, 100, 86_400_000),
    keepaliveTimeoutMs: r.int("MODELDEPLOY_KEEPALIVE_TIMEOUT_MS", 20_000, 100, 600_000),
    runtimeDriver: r.oneOf("MODELDEPLOY_RUNTIME", "local", ["local", "noop"] as const),
    gatewayHost: r.str("MODELDEPLOY_GATEWAY_HOST", "127.0.0.1"),
    gatewayPort: r.int("MODELDEPLOY_GATEWAY_PORT", 8000, 0, 65535),
    gatewayPublicUrl: r.optional("MODELDEPLOY_GATEWAY_PUBLIC_URL"),
    runtimeControlHost: r.str("MODELDEPLOY_RUNTIME_CONTROL_HOST", "127.0.0.1"),
    runtimeControlPort: r.int("MODELDEPLOY_RUNTIME_CONTROL_PORT", 8001, 0, 65535),
    runtimeControlUrl: r.optional("MODELDEPLOY_RUNTIME_CONTROL_URL"),
    localMaxReplicas: r.int("MODELDEPLOY_LOCAL_MAX_REPLICAS", 16, 0, 1000),
    // Writes of tasks running at once share one statement: more in flight,
    // bigger batches, fewer statements per task (a no-op task is 7 writes).
    workerConcurrency: r.int("MODELDEPLOY_WORKER_CONCURRENCY", 128, 1, 1024),
    taskAckWaitMs: r.int("MODELDEPLOY_TASK_ACK_WAIT_MS", 30_000, 1000, 3_600_000),
    taskMaxDeliver: r.int("MODELDEPLOY_TASK_MAX_DELIVER", 10, 1, 1000),
    taskLeaseMs: r.int("MODELDEPLOY_TASK_LEASE_MS", 30_000, 1000, 3_600_000),
    sweepIntervalMs: r.int("MODELDEPLOY_SWEEP_INTERVAL_MS", 5000, 50, 3_600_000),
    sweepPendingAfterMs: r.int("MODELDEPLOY_SWEEP_PENDING_AFTER_MS", 15_000, 50, 3_600_000),
    progressDeadlineSeconds: r.int("MODELDEPLOY_PROGRESS_DEADLINE_SECONDS", 600, 1, 86_400),
    hostCapacityCacheMs: r.int("MODELDEPLOY_HOST_CAPACITY_CACHE_MS", 10_000, 0, 3_600_000),
    cpuAllocationRatio: r.number("MODELDEPLOY_CPU_ALLOCATION_RATIO", 4, 0.1, 1000),
    healthPollMs: r.int("MODELDEPLOY_HEALTH_POLL_MS", 250, 10, 60_000),
    shutdownGraceMs: r.int("MODELDEPLOY_SHUTDOWN_GRACE_MS", 10_000, 0, 600_000),
    logLevel: r.oneOf("LOG_LEVEL", "info", ["debug", "info", "warn", "error"] as const),
    accelerators: parseAccelerators(r.str("MODELDEPLOY_ACCELERATORS", ""), problems),
    workerMetricsHost: r.str("MODELDEPLOY_WORKER_METRICS_HOST", "127.0.0.1"),
    workerMetricsPort: r.optional("MODELDEPLOY_WORKER_METRICS_PORT") === undefined ? undefined : r.int("MODELDEPLOY_WORKER_METRICS_PORT", 0, 0, 65535),
    // Off unless set, as every OpenTelemetry SDK; OTEL_SDK_DISABLED=true turns it off all the same.
    otlpEndpoint:
      r.optional("OTEL_SDK_DISABLED")?.toLowerCase() === "true"
        ? undefined
        : (r.optional("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") ?? r.optional("OTEL_EXPORTER_OTLP_ENDPOINT")),
    otelServiceName: r.optional("OTEL_SERVICE_NAME"),
  };
  // A slow statement should be cancelled by the server (the connection is
  // kept) before the client gives up on it (the connection is dropped).
  if (config.databaseQueryTimeoutMs <= config.databaseStatementTimeoutMs) {
    problems.push(
      `DATABASE_QUERY_TIMEOUT_MS=${config.databaseQueryTimeoutMs}: must be longer than DATABASE_STATEMENT_TIMEOUT_MS (${config.databaseStatementTimeoutMs})`,
    );
  }
  if (config.gatewayPublicUrl !== undefined && !/^https?:\/\/[^/]/.test(config.gatewayPublicUrl)) {
    problems.push(`MODELDEPLOY_GATEWAY_PUBLIC_URL=${config.gatewayPublicUrl}: expected an http:// or https:// URL`);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}

/** Every environment variable loadConfig reads, in the order it reads them (it reads each one whatever the others say). */
export function configVariables(): string[] {
  const read = new Set<string>();
  const recorder = new Proxy<Env>(
    {},
    {
      get(_target, key) {
        if (typeof key === "string") read.add(key);
        return undefined;
      },
    },
  );
  loadConfig(recorder);
  return [...read];
}
