// Connect, gRPC-Web (and gRPC) via @connectrpc/connect-node, over HTTP/1.1
// and cleartext HTTP/2 on one port: each connection's first bytes decide
// whether it goes to an http2 server (HTTP/2 preface) or an http server.
// Browsers never speak cleartext HTTP/2, so HTTP/1.1 is what they get; curl,
// connect-node and grpc clients can use h2c ("prior knowledge").
import { setMaxListeners } from "node:events";
import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import type { AddressInfo } from "node:net";
import type { DescService } from "@bufbuild/protobuf";
import { cors as connectCors, createContextValues, type ServiceImpl } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { Logger } from "../log.js";
import {
  acceptRequestId,
  newRequestId,
  requestIdHeader,
  requestIdKey,
  wrapServiceImpl,
  type ServiceBinding,
} from "./call-wrapper.js";

export const defaultReadMaxBytes = 4 * 1024 * 1024;

export interface CorsOptions {
  /** "*" (default: any origin; fine for bearer-token auth, no cookies), a list, or a predicate. */
  allowedOrigins?: "*" | readonly string[] | ((origin: string) => boolean);
  /** Preflight cache, seconds. Default 7200. */
  maxAgeSeconds?: number;
  /** Extra request headers browsers may send. */
  allowedHeaders?: readonly string[];
  /** Extra response headers scripts may read. */
  exposedHeaders?: readonly string[];
}

export interface ConnectServerOptions {
  /** Raw (unwrapped) implementations; the server wraps them with wrapServiceImpl. */
  services: readonly ServiceBinding[];
  logger: Logger;
  /** Larger request bodies/messages get RESOURCE_EXHAUSTED. Default 4 MiB. */
  readMaxBytes?: number;
  /** CORS for browsers; `false` turns it off. Default: any origin. */
  cors?: CorsOptions | false;
  /** Clients asking for a longer timeout get this (ms). Default: no limit. */
  maxTimeoutMs?: number;
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

type NodeRequest = http.IncomingMessage | http2.Http2ServerRequest;
type NodeResponse = http.ServerResponse | http2.Http2ServerResponse;

const h2Preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");
/** A connection must send its first bytes within this time. */
const firstBytesTimeoutMs = 30_000;

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? (v.length === 1 ? v[0] : undefined) : v;
}

function corsHandler(opts: CorsOptions): (req: NodeRequest, res: NodeResponse) => boolean {
  const origins = opts.allowedOrigins ?? "*";
  const allowAny = origins === "*";
  const allowed =
    typeof origins === "function"
      ? origins
      : origins === "*"
        ? () => true
        : (o: string) => (origins as readonly string[]).includes(o);
  const allowHeaders = [
    ...new Set([...connectCors.allowedHeaders, "authorization", requestIdHeader, ...(opts.allowedHeaders ?? [])]),
  ].join(", ");
  const exposeHeaders = [
    ...new Set([
      ...connectCors.exposedHeaders,
      requestIdHeader,
      "grpc-status",
      "grpc-message",
      "grpc-status-details-bin",
      ...(opts.exposedHeaders ?? []),
    ]),
  ].join(", ");
  const allowMethods = [...new Set([...connectCors.allowedMethods, "OPTIONS"])].join(", ");
  const maxAge = String(opts.maxAgeSeconds ?? 7200);
  /** Returns true when it answered the request (a preflight). */
  return (req, res) => {
    const origin = headerValue(req.headers.origin);
    const preflight = req.method === "OPTIONS" && req.headers["access-control-request-method"] !== undefined;
    if (origin === undefined || !allowed(origin)) {
      if (preflight) {
        res.writeHead(204);
        res.end();
        return true;
      }
      return false;
    }
    res.setHeader("access-control-allow-origin", allowAny ? "*" : origin);
    if (!allowAny) res.setHeader("vary", "Origin");
    if (preflight) {
      res.writeHead(204, {
        "access-control-allow-methods": allowMethods,
        "access-control-allow-headers": allowHeaders,
        "access-control-max-age": maxAge,
      });
      res.end();
      return true;
    }
    res.setHeader("access-control-expose-headers", exposeHeaders);
    return false;
  };
}

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
  const readMaxBytes = opts.readMaxBytes ?? defaultReadMaxBytes;
  const cors = opts.cors === false ? undefined : corsHandler(opts.cors ?? {});
  /** Ends open server streams when close() starts. */
  const streamShutdown = new AbortController();
  /** Aborts every handler context when the grace period is over. */
  const hardShutdown = new AbortController();
  // connect links every request's signal to it: no leak warning at 11 requests.
  setMaxListeners(0, hardShutdown.signal, streamShutdown.signal);
  const requestIds = new WeakMap<object, string>();
  let closing = false;

  const adapter = connectNodeAdapter({
    routes(router) {
      for (const { service, impl } of opts.services) {
        const wrapped = wrapServiceImpl(service, impl, { logger, shutdownSignal: streamShutdown.signal });
        router.service(service, wrapped as unknown as ServiceImpl<DescService>);
      }
    },
    readMaxBytes,
    ...(opts.maxTimeoutMs !== undefined ? { maxTimeoutMs: opts.maxTimeoutMs } : {}),
    shutdownSignal: hardShutdown.signal,
    // The same id the HTTP layer put on the response header.
    contextValues: (req) => createContextValues().set(requestIdKey, requestIds.get(req) ?? ""),
    fallback(req, res) {
      sendJson(res as NodeResponse, 404, { code: "not_found", message: "no such path" }, req.method);
    },
  });

  // HTTP/1.1 connections and how many requests each has in flight.
  const h1Active = new Map<net.Socket, number>();
  // Connections whose protocol is not decided yet.
  const pending = new Set<net.Socket>();

  const onRequest = (req: NodeRequest, res: NodeResponse) => {
    const id = acceptRequestId(headerValue(req.headers[requestIdHeader])) ?? newRequestId();
    requestIds.set(req, id);
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
    const path = (req.url ?? "").split("?", 1)[0];
    if (path === "/healthz" && (req.method === "GET" || req.method === "HEAD")) {
      if (closing) sendJson(res, 503, { status: "shutting down" }, req.method);
      else sendJson(res, 200, { status: "ok" }, req.method);
      return;
    }
    adapter(req, res);
  };

  const h1 = http.createServer(onRequest);
  const h2 = http2.createServer({}, onRequest);
  const sessions = new Set<http2.ServerHttp2Session>();
  h2.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
    if (closing) session.close();
  });
  h2.on("sessionError", (err) => logger.debug("http2 session error", { err }));

  const sockets = new Set<net.Socket>();
  let allClosed: (() => void) | undefined;
  const net_ = net.createServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => {
      sockets.delete(socket);
      h1Active.delete(socket);
      pending.delete(socket);
      if (closing && sockets.size === 0) allClosed?.();
    });
    // Errors are handled by the HTTP servers once the socket is handed over;
    // before that (and after, as a last resort) they must not crash the process.
    socket.on("error", () => {});
    if (closing) {
      socket.destroy();
      return;
    }
    pending.add(socket);
    socket.setTimeout(firstBytesTimeoutMs, () => socket.destroy());
    let head: Buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      const n = Math.min(head.length, h2Preface.length);
      const isH2 = head.subarray(0, n).equals(h2Preface.subarray(0, n));
      if (isH2 && head.length < h2Preface.length) return; // need more bytes to decide
      socket.off("data", onData);
      pending.delete(socket);
      socket.setTimeout(0);
      socket.pause();
      socket.unshift(head);
      if (isH2) {
        // The Http2Session reads what is buffered on the socket itself.
        h2.emit("connection", socket);
      } else {
        h1Active.set(socket, 0);
        h1.emit("connection", socket);
        socket.resume();
      }
    };
    socket.on("data", onData);
  });

  let closed: Promise<void> | undefined;

  return {
    listen(host, port) {
      return new Promise<number>((resolve, reject) => {
        const onError = (err: Error) => reject(err);
        net_.once("error", onError);
        net_.listen({ host, port }, () => {
          net_.off("error", onError);
          // h1 never listens itself; "listening" starts Node's connection
          // tracking (headersTimeout/requestTimeout checks, closeIdleConnections).
          h1.emit("listening");
          const bound = (net_.address() as AddressInfo).port;
          logger.info("connect server listening", { address: host, port: bound });
          resolve(bound);
        });
      });
    },
    close(graceMs) {
      closed ??= (async () => {
        closing = true;
        streamShutdown.abort();
        net_.close();
        for (const session of sessions) session.close();
        // Connections that never sent a request go now; idle keep-alive
        // HTTP/1.1 connections too; busy ones after their response.
        for (const socket of pending) socket.destroy();
        for (const [socket, active] of h1Active) if (active === 0) socket.destroySoon();
        if (sockets.size > 0) {
          let timer: NodeJS.Timeout | undefined;
          const graceOver = new Promise<boolean>((resolve) => {
            timer = setTimeout(() => resolve(false), graceMs);
          });
          const drained = new Promise<boolean>((resolve) => {
            allClosed = () => resolve(true);
            if (sockets.size === 0) resolve(true);
          });
          const clean = await Promise.race([drained, graceOver]);
          clearTimeout(timer);
          if (!clean) {
            logger.warn("connect server: grace period over, closing remaining connections", {
              graceMs,
              connections: sockets.size,
            });
            hardShutdown.abort();
            for (const session of sessions) session.destroy();
            for (const socket of sockets) socket.destroy();
          }
        }
        h1.close();
        h2.close();
      })();
      return closed;
    },
  };
}

