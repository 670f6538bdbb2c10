// HTTP server of the control API (routes in control-protocol.ts).
import http from "node:http";
import type { Logger } from "../../log.js";
import { serveMetrics, type MetricsRegistry } from "../../telemetry/metrics.js";
import { contextFrom, otelContext, otelTrace, SpanKind, SpanStatusCode, tracer, tracingEnabled } from "../../telemetry/tracing.js";
import { RuntimeError, type PreparedWeights, type RevisionSpec, type RevisionStatus, type TrafficShare } from "../driver.js";
import { errorToWire, MAX_STATUS_WAIT_MS, pathTemplate, statusTag, tagOfHeader } from "./control-protocol.js";
import { availableParallelism, totalmem } from "node:os";
import { closeServer, HttpError, httpUrl, listen, readJson, sendJson } from "./http-util.js";
import type { LocalRuntime } from "./local-runtime.js";
import { withinContainerLimits } from "./container-limits.js";

export interface ControlApi {
  readonly url: string;
  close(): Promise<void>;
}

const MAX_BODY_BYTES = 1024 * 1024;
const REVISION_PATH = /^\/v1\/deployments\/([^/]+)\/revisions\/(\d+)(\/stop|\/scale)?$/;
const DEPLOYMENT_PATH = /^\/v1\/deployments\/([^/]+)(\/route|\/traffic)?$/;

export async function startControlApi(options: {
  host: string;
  port: number;
  runtime: LocalRuntime;
  logger: Logger;
  /** Served at GET /metrics. */
  metricsRegistry?: MetricsRegistry;
}): Promise<ControlApi> {
  const { runtime, logger } = options;
  // Closing answers every long-poll at once (with the current status).
  const closing = new AbortController();

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<unknown> {
    const url = new URL(req.url ?? "/", "http://control");
    const path = url.pathname;
    const method = req.method ?? "GET";
    if (path === "/v1/health" && method === "GET") return { ok: true };
    if (path === "/v1/observations" && method === "GET") return { deployments: runtime.observe() };
    // What this host has: the replicas run here.
    if (path === "/v1/capacity" && method === "GET") return withinContainerLimits({ cpu: availableParallelism(), memoryBytes: totalmem() });
    if (path === "/v1/revisions" && method === "POST") {
      const body = asRecord(await readJson(req, MAX_BODY_BYTES), "body");
      await runtime.startRevision(revisionSpec(body["spec"]), preparedWeights(body["weights"]));
      return {};
    }
    const rev = REVISION_PATH.exec(path);
    if (rev) {
      const uid = decodeURIComponent(rev[1] ?? "");
      const number = Number(rev[2]);
      if (!rev[3] && method === "GET") {
        const status = await revisionStatus(uid, number, url, req, res);
        res.setHeader("etag", `"${statusTag(status)}"`);
        return { ...status, replicas: runtime.replicaDetails(uid, number) };
      }
      if (rev[3] === "/stop" && method === "POST") {
        await runtime.stopRevision(uid, number);
        return {};
      }
      if (rev[3] === "/scale" && method === "POST") {
        const replicas = field(asRecord(await readJson(req, MAX_BODY_BYTES), "body"), "replicas", "number");
        await runtime.scaleRevision(uid, number, replicas);
        return {};
      }
    }
    const dep = DEPLOYMENT_PATH.exec(path);
    if (dep) {
      const uid = decodeURIComponent(dep[1] ?? "");
      if (dep[2] === "/route" && method === "PUT") {
        const body = asRecord(await readJson(req, MAX_BODY_BYTES), "body");
        const spec = revisionSpec(body["spec"]);
        if (spec.deploymentUid !== uid) throw invalid(`spec.deploymentUid ${spec.deploymentUid} does not match ${uid}`);
        // The split's shares are checked by the runtime.
        const shares = body["shares"];
        return { endpointUrl: shares === undefined ? runtime.switchTraffic(spec) : runtime.splitTraffic(spec, shares as TrafficShare[]) };
      }
      if (dep[2] === "/traffic" && method === "GET") {
        const traffic = runtime.trafficStats(uid);
        if (traffic) return traffic;
        throw new NoRoute(uid);
      }
      if (!dep[2] && method === "DELETE") {
        await runtime.release(uid);
        return {};
      }
    }
    throw new HttpError(404, `no control endpoint ${method} ${path}`);
  }

  /** At once, or as a long-poll when the caller sent If-None-Match and waitMs. */
  function revisionStatus(
    uid: string,
    number: number,
    url: URL,
    req: http.IncomingMessage,
    res: http.ServerResponse,
  ): Promise<RevisionStatus> | RevisionStatus {
    const unlessTag = tagOfHeader(req.headers["if-none-match"]);
    const rawWait = url.searchParams.get("waitMs");
    const waitMs = rawWait === null ? 0 : Number(rawWait);
    if (!Number.isSafeInteger(waitMs) || waitMs < 0) throw invalid(`waitMs must be a non-negative integer, got ${rawWait}`);
    if (unlessTag === undefined || waitMs === 0) return runtime.revisionStatus(uid, number);
    // "close" also fires after the answer is sent; by then the wait is over.
    const gone = new AbortController();
    res.once("close", () => gone.abort());
    return runtime.waitRevisionStatus(uid, number, unlessTag, Math.min(waitMs, MAX_STATUS_WAIT_MS), AbortSignal.any([gone.signal, closing.signal]));
  }

  const answer = (req: http.IncomingMessage, res: http.ServerResponse) =>
    handle(req, res).then(
      (body) => sendJson(res, 200, body),
      (err: unknown) => {
        if (err instanceof RuntimeError) {
          const { status, body } = errorToWire(err);
          return sendJson(res, status, body);
        }
        if (err instanceof NoRoute) {
          return sendJson(res, 404, { error: { reason: "INTERNAL", message: err.message, retryable: false }, noRoute: true });
        }
        if (err instanceof HttpError) {
          return sendJson(res, err.status, { error: { reason: "INTERNAL", message: err.message, retryable: false } });
        }
        logger.error("control request failed", { err, method: req.method, url: req.url });
        const { status, body } = errorToWire(new RuntimeError("INTERNAL", `local runtime error: ${(err as Error).message}`, { retryable: true }));
        sendJson(res, status, body);
      },
    );

  const server = http.createServer((req, res) => {
    if (options.metricsRegistry !== undefined && req.url?.split("?", 1)[0] === "/metrics") return serveMetrics(options.metricsRegistry, req, res);
    // Tracing on: a server span, child of the worker's call; only for calls that are part of a trace (traceparent).
    if (!tracingEnabled() || req.headers["traceparent"] === undefined) return void answer(req, res);
    const parent = contextFrom(req.headers);
    const method = req.method ?? "GET";
    const span = tracer().startSpan(
      `runtime control ${method} ${pathTemplate(req.url ?? "/")}`,
      { kind: SpanKind.SERVER, attributes: { "http.request.method": method, "url.path": req.url ?? "/" } },
      parent,
    );
    res.once("close", () => {
      span.setAttribute("http.response.status_code", res.statusCode);
      if (res.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
    });
    void otelContext.with(otelTrace.setSpan(parent, span), () => answer(req, res));
  });
  const port = await listen(server, options.port, options.host);
  return {
    url: httpUrl(options.host, port),
    close: () => {
      closing.abort();
      return closeServer(server, 1_000);
    },
  };
}

const invalid = (message: string) => new RuntimeError("INVALID_SPEC", message);

/** The deployment has no route: nothing is counted for it (404, not an error of the caller's). */
class NoRoute extends Error {
  override readonly name = "NoRoute";
  constructor(uid: string) {
    super(`deployment ${uid} has no route on this runtime`);
  }
}

function asRecord(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw invalid(`${what} must be a JSON object`);
  return v as Record<string, unknown>;
}

function field<T extends "string" | "number">(o: Record<string, unknown>, name: string, type: T): T extends "string" ? string : number {
  const v = o[name];
  if (typeof v !== type || (type === "number" && !Number.isFinite(v))) throw invalid(`${name} must be a ${type}`);
  return v as T extends "string" ? string : number;
}

function revisionSpec(v: unknown): RevisionSpec {
  const o = asRecord(v, "spec");
  const model = asRecord(o["model"], "spec.model");
  const resources = asRecord(o["resources"], "spec.resources");
  const wakeTimeoutMs = o["wakeTimeoutMs"] === undefined ? undefined : field(o, "wakeTimeoutMs", "number");
  if (wakeTimeoutMs !== undefined && (!Number.isSafeInteger(wakeTimeoutMs) || wakeTimeoutMs <= 0)) {
    throw invalid(`wakeTimeoutMs must be a positive integer, got ${wakeTimeoutMs}`);
  }
  return {
    deploymentUid: field(o, "deploymentUid", "string"),
    workspace: field(o, "workspace", "string"),
    deploymentName: field(o, "deploymentName", "string"),
    revision: field(o, "revision", "number"),
    replicas: field(o, "replicas", "number"),
    ...(wakeTimeoutMs !== undefined ? { wakeTimeoutMs } : {}),
    model: {
      name: field(model, "name", "string"),
      revision: field(model, "revision", "string"),
      uri: field(model, "uri", "string"),
      sha256: field(model, "sha256", "string"),
      task: field(model, "task", "string"),
      type: field(model, "type", "string"),
      runtime: field(model, "runtime", "string"),
    },
    resources: {
      acceleratorType: field(resources, "acceleratorType", "string"),
      acceleratorCount: field(resources, "acceleratorCount", "number"),
      cpu: field(resources, "cpu", "number"),
      memoryBytes: field(resources, "memoryBytes", "number"),
      threadCount: field(resources, "threadCount", "number"),
      maxBatchSize: field(resources, "maxBatchSize", "number"),
    },
  };
}

function preparedWeights(v: unknown): PreparedWeights {
  const o = asRecord(v, "weights");
  return { path: field(o, "path", "string"), sha256: field(o, "sha256", "string"), bytes: field(o, "bytes", "number") };
}
