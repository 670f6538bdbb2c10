// A direct path for the commonest request of the HTTP port: a unary Connect
// call, POSTed over HTTP/1.1 with an uncompressed JSON or protobuf body.
//
// Why it exists: connect-node's universal handler spends more CPU per such call
// than the call's own work (an async-iterable request and response, a Headers
// copy per direction, a linked AbortController per call aborted without a
// reason, i.e. a DOMException with a stack, a URL parse). Profiled here on
// GetDeployment it held Connect JSON to ~0.45× a bare node:http + pg server.
//
// It runs the same wrapped implementation (call-wrapper.ts: auth, validation,
// request id, log line, error translation), reads the body through the same
// guard (request-guard.ts: size and depth limits, the same refusals), parses and
// serializes with connect-node's own serializers, and writes the response
// connect-node would: status, headers (responseHeader, "trailer-"-prefixed
// trailers, content-length, compression as negotiated), body, and errors as
// Connect error JSON with their details. Whatever it does not take (GET,
// streaming, gRPC, gRPC-Web, HTTP/2, compressed requests, a bad timeout
// header) is left to connect-node: `serve` returns false.
// It leans on connect's "private" protocol exports (as protocol-error.ts
// does): on an upgrade of @connectrpc/connect, test/api/connect-unary-fast
// compares its answers with connect-node's again.
import { create, toJsonString, type DescMessage, type DescMethod, type DescService, type MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import {
  compressionNegotiate,
  createMethodSerializationLookup,
  getJsonOptions,
  mergeNonProtocolHeaders,
  validateReadWriteMaxBytes,
} from "@connectrpc/connect/protocol";
import { codeToHttpStatus, contentTypeUnaryJson, contentTypeUnaryProto, errorToJsonBytes, parseTimeout } from "@connectrpc/connect/protocol-connect";
import { compressionBrotli, compressionGzip } from "@connectrpc/connect-node";
import type { Logger } from "../log.js";
import { refuseRequest, type ConnectAdapterOptions } from "./connect-adapter.js";
import { headerValue } from "./cors.js";
import type { NodeRequest, NodeResponse } from "./node-http.js";
import { readPlainUnary } from "./request-guard.js";
import { nodeRequestHeaders } from "./node-request-headers.js";
import { clientClosed, responseCompleted } from "./universal-request.js";
import { ActiveCalls, FastCallContext } from "./fast-call-context.js";

export { FastCallContext } from "./fast-call-context.js";

type UnaryFn = (req: unknown, ctx: HandlerContext) => unknown;

export interface UnaryFastPathOptions extends Pick<ConnectAdapterOptions, "rejected" | "limits" | "contextValues"> {
  /** Wrapped implementations (wrapServiceImpl), the ones connect-node's router serves. */
  services: readonly { service: DescService; impl: object }[];
  readMaxBytes: number;
  maxTimeoutMs?: number;
  /** Aborts every call's signal (the server's grace period is over). */
  shutdownSignal: AbortSignal;
  logger: Logger;
}

interface Route {
  method: DescMethod;
  impl: UnaryFn;
  serialization: ReturnType<typeof createMethodSerializationLookup>;
}

/** connect-node's unary content types: JSON (optionally charset utf-8) or protobuf. */
const unaryContentType = /^application\/(?:(json)(?:; ?charset=utf-?8)?|proto)$/i;
const acceptCompression = [compressionGzip, compressionBrotli];

const jsonOptions = getJsonOptions(undefined);

/** connect-node's JSON serialization of a response message, as text (it encodes it to UTF-8 at once). */
function jsonText(desc: DescMessage, message: MessageShape<DescMessage>): string {
  try {
    return toJsonString(desc, message, jsonOptions);
  } catch (e) {
    throw ConnectError.from(e, Code.Internal);
  }
}

/** Response headers (trailers prefixed "trailer-") as Node takes them, as connect-node writes them. */
function nodeHeaders(header: Headers, trailer: Headers | undefined): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = Object.create(null) as Record<string, string | string[]>;
  const add = (key: string, value: string) => {
    const existing = out[key];
    if (existing === undefined) out[key] = value;
    else if (Array.isArray(existing)) existing.push(value);
    else out[key] = [existing, value];
  };
  header.forEach((value, key) => add(key, value));
  trailer?.forEach((value, key) => add(`trailer-${key}`, value));
  return out;
}

export interface UnaryFastPath {
  /** Serves the request and returns true, or returns false and leaves it untouched for connect-node. `path`: the URL's, without query. */
  serve(req: NodeRequest, res: NodeResponse, path: string): boolean;
}

export function createUnaryFastPath(opts: UnaryFastPathOptions): UnaryFastPath {
  const { limits, logger } = opts;
  const maxTimeoutMs = opts.maxTimeoutMs ?? Number.MAX_SAFE_INTEGER;
  const { readMaxBytes, writeMaxBytes, compressMinBytes } = validateReadWriteMaxBytes(opts.readMaxBytes, undefined, undefined);
  const routes = new Map<string, Route>();
  for (const { service, impl } of opts.services) {
    for (const method of service.methods) {
      if (method.methodKind !== "unary") continue;
      const fn = (impl as Record<string, UnaryFn | undefined>)[method.localName];
      if (typeof fn !== "function") continue;
      routes.set(`/${service.typeName}/${method.name}`, {
        method,
        impl: fn.bind(impl),
        serialization: createMethodSerializationLookup(method, undefined, undefined, { readMaxBytes, writeMaxBytes }),
      });
    }
  }
  // Calls in progress, for the end of the grace period (one listener, not one per call).
  const active = new ActiveCalls();
  opts.shutdownSignal.addEventListener("abort", () => active.abortAll(opts.shutdownSignal.reason), { once: true });

  const run = async (req: NodeRequest, res: NodeResponse, route: Route, ctx: FastCallContext, binary: boolean) => {
    let status = 200;
    // JSON stays a string: Node writes it behind the header block in one piece, as the bare server does.
    let body: Uint8Array | string;
    try {
      let bytes: Uint8Array;
      try {
        bytes = await readPlainUnary(req, route.method, !binary, limits);
      } catch (e) {
        throw await refuseRequest(opts, req, res, route.method, "connect", e);
      }
      const input = route.serialization.getI(binary).parse(bytes);
      const output = create(route.method.output as DescMessage, (await route.impl(input, ctx)) as never);
      body = binary ? route.serialization.getO(true).serialize(output) : jsonText(route.method.output, output);
    } catch (e) {
      ctx.abort(e);
      const error = e instanceof ConnectError ? e : new ConnectError("internal error", Code.Internal, undefined, undefined, e);
      status = codeToHttpStatus(error.code);
      ctx.responseHeader.set("content-type", contentTypeUnaryJson);
      // Errors parsed from the wire relay their payload, not their metadata.
      if (!error.isWireError) mergeNonProtocolHeaders(ctx.responseHeader, error.metadata);
      body = errorToJsonBytes(error, {});
    } finally {
      ctx.abort(responseCompleted);
      active.delete(ctx);
    }
    const accept = headerValue(req.headers["accept-encoding"]);
    // No accept-encoding, no compression (what compressionNegotiate says too, for an uncompressed request).
    const compression = accept === undefined ? null : compressionNegotiate(acceptCompression, null, accept, "accept-encoding").response;
    let length = typeof body === "string" ? Buffer.byteLength(body) : body.byteLength;
    if (compression !== null && length >= compressMinBytes) {
      body = await compression.compress(typeof body === "string" ? Buffer.from(body) : body);
      length = body.byteLength;
      ctx.responseHeader.set("content-encoding", compression.name);
    }
    const headers = nodeHeaders(ctx.responseHeader, ctx.trailerIfAny);
    headers["content-length"] = String(length);
    res.writeHead(status, headers);
    res.end(body);
  };

  return {
    serve(req, res, path) {
      if (req.method !== "POST" || req.httpVersionMajor !== 1) return false;
      const route = routes.get(path);
      if (route === undefined) return false;
      const h = req.headers;
      const type = unaryContentType.exec(h["content-type"] ?? "");
      if (type === null || h.host === undefined) return false;
      const encoding = h["content-encoding"];
      if (encoding !== undefined && encoding !== "identity") return false;
      const timeout = parseTimeout(headerValue(h["connect-timeout-ms"]) ?? null, maxTimeoutMs);
      if (timeout.error !== undefined) return false;
      const binary = type[1] === undefined;
      const ctx = new FastCallContext(
        route.method,
        nodeRequestHeaders(h),
        opts.contextValues(req),
        binary ? contentTypeUnaryProto : contentTypeUnaryJson,
        timeout.timeoutMs,
        req,
      );
      active.add(ctx);
      // The response's close, not the request's: a request closes once its body is read.
      res.once("close", () => ctx.abort(res.writableFinished ? responseCompleted : clientClosed));
      run(req, res, route, ctx, binary).catch((err: unknown) => {
        logger.warn("connect: request failed", { method: route.method.name, err });
      });
      return true;
    },
  };
}
