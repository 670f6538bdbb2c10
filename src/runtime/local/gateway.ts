// The inference gateway: one HTTP/1.1 server in front of every deployment's
// replicas. A deployment's endpoint is /{workspace}/v2/models/{deployment};
// requests under it are proxied round-robin to ready replicas of the revision
// its route points to, with the path rewritten to /v2/models/{deployment}….
//
// Request bodies up to retryBufferBytes are buffered, so that a request whose
// replica fails before answering can be sent to another replica once; larger
// bodies are streamed through (up to maxBodyBytes) without that retry.
// Responses are always streamed.
import http from "node:http";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Logger } from "../../log.js";
import { closeServer, httpUrl, listen, sendJson } from "./http-util.js";
import type { Resolution } from "./local-runtime.js";
import type { Replica } from "./replica.js";
import type { Revision } from "./revision.js";
import type { GatewayError, GatewayMetrics, GatewayTarget } from "./runtime-metrics.js";

export interface GatewayOptions {
  host: string;
  port: number;
  resolve(workspace: string, deploymentName: string): Resolution;
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

/** On every response a replica served: the revision it belongs to. */
export const revisionHeader = "x-modeldeploy-revision";

const ENDPOINT_PATH = /^\/([^/]+)\/v2\/models\/([^/]+)(\/.*)?$/;
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "host",
  "content-length",
]);

class BodyTooLargeError extends Error {
  override readonly name = "BodyTooLargeError";
}

interface BufferedPrefix {
  chunks: Buffer[];
  size: number;
  /** The whole body is in `chunks`. */
  complete: boolean;
}

export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  const maxBodyBytes = options.maxBodyBytes ?? 64 * 1024 * 1024;
  const retryBufferBytes = Math.min(options.retryBufferBytes ?? 1024 * 1024, maxBodyBytes);
  const { logger } = options;
  // Idle sockets time out (30 s) before the model server's keep-alive (65 s) would close them under us.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256, timeout: 30_000 });

  const failed = (target: GatewayTarget, reason: GatewayError) => options.metrics?.error(target, reason);

  /** `target`: filled in once the path names a deployment this runtime serves (for the metrics). */
  async function handle(req: http.IncomingMessage, res: http.ServerResponse, target: GatewayTarget): Promise<void> {
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
    target.workspace = workspace;
    target.deployment = name;
    target.revision = String(resolved.route.revision);
    const isRead = req.method === "GET" || req.method === "HEAD";
    if (isRead && (rest === "/ready" || rest === "/ready/")) {
      const ready = resolved.kind === "serving" && resolved.revision.readyReplicas().length > 0;
      if (ready) return sendJson(res, 200, { name, ready: true });
      return sendJson(res, 503, { name, ready: false, error: unavailableReason(resolved, name) });
    }
    if (resolved.kind === "stopped") {
      failed(target, "stopped");
      return sendJson(res, 503, { error: unavailableReason(resolved, name) });
    }
    const upstreamPath = `/v2/models/${encodeURIComponent(resolved.route.deploymentName)}${rest}${url.search}`;
    return proxy(req, res, resolved.revision, upstreamPath, name, target);
  }

  async function proxy(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    revision: Revision,
    path: string,
    name: string,
    target: GatewayTarget,
  ): Promise<void> {
    const declared = Number(req.headers["content-length"] ?? NaN);
    if (declared > maxBodyBytes) {
      failed(target, "body_too_large");
      return tooLarge(res);
    }
    const first = revision.pick();
    if (!first) {
      failed(target, "no_ready_replica");
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
          failed(target, "body_too_large");
          return tooLarge(res);
        }
        if (!staleSocket) replica.setReady(false);
        logger.warn("replica request failed", {
          workspace: target.workspace,
          deployment: target.deployment,
          revision: revision.number,
          replica: replica.index,
          err,
          retry: !isRetry && prefix.complete,
        });
        // A stale kept-alive socket says nothing about the replica: it may be chosen again.
        const next = prefix.complete && !isRetry ? revision.pick(staleSocket ? undefined : replica) : undefined;
        if (next) return attempt(next, next.acquire(), true);
        failed(target, "replica_failed");
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
        pipeline(upstreamRes, res).catch(() => res.destroy());
      });
      upstream.on("error", (err: NodeJS.ErrnoException) => {
        if (responded || res.destroyed) return void res.destroy();
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

  const server = http.createServer((req, res) => {
    const target: GatewayTarget = { workspace: "", deployment: "", revision: "" };
    const metrics = options.metrics;
    if (metrics !== undefined) {
      const started = performance.now();
      res.once("close", () => metrics.request(target, res.statusCode, (performance.now() - started) / 1000));
    }
    handle(req, res, target).catch((err: unknown) => {
      logger.warn("gateway request failed", { err, url: req.url, workspace: target.workspace || undefined, deployment: target.deployment || undefined });
      failed(target, "gateway_error");
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
  return target.kind === "stopped"
    ? `deployment '${name}' is stopped (0 replicas); resume it by scaling it up: \`modeldeploy scale ${name} --replicas 1\`, or UpdateDeployment with scaling.minReplicas ≥ 1`
    : `deployment '${name}' has no ready replica yet`;
}

function tooLarge(res: http.ServerResponse): void {
  res.setHeader("connection", "close");
  sendJson(res, 413, { error: "request body is too large" });
}

function forwardedHeaders(headers: http.IncomingHttpHeaders): http.OutgoingHttpHeaders {
  const out: http.OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(headers)) {
    if (v !== undefined && !HOP_BY_HOP.has(k)) out[k] = v;
  }
  return out;
}

function responseHeaders(headers: http.IncomingHttpHeaders): http.OutgoingHttpHeaders {
  const out: http.OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(headers)) {
    if (v !== undefined && (!HOP_BY_HOP.has(k) || k === "content-length")) out[k] = v;
  }
  return out;
}

/** Reads the body until it ends or exceeds `limit`; then leaves the stream paused for piping. */
function readPrefix(req: http.IncomingMessage, limit: number): Promise<BufferedPrefix> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = () => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      req.off("close", onClose);
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      if (size > limit) {
        req.pause();
        cleanup();
        resolve({ chunks, size, complete: false });
      }
    };
    const onEnd = () => {
      cleanup();
      resolve({ chunks, size, complete: true });
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const onClose = () => onError(new Error("client closed the request before sending its body"));
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
    req.on("close", onClose);
  });
}

function byteLimit(already: number, limit: number): Transform {
  let size = already;
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      size += chunk.length;
      if (size > limit) done(new BodyTooLargeError(`request body is larger than ${limit} bytes`));
      else done(null, chunk);
    },
  });
}
