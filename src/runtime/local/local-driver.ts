// The RuntimeDriver workers use with the local runtime: weights are fetched
// into the shared cache in the worker's own process (same host, same dataDir);
// everything else is a call to the local runtime agent's control API.
import { silentLogger, type Logger } from "../../log.js";
import { carrierOf, otelContext, otelTrace, spanFailed, SpanKind, tracer, tracingEnabled } from "../../telemetry/tracing.js";
import {
  RuntimeError,
  type DeploymentObservation,
  type DeploymentTraffic,
  type HostCapacity,
  type RevisionSpec,
  type RevisionStatus,
  type RuntimeDriver,
} from "../driver.js";
import { controlPaths, errorFromWire, MAX_STATUS_WAIT_MS, pathTemplate, statusTag } from "./control-protocol.js";
import { createWeightsCache } from "./weights-cache.js";

export interface LocalDriverOptions {
  /** Where the agent's control API listens, e.g. http://127.0.0.1:8001. */
  controlUrl: string;
  dataDir: string;
  logger?: Logger;
  /** Per control call; stopping a revision waits for its drain. Default 60 s. */
  requestTimeoutMs?: number;
}

export function createLocalDriver(options: LocalDriverOptions): RuntimeDriver {
  const logger = (options.logger ?? silentLogger).child({ component: "local-driver" });
  const base = options.controlUrl.replace(/\/+$/, "");
  const timeoutMs = options.requestTimeoutMs ?? 60_000;
  const weights = createWeightsCache({ dataDir: options.dataDir, logger });
  const closed = new AbortController();

  interface CallOptions {
    headers?: Record<string, string>;
    /** The caller's: aborting it rejects the call with its reason. */
    signal?: AbortSignal;
    /** Added to the request timeout (a long-poll is held this long on purpose). */
    holdMs?: number;
  }

  /**
   * Tracing on, within a trace (a task's): the call is a client span of it,
   * and the agent continues the trace (traceparent). Calls outside any trace
   * (the observer's, every second) make none.
   */
  async function call<T>(method: string, path: string, body?: unknown, o: CallOptions = {}): Promise<T> {
    if (!tracingEnabled()) return send<T>(method, path, body, o);
    const parent = otelContext.active();
    if (otelTrace.getSpan(parent) === undefined) return send<T>(method, path, body, o);
    const span = tracer().startSpan(
      `runtime ${method} ${pathTemplate(path)}`,
      { kind: SpanKind.CLIENT, attributes: { "http.request.method": method, "url.path": path } },
      parent,
    );
    try {
      return await send<T>(method, path, body, { ...o, headers: { ...o.headers, ...carrierOf(otelTrace.setSpan(parent, span)) } });
    } catch (err) {
      spanFailed(span, err);
      throw err;
    } finally {
      span.end();
    }
  }

  async function send<T>(method: string, path: string, body?: unknown, o: CallOptions = {}): Promise<T> {
    const signals = [closed.signal, AbortSignal.timeout(timeoutMs + (o.holdMs ?? 0))];
    if (o.signal) signals.push(o.signal);
    const headers = { ...o.headers, ...(body !== undefined ? { "content-type": "application/json" } : {}) };
    const request = () =>
      fetch(base + path, {
        method,
        signal: AbortSignal.any(signals),
        headers,
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
    let res: Response;
    try {
      res = await request().catch((err: unknown) => {
        // Every control operation is idempotent, so one resend is safe; it covers a kept-alive
        // connection that a restarted agent closed under us.
        if (closed.signal.aborted || o.signal?.aborted || (err as Error).name === "TimeoutError") throw err;
        return request();
      });
    } catch (err) {
      if (o.signal?.aborted && !closed.signal.aborted) throw o.signal.reason;
      throw unreachable(err, method, path);
    }
    let payload: unknown;
    try {
      payload = await res.json();
    } catch (err) {
      if (res.ok) throw new RuntimeError("INTERNAL", `local runtime sent a malformed answer to ${method} ${path}`, { cause: err });
      payload = undefined;
    }
    if (res.status === 404 && (payload as { noRoute?: unknown } | undefined)?.noRoute === true) throw new NoRouteError();
    if (!res.ok) throw errorFromWire(res.status, payload);
    return payload as T;
  }

  function unreachable(err: unknown, method: string, path: string): RuntimeError {
    const e = err as Error & { cause?: { code?: string } };
    if (closed.signal.aborted) return new RuntimeError("INTERNAL", "local driver closed", { retryable: true, cause: err });
    if (e.name === "TimeoutError") {
      return new RuntimeError("INTERNAL", `local runtime at ${base} did not answer ${method} ${path} within ${timeoutMs} ms`, {
        retryable: true,
        cause: err,
      });
    }
    const code = e.cause?.code;
    const notRunning = code === "ECONNREFUSED" || code === "ENOTFOUND" || code === "ECONNRESET";
    return new RuntimeError(
      "INTERNAL",
      notRunning
        ? `the local runtime is not running at ${base} (${code}); start the local runtime agent, then the task is retried`
        : `cannot reach the local runtime at ${base}: ${e.message}${code ? ` (${code})` : ""}`,
      { retryable: true, cause: err },
    );
  }

  // The wire answer also lists replicas (for operators): keep the status only.
  const statusOf = (s: RevisionStatus): RevisionStatus => ({
    desired: s.desired,
    ready: s.ready,
    pending: s.pending,
    restarts: s.restarts,
    ...(s.exited ? { exited: s.exited } : {}),
  });

  return {
    name: "local",
    capacity: () => call<HostCapacity>("GET", controlPaths.capacity),
    prepareWeights: (spec, onProgress, signal) => weights.prepare(spec.model, onProgress, signal),
    async startRevision(spec, prepared) {
      // The token is for the download only: the agent never sees it.
      await call("POST", controlPaths.revisions, { spec: withoutToken(spec), weights: prepared });
    },
    async revisionStatus(uid, revision) {
      return statusOf(await call<RevisionStatus>("GET", controlPaths.revision(uid, revision)));
    },
    async waitRevisionStatus(uid, revision, previous, { timeoutMs: waitMs, signal }) {
      const holdMs = Math.max(0, Math.min(Math.round(waitMs), MAX_STATUS_WAIT_MS));
      const s = await call<RevisionStatus>("GET", `${controlPaths.revision(uid, revision)}?waitMs=${holdMs}`, undefined, {
        headers: { "if-none-match": `"${statusTag(previous)}"` },
        holdMs,
        ...(signal ? { signal } : {}),
      });
      return statusOf(s);
    },
    async switchTraffic(spec: RevisionSpec) {
      const { endpointUrl } = await call<{ endpointUrl: string }>("PUT", controlPaths.route(spec.deploymentUid), { spec: withoutToken(spec) });
      return endpointUrl;
    },
    async splitTraffic(spec, shares) {
      const { endpointUrl } = await call<{ endpointUrl: string }>("PUT", controlPaths.route(spec.deploymentUid), { spec: withoutToken(spec), shares });
      return endpointUrl;
    },
    async trafficStats(uid) {
      try {
        return await call<DeploymentTraffic>("GET", controlPaths.traffic(uid));
      } catch (err) {
        if (err instanceof NoRouteError) return undefined;
        throw err;
      }
    },
    async scaleRevision(uid, revision, replicas) {
      await call("POST", controlPaths.scaleRevision(uid, revision), { replicas });
    },
    async stopRevision(uid, revision) {
      await call("POST", controlPaths.stopRevision(uid, revision));
    },
    async release(uid) {
      await call("DELETE", controlPaths.deployment(uid));
    },
    async observe() {
      const { deployments } = await call<{ deployments: DeploymentObservation[] }>("GET", controlPaths.observations);
      return deployments;
    },
    async close() {
      closed.abort();
      logger.debug("local driver closed");
    },
  };
}

/** The agent has no route for the deployment (trafficStats: undefined). */
class NoRouteError extends Error {
  override readonly name = "NoRouteError";
}

function withoutToken(spec: RevisionSpec): RevisionSpec {
  const { token: _token, ...model } = spec.model;
  return { ...spec, model };
}
