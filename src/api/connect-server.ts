// Connect, gRPC-Web (and gRPC) via @connectrpc/connect-node, over HTTP/1.1
// and cleartext HTTP/2 on one port: each connection's first bytes decide
// whether it goes to an http2 server (HTTP/2 preface) or an http server.
// Browsers never speak cleartext HTTP/2, so HTTP/1.1 is what they get; curl,
// connect-node and grpc clients can use h2c ("prior knowledge").
// The port holds up against careless and hostile clients: a connection cap,
// streams per HTTP/2 session, request header bytes, idle and keepalive
// limits (wire-limits.ts), and request bodies checked before connect-node
// parses them (request-guard.ts). Unary Connect POSTs over HTTP/1.1 skip
// connect-node's handler (connect-unary-fast.ts), with the same answers.
import { setMaxListeners } from "node:events";
import * as http from "node:http";
import * as http2 from "node:http2";
import type * as net from "node:net";
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { createContextValues, type ConnectError, type ServiceImpl } from "@connectrpc/connect";
import type { Logger } from "../log.js";
import { serveMetrics, type MetricsRegistry } from "../telemetry/metrics.js";
import {
  acceptRequestId,
  finishError,
  logRejectedCall,
  newRequestId,
  requestIdHeader,
  requestIdKey,
  wrapServiceImpl,
  type ServiceBinding,
} from "./call-wrapper.js";
import { createConnectAdapter, stopReading } from "./connect-adapter.js";
import { createCappedListener } from "./connection-cap.js";
import { createUnaryFastPath } from "./connect-unary-fast.js";
import { createConnectionRefuser } from "./connection-refuser.js";
import { corsHandler, headerValue, type CorsOptions } from "./cors.js";
import { pathOf, type NodeRequest, type NodeResponse } from "./node-http.js";
import { applySessionLimits } from "./http2-session-limits.js";
import { writeProtocolError } from "./protocol-error.js";
import { sniffProtocol } from "./protocol-sniff.js";
import type { StaticAssets } from "./static-assets.js";
import { answerClientError } from "./h1-client-error.js";
import { headersTooLarge, tooManyConnections } from "./request-rejections.js";
import { headerHardLimitFactor, rawHeaderBytes, wireLimits, type WireLimits } from "./wire-limits.js";
import type { RpcMetrics } from "./rpc-metrics.js";

export type { CorsOptions } from "./cors.js";

export const defaultReadMaxBytes = 4 * 1024 * 1024;
export const defaultMaxJsonBytes = 256 * 1024;
export const defaultMaxJsonDepth = 64;

export interface ConnectServerOptions {
  /** Raw (unwrapped) implementations; the server wraps them with wrapServiceImpl. */
  services: readonly ServiceBinding[];
  logger: Logger;
  /** Larger protobuf request messages get RESOURCE_EXHAUSTED. Default 4 MiB. */
  readMaxBytes?: number;
  /** Larger JSON request messages (after decompression) get RESOURCE_EXHAUSTED. Default 256 KiB. */
  maxJsonBytes?: number;
  /** JSON requests nested deeper get INVALID_ARGUMENT, before anything parses them. Default 64. */
  maxJsonDepth?: number;
  /** Connections, streams, header bytes, idle and keepalive (defaultWireLimits). */
  limits?: Partial<WireLimits>;
  /** CORS for browsers; `false` turns it off. Default: any origin. */
  cors?: CorsOptions | false;
  /** Clients asking for a longer timeout get this (ms). Default: no limit. */
  maxTimeoutMs?: number;
  /**
   * Unary Connect POSTs over HTTP/1.1 skip connect-node's handler
   * (connect-unary-fast.ts). Default true; false sends everything through
   * connect-node (tests compare the two).
   */
  unaryFastPath?: boolean;
  /** The web dashboard's files (static-assets.ts), served for GET and HEAD beside the RPC routes. */
  assets?: StaticAssets;
  /** Every call observed (both transports share one). */
  metrics?: RpcMetrics;
  /** Served at GET /metrics, without authentication (no workspace data in it). */
  metricsRegistry?: MetricsRegistry;
}

export interface ConnectServer {
  /** Listen; resolves with the bound port (useful with port 0). */
  listen(host: string, port: number): Promise<number>;
  /**
   * Stop accepting, end open server streams with UNAVAILABLE, close idle
   * keep-alive connections, let in-flight requests finish for up to graceMs,
   * then destroy what is left.
   */
  close(graceMs: number): Promise<void>;
}

interface RequestInfo {
  id: string;
  started: number;
}
const requestInfo = Symbol("modeldeploy.requestInfo");
type TaggedRequest = { [requestInfo]?: RequestInfo };

/** A connection must send its first bytes within this time (or the idle limit, if shorter). */
const firstBytesTimeoutMs = 30_000;

function sendJson(res: NodeResponse, status: number, body: unknown, method: string | undefined): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": String(Buffer.byteLength(text)),
    "cache-control": "no-store",
  });
  if (method === "HEAD") res.end();
  else res.end(text);
}

export function createConnectServer(opts: ConnectServerOptions): ConnectServer {
  const { logger } = opts;
  const limits = wireLimits(opts.limits);
  const readMaxBytes = opts.readMaxBytes ?? defaultReadMaxBytes;
  const cors = opts.cors === false ? undefined : corsHandler(opts.cors ?? {});
  /** Ends open server streams when close() starts. */
  const streamShutdown = new AbortController();
  /** Aborts every handler context when the grace period is over. */
  const hardShutdown = new AbortController();
  // connect links every request's signal to it: no leak warning at 11 requests.
  setMaxListeners(0, hardShutdown.signal, streamShutdown.signal);
  /** Each request's id and start, for the handler context and for rejections logged before a handler runs. */
  const requests = {
    // A property on the request, not a WeakMap: a WeakMap insert per request was the hottest line of onRequest.
    set: (req: object, info: RequestInfo) => ((req as TaggedRequest)[requestInfo] = info),
    get: (req: object) => (req as TaggedRequest)[requestInfo],
  };
  const requestIdOfReq = (req: object) => requests.get(req)?.id ?? "";
  let closing = false;

  // Wrapped once: connect-node's router and the unary fast path run the same implementation.
  const services = opts.services.map(({ service, impl }) => ({
    service,
    impl: wrapServiceImpl(service, impl, { logger, shutdownSignal: streamShutdown.signal, ...(opts.metrics ? { metrics: opts.metrics } : {}) }),
  }));
  const limitsOfBodies = {
    maxMessageBytes: readMaxBytes,
    maxJsonBytes: Math.min(opts.maxJsonBytes ?? defaultMaxJsonBytes, readMaxBytes),
    maxJsonDepth: opts.maxJsonDepth ?? defaultMaxJsonDepth,
  };
  // The same id the HTTP layer put on the response header.
  const contextValues = (req: NodeRequest) => createContextValues().set(requestIdKey, requestIdOfReq(req));
  const rejected = (req: NodeRequest, method: DescMethod, protocol: string, err: ConnectError) => {
    const requestId = requestIdOfReq(req);
    const out = finishError(err, requestId);
    logRejectedCall(logger, method, protocol, requestId, requests.get(req)?.started ?? performance.now(), out, opts.metrics);
    return out;
  };
  const maxTimeout = opts.maxTimeoutMs !== undefined ? { maxTimeoutMs: opts.maxTimeoutMs } : {};
  const adapter = createConnectAdapter({
    routes(router) {
      for (const { service, impl } of services) router.service(service, impl as unknown as ServiceImpl<DescService>);
    },
    readMaxBytes,
    limits: limitsOfBodies,
    logger,
    ...maxTimeout,
    shutdownSignal: hardShutdown.signal,
    contextValues,
    fallback(req, res) {
      sendJson(res as NodeResponse, 404, { code: "not_found", message: "no such path" }, req.method);
    },
    rejected,
  });
  const fast =
    opts.unaryFastPath === false
      ? undefined
      : createUnaryFastPath({
          services,
          readMaxBytes,
          limits: limitsOfBodies,
          logger,
          ...maxTimeout,
          shutdownSignal: hardShutdown.signal,
          contextValues,
          rejected,
        });

  // HTTP/1.1 connections and how many requests each has in flight.
  const h1Active = new Map<net.Socket, number>();
  // Connections whose protocol is not decided yet.
  const pending = new Set<net.Socket>();

  /** A header block above the limit (but under the HTTP layer's hard cap) gets a clear error. */
  const refuseLargeHeaders = (req: NodeRequest, res: NodeResponse, id: string): boolean => {
    const bytes = rawHeaderBytes(req.rawHeaders);
    if (bytes <= limits.maxHeaderBytes) return false;
    const err = finishError(headersTooLarge(bytes, limits.maxHeaderBytes), id);
    logger.info("request refused", { path: req.url?.split("?", 1)[0], requestId: id, error: err.rawMessage });
    void stopReading(req, res).then(() => writeProtocolError(res, headerValue(req.headers["content-type"]), err));
    return true;
  };

  const onRequest = (req: NodeRequest, res: NodeResponse) => {
    const id = acceptRequestId(headerValue(req.headers[requestIdHeader])) ?? newRequestId();
    requests.set(req, { id, started: performance.now() });
    // Every response, including errors raised before a handler runs
    // (malformed or oversized bodies, unknown paths), carries the id.
    res.setHeader(requestIdHeader, id);
    if (req.httpVersionMajor === 1) {
      const socket = req.socket;
      h1Active.set(socket, (h1Active.get(socket) ?? 0) + 1);
      res.once("close", () => {
        const n = (h1Active.get(socket) ?? 1) - 1;
        h1Active.set(socket, n);
        if (closing && n === 0) socket.destroySoon();
      });
      if (closing) res.setHeader("connection", "close");
    }
    if (cors !== undefined && cors(req, res)) return;
    if (refuseLargeHeaders(req, res, id)) return;
    const path = pathOf(req.url);
    if (path === "/healthz" && (req.method === "GET" || req.method === "HEAD")) {
      if (closing) sendJson(res, 503, { status: "shutting down" }, req.method);
      else sendJson(res, 200, { status: "ok" }, req.method);
      return;
    }
    if (opts.assets?.serve(req, res, path) === true) return;
    if (path === "/metrics" && opts.metricsRegistry !== undefined) return serveMetrics(opts.metricsRegistry, req, res);
    if (fast?.serve(req, res, path) === true) return;
    adapter(req, res);
  };

  const hardHeaderBytes = limits.maxHeaderBytes * headerHardLimitFactor;
  // Node closes idle keep-alive HTTP/1.1 connections itself, after 5 s.
  const h1 = http.createServer({ maxHeaderSize: hardHeaderBytes }, onRequest);
  h1.on("clientError", (err: NodeJS.ErrnoException, socket: net.Socket) => answerClientError(err, socket, { hardHeaderBytes }));
  const h2 = http2.createServer({ settings: { maxConcurrentStreams: limits.maxStreamsPerConnection, maxHeaderListSize: hardHeaderBytes } }, onRequest);
  const sessions = new Set<http2.ServerHttp2Session>();
  h2.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
    applySessionLimits(session, limits);
    if (closing) session.close();
  });
  h2.on("sessionError", (err) => logger.debug("http2 session error", { err }));

  const refuser = createConnectionRefuser({ message: tooManyConnections(limits.maxConnections) });
  const listener = createCappedListener({
    name: "http",
    maxConnections: limits.maxConnections,
    logger,
    refuse: (socket) => refuser.refuse(socket, "sniff"),
    accept(socket) {
      pending.add(socket);
      socket.once("close", () => {
        h1Active.delete(socket);
        pending.delete(socket);
      });
      sniffProtocol(socket, Math.min(firstBytesTimeoutMs, limits.idleConnectionMs), (isH2) => {
        pending.delete(socket);
        if (isH2) {
          // The Http2Session reads what is buffered on the socket itself.
          h2.emit("connection", socket);
        } else {
          h1Active.set(socket, 0);
          h1.emit("connection", socket);
          socket.resume();
        }
      });
    },
  });

  let closed: Promise<void> | undefined;

  return {
    async listen(host, port) {
      const bound = await listener.listen(host, port);
      // h1 never listens itself; "listening" starts Node's connection
      // tracking (headersTimeout/requestTimeout checks, closeIdleConnections).
      h1.emit("listening");
      logger.info("connect server listening", { address: host, port: bound });
      return bound;
    },
    close(graceMs) {
      closed ??= (async () => {
        closing = true;
        streamShutdown.abort();
        listener.close();
        refuser.close();
        for (const session of sessions) session.close();
        // Connections that never sent a request go now; idle keep-alive
        // HTTP/1.1 connections too; busy ones after their response.
        for (const socket of pending) socket.destroy();
        for (const [socket, active] of h1Active) if (active === 0) socket.destroySoon();
        if (listener.sockets.size > 0) {
          let timer: NodeJS.Timeout | undefined;
          const graceOver = new Promise<boolean>((resolve) => {
            timer = setTimeout(() => resolve(false), graceMs);
          });
          const drained = listener.whenEmpty().then(() => true);
          const clean = await Promise.race([drained, graceOver]);
          clearTimeout(timer);
          if (!clean) {
            logger.warn("connect server: grace period over, closing remaining connections", {
              graceMs,
              connections: listener.sockets.size,
            });
            hardShutdown.abort();
            for (const session of sessions) session.destroy();
            for (const socket of listener.sockets) socket.destroy();
          }
        }
        h1.close();
        h2.close();
      })();
      return closed;
    },
  };
}
