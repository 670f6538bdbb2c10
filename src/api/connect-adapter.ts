// connect-node's adapter (connectNodeAdapter: route by path, hand the request
// to the universal handler, write its response), with a cheaper request
// signal (universal-request.ts) and the request guard in front: each body, and a Connect GET's message, is read and checked before
// connect-node parses it (request-guard.ts).
import * as http2 from "node:http2";
import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError, createConnectRouter, type ConnectRouter, type ConnectRouterOptions, type ContextValues } from "@connectrpc/connect";
import type { UniversalHandler } from "@connectrpc/connect/protocol";
import { compressionBrotli, compressionGzip, universalResponseToNodeResponse } from "@connectrpc/connect-node";
import type { Logger } from "../log.js";
import type { NodeRequest, NodeResponse } from "./node-http.js";
import { writeProtocolError } from "./protocol-error.js";
import { checkGetMessage, guardBody, type RequestGuardLimits } from "./request-guard.js";
import { universalRequest } from "./universal-request.js";

export interface ConnectAdapterOptions extends ConnectRouterOptions {
  routes(router: ConnectRouter): void;
  contextValues(req: NodeRequest): ContextValues;
  /** Requests for no known procedure. */
  fallback(req: NodeRequest, res: NodeResponse): void;
  limits: RequestGuardLimits;
  logger: Logger;
  /**
   * A request the guard refused: log it; returns the error to send (e.g.
   * with the request id in its metadata and details).
   */
  rejected(req: NodeRequest, method: DescMethod, protocol: string, err: ConnectError): ConnectError;
}

type NodeHandler = (req: NodeRequest, res: NodeResponse) => void;

/** An AsyncIterable of the one chunk `read` resolves with, read on first use. */
function lazyBody(read: () => Promise<Uint8Array>): AsyncIterable<Uint8Array> {
  return {
    [Symbol.asyncIterator]() {
      let done = false;
      return {
        async next(): Promise<IteratorResult<Uint8Array>> {
          if (done) return { done: true, value: undefined };
          done = true;
          return { done: false, value: await read() };
        },
        async return(): Promise<IteratorResult<Uint8Array>> {
          done = true;
          return { done: true, value: undefined };
        },
      };
    },
  };
}

/**
 * A request refused before its body was read to the end: do not parse the
 * rest. HTTP/2 resets the stream (NO_ERROR, RFC 9113 §8.1) once the response
 * has gone out, its trailers included (Node's compatibility layer sends them
 * on "wantTrailers"). HTTP/1.1 reads and drops the rest of a body of known
 * length up to drainBytes (far above any message limit: dropping bytes costs
 * no parsing), and the promise resolves once it has arrived: a
 * client still sending would otherwise have its connection closed (Connection:
 * close, or agent-less clients) and see a reset before it reads the answer.
 * Anything larger closes the connection after the response.
 */
/** Bodies up to this size are read and dropped before a refusal is answered (beyond, the connection closes). */
export const refusedBodyDrainBytes = 32 * 1024 * 1024;
/** A refusal waits this long at most for the rest of the body. */
const refusedBodyDrainMs = 10_000;

export function stopReading(req: NodeRequest, res: NodeResponse, drainBytes = refusedBodyDrainBytes): Promise<void> {
  if (req.complete) return Promise.resolve();
  if ("stream" in req) {
    const stream = req.stream;
    stream.once("wantTrailers", () =>
      setImmediate(() => {
        if (!stream.closed && !stream.destroyed) stream.close(http2.constants.NGHTTP2_NO_ERROR);
      }),
    );
    return Promise.resolve();
  }
  if (res.headersSent) return Promise.resolve();
  const declared = Number(req.headers["content-length"] ?? NaN);
  req.resume();
  if (!(declared <= drainBytes)) {
    res.setHeader("connection", "close");
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    // A client that stalls mid-body gets its answer anyway, and the connection closes.
    const timer = setTimeout(() => {
      res.setHeader("connection", "close");
      resolve();
    }, refusedBodyDrainMs);
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    req.once("end", done);
    req.once("close", done);
  });
}

/**
 * The error to answer a request the guard refused with, once the rest of its
 * body may be ignored: logged and given the request id (opts.rejected).
 */
export async function refuseRequest(
  opts: Pick<ConnectAdapterOptions, "rejected" | "limits">,
  req: NodeRequest,
  res: NodeResponse,
  method: DescMethod,
  protocol: string,
  e: unknown,
): Promise<ConnectError> {
  const err = ConnectError.from(e, Code.InvalidArgument);
  // The client is gone: there is no one to answer.
  if (err.code === Code.Canceled) return err;
  const out = opts.rejected(req, method, protocol, err);
  await stopReading(req, res);
  return out;
}

export function createConnectAdapter(opts: ConnectAdapterOptions): NodeHandler {
  const { limits, logger } = opts;
  const router = createConnectRouter({ acceptCompression: [compressionGzip, compressionBrotli], ...opts });
  opts.routes(router);
  const handlers = new Map<string, UniversalHandler>(router.handlers.map((h) => [h.requestPath, h]));

  const serve = (handler: UniversalHandler, uReq: Parameters<UniversalHandler>[0], res: NodeResponse) => {
    handler(uReq)
      .then((uRes) => universalResponseToNodeResponse(uRes, res))
      .catch((reason: unknown) => {
        // Aborted: the client went away while the response was written.
        if (reason instanceof ConnectError && reason.code === Code.Aborted) return;
        logger.warn("connect: request failed", { method: handler.method.name, err: reason });
      });
  };

  const refuse = (req: NodeRequest, res: NodeResponse, method: DescMethod, protocol: string, e: unknown) => refuseRequest(opts, req, res, method, protocol, e);

  return (req, res) => {
    const handler = handlers.get((req.url ?? "").split("?", 1)[0] ?? "");
    if (handler === undefined) {
      opts.fallback(req, res);
      return;
    }
    const uReq = universalRequest(req, res, opts.contextValues(req));
    if (req.method === "GET") {
      void checkGetMessage(uReq.url, handler.method, limits).then((e) => {
        if (e === undefined) serve(handler, uReq, res);
        else void refuse(req, res, handler.method, "connect", e).then((err) => writeProtocolError(res, undefined, err));
      });
      return;
    }
    const guarded = guardBody(req, uReq.header, handler.method, limits);
    if (guarded !== undefined) {
      for (const name of guarded.dropHeaders) uReq.header.delete(name);
      const { protocol } = guarded;
      uReq.body = lazyBody(async () => {
        try {
          return await guarded.read();
        } catch (e) {
          throw await refuse(req, res, handler.method, protocol, e);
        }
      });
    }
    serve(handler, uReq, res);
  };
}
