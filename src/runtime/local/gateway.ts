// The inference gateway: one HTTP/1.1 server in front of every deployment's
// replicas. A deployment's endpoint is /{workspace}/v2/models/{deployment};
// requests under it are proxied round-robin to ready replicas of the revision
// its route points to (during a split: one chosen per request by weight), with
// the path rewritten to /v2/models/{deployment}…. A request to an idle
// (scaled to zero) revision wakes it and is held until a replica is ready, up
// to the revision's wake timeout. Every request to an endpoint is counted
// (runtime traffic counts), /ready probes excepted.
//
// Request bodies up to retryBufferBytes are buffered, so that a request whose
// replica fails before answering can be sent to another replica once; larger
// bodies are streamed through (up to maxBodyBytes) without that retry.
// Responses are always streamed.
import http from "node:http";
import { pipeline } from "node:stream/promises";
import type { Logger } from "../../log.js";
import { closeServer, httpUrl, listen, sendJson } from "./http-util.js";
import type { Resolution } from "./local-runtime.js";
import { BodyTooLargeError, byteLimit, forwardedHeaders, readPrefix, responseHeaders, type BufferedPrefix } from "./proxy-util.js";
import type { Replica } from "./replica.js";
import type { Revision } from "./revision.js";
import type { GatewayError, GatewayMetrics, GatewayTarget } from "./runtime-metrics.js";
import type { DeploymentCounts } from "./traffic-counts.js";

export interface GatewayOptions {
  host: string;
  port: number;
  resolve(workspace: string, deploymentName: string): Resolution;
  /** Wakes an idle revision: true once a replica is ready, false if the wake ended without one. */
  wake(revision: Revision): Promise<boolean>;
  logger: Logger;
  /** Default 64 MiB. */
  maxBodyBytes?: number;
  /** Default 1 MiB. */
  retryBufferBytes?: number;
  /** Every request observed at its end. */
  metrics?: GatewayMetrics;
}

export interface Gateway {
  readonly port: number;
  readonly url: string;
  close(): Promise<void>;
}

/** On every response to a request routed to a revision (a replica's answer or the gateway's own error): that revision. */
export const revisionHeader = "x-modeldeploy-revision";

/** Retry-After (seconds) on a 503 for a request held while its deployment woke. */
export const WAKE_RETRY_AFTER_S = 5;

const ENDPOINT_PATH = /^\/([^/]+)\/v2\/models\/([^/]+)(\/.*)?$/;

/** One request: its metrics labels, and what its end counts in its deployment's traffic counts. */
interface Track extends GatewayTarget {
  /** Set once the request arrived at a deployment's endpoint (counted in `arrivals` and `inFlight`). */
  counts: DeploymentCounts | undefined;
  /** The revision it was routed to. */
  number: number;
  /** Its response broke off after it started (the replica went away mid-answer): a failure. */
  broken: boolean;
}

type WakeOutcome = "ready" | "failed" | "timeout" | "gone";

export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  const maxBodyBytes = options.maxBodyBytes ?? 64 * 1024 * 1024;
  const retryBufferBytes = Math.min(options.retryBufferBytes ?? 1024 * 1024, maxBodyBytes);
  const { logger } = options;
  // Idle sockets time out (30 s) before the model server's keep-alive (65 s) would close them under us.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256, timeout: 30_000 });

  /** The gateway answers with an error itself; a request routed to a revision says which (set here, off the hot path). */
  const failed = (track: Track, res: http.ServerResponse, reason: GatewayError) => {
    if (track.number > 0 && !res.headersSent) res.setHeader(revisionHeader, track.revision);
    options.metrics?.error(track, reason);
  };

  /** `track`: filled in once the path names a deployment this runtime serves. Nothing awaits before it is. */
  async function handle(req: http.IncomingMessage, res: http.ServerResponse, track: Track): Promise<void> {
    const url = new URL(req.url ?? "/", "http://gateway");
    if (url.pathname === "/healthz") return sendJson(res, 200, { ok: true });
    const match = ENDPOINT_PATH.exec(url.pathname);
    if (!match) {
      return sendJson(res, 404, { error: `no endpoint at ${url.pathname}; endpoints are /{workspace}/v2/models/{deployment}` });
    }
    const [, rawWorkspace = "", rawName = "", rest = ""] = match;
    let workspace: string, name: string;
    try {
      workspace = decodeURIComponent(rawWorkspace);
      name = decodeURIComponent(rawName);
    } catch {
      return sendJson(res, 400, { error: "malformed percent-encoding in path" });
    }
    const resolved = options.resolve(workspace, name);
    if (resolved.kind === "missing") {
      return sendJson(res, 404, { error: `no deployment '${name}' in workspace '${workspace}'` });
    }
    // Names of deployments this runtime serves only: unknown names never become labels.
    track.workspace = workspace;
    track.deployment = name;
    track.revision = String(resolved.number);
    const isRead = req.method === "GET" || req.method === "HEAD";
    if (isRead && (rest === "/ready" || rest === "/ready/")) {
      // A probe neither counts nor wakes anything.
      const ready = resolved.kind === "serving" && resolved.revision.hasReadyReplica();
      if (ready) return sendJson(res, 200, { name, ready: true });
      return sendJson(res, 503, { name, ready: false, error: unavailableReason(resolved, name) });
    }
    track.counts = resolved.counts;
    track.number = resolved.number;
    resolved.counts.arrive();
    if (resolved.kind === "stopped") {
      failed(track, res, "stopped");
      return sendJson(res, 503, { error: unavailableReason(resolved, name) });
    }
    if (resolved.kind === "idle") {
      const outcome = await holdForWake(res, resolved.revision);
      if (outcome === "gone") return;
      if (outcome !== "ready") {
        failed(track, res, outcome === "timeout" ? "wake_timeout" : "wake_failed");
        res.setHeader("retry-after", String(WAKE_RETRY_AFTER_S));
        const error =
          outcome === "timeout"
            ? `deployment '${name}' is waking up from zero replicas; retry in a few seconds`
            : `deployment '${name}' did not wake: no replica became ready`;
        return sendJson(res, 503, { error });
      }
    }
    const upstreamPath = `/v2/models/${encodeURIComponent(resolved.route.deploymentName)}${rest}${url.search}`;
    return proxy(req, res, resolved.revision, upstreamPath, name, track);
  }

  /** Holds a request while its revision wakes: at most its wake timeout, and only while the client waits. */
  function holdForWake(res: http.ServerResponse, revision: Revision): Promise<WakeOutcome> {
    return new Promise((resolve) => {
      let settled = false;
      const done = (outcome: WakeOutcome) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        res.off("close", gone);
        resolve(outcome);
      };
      const gone = () => done("gone");
      const timer = setTimeout(() => done("timeout"), revision.desired.spec.wakeTimeoutMs ?? 0);
      res.once("close", gone);
      void options.wake(revision).then((ok) => done(ok ? "ready" : "failed"));
    });
  }

  async function proxy(req: http.IncomingMessage, res: http.ServerResponse, revision: Revision, path: string, name: string, track: Track): Promise<void> {
    const declared = Number(req.headers["content-length"] ?? NaN);
    if (declared > maxBodyBytes) {
      failed(track, res, "body_too_large");
      return tooLarge(res);
    }
    const first = revision.pick();
    if (!first) {
      failed(track, res, "no_ready_replica");
      return sendJson(res, 503, { error: `deployment '${name}' has no ready replica yet` });
    }
    // In flight from now on, body upload included, so that draining the replica waits for this request.
    const releaseFirst = first.acquire();
    let prefix: BufferedPrefix;
    try {
      prefix = await readPrefix(req, retryBufferBytes);
    } catch (err) {
      releaseFirst();
      throw err;
    }
    const headers = forwardedHeaders(req.headers);
    if (prefix.complete) headers["content-length"] = String(prefix.size);

    const attempt = (replica: Replica, release: () => void, isRetry: boolean): void => {
      let responded = false;
      const fail = (err: NodeJS.ErrnoException, staleSocket: boolean) => {
        release();
        if (err instanceof BodyTooLargeError) {
          failed(track, res, "body_too_large");
          return tooLarge(res);
        }
        if (!staleSocket) replica.setReady(false);
        logger.warn("replica request failed", {
          workspace: track.workspace,
          deployment: track.deployment,
          revision: revision.number,
          replica: replica.index,
          err,
          retry: !isRetry && prefix.complete,
        });
        // A stale kept-alive socket says nothing about the replica: it may be chosen again.
        const next = prefix.complete && !isRetry ? revision.pick(staleSocket ? undefined : replica) : undefined;
        if (next) return attempt(next, next.acquire(), true);
        failed(track, res, "replica_failed");
        sendJson(res, 502, { error: `replica of '${name}' failed: ${err.message}` });
      };
      if (replica.port === undefined) return fail(new Error("replica restarted"), false);

      const upstream = http.request({ host: "127.0.0.1", port: replica.port, method: req.method, path, headers, agent });
      const onClientClose = () => {
        release();
        if (!res.writableFinished) upstream.destroy();
      };
      res.once("close", onClientClose);
      upstream.on("response", (upstreamRes) => {
        responded = true;
        // Which revision served it: a client can see a rollout switch happen.
        res.writeHead(upstreamRes.statusCode ?? 502, { ...responseHeaders(upstreamRes.headers), [revisionHeader]: String(revision.number) });
        // Before the pipeline's own listener: the replica broke off while the client still listened.
        upstreamRes.once("error", () => {
          if (!res.destroyed) track.broken = true;
        });
        pipeline(upstreamRes, res).catch(() => res.destroy());
      });
      upstream.on("error", (err: NodeJS.ErrnoException) => {
        if (responded || res.destroyed) {
          if (responded && !res.destroyed) track.broken = true;
          return void res.destroy();
        }
        res.off("close", onClientClose);
        fail(err, upstream.reusedSocket && err.code === "ECONNRESET");
      });

      for (const chunk of prefix.chunks) upstream.write(chunk);
      if (prefix.complete) {
        upstream.end();
        return;
      }
      pipeline(req, byteLimit(prefix.size, maxBodyBytes), upstream).catch((err: unknown) => {
        upstream.destroy(err instanceof BodyTooLargeError ? err : undefined);
      });
    };
    attempt(first, releaseFirst, false);
  }

  /** A request is over: its metrics, and its traffic counts (a client that went away counts for no revision). */
  const ended = (track: Track, res: http.ServerResponse, started: number) => {
    options.metrics?.request(track, res.statusCode, (performance.now() - started) / 1000);
    if (track.counts === undefined) return;
    const answered = res.writableFinished;
    track.counts.end(track.number, answered || track.broken, track.broken || (answered && res.statusCode >= 500));
  };

  const server = http.createServer((req, res) => {
    const track: Track = { workspace: "", deployment: "", revision: "", counts: undefined, number: 0, broken: false };
    const started = performance.now();
    res.once("close", () => ended(track, res, started));
    handle(req, res, track).catch((err: unknown) => {
      logger.warn("gateway request failed", { err, url: req.url, workspace: track.workspace || undefined, deployment: track.deployment || undefined });
      failed(track, res, "gateway_error");
      sendJson(res, 500, { error: "gateway error" });
    });
  });
  const port = await listen(server, options.port, options.host);
  return {
    port,
    url: httpUrl(options.host, port),
    async close() {
      await closeServer(server, 2_000);
      agent.destroy();
    },
  };
}

function unavailableReason(target: Exclude<Resolution, { kind: "missing" }>, name: string): string {
  if (target.kind === "stopped") {
    return `deployment '${name}' is stopped (0 replicas); resume it by scaling it up: \`modeldeploy scale ${name} --replicas 1\`, or UpdateDeployment with scaling.minReplicas ≥ 1`;
  }
  if (target.kind === "idle") return target.revision.desired.replicas === 0 ? "idle; the next request wakes it" : `deployment '${name}' is waking up`;
  return `deployment '${name}' has no ready replica yet`;
}

function tooLarge(res: http.ServerResponse): void {
  res.setHeader("connection", "close");
  sendJson(res, 413, { error: "request body is too large" });
}
