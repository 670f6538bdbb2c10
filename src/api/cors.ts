// CORS for browsers calling the Connect/gRPC-Web port: preflights answered
// here, and the headers scripts need (x-request-id, grpc-status, …) exposed.
import { cors as connectCors } from "@connectrpc/connect";
import { requestIdHeader } from "./call-wrapper.js";
import type { NodeRequest, NodeResponse } from "./node-http.js";

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

export function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? (v.length === 1 ? v[0] : undefined) : v;
}

export function corsHandler(opts: CorsOptions): (req: NodeRequest, res: NodeResponse) => boolean {
  const origins = opts.allowedOrigins ?? "*";
  const allowAny = origins === "*";
  const allowed = typeof origins === "function" ? origins : origins === "*" ? () => true : (o: string) => (origins as readonly string[]).includes(o);
  const allowHeaders = [...new Set([...connectCors.allowedHeaders, "authorization", requestIdHeader, ...(opts.allowedHeaders ?? [])])].join(", ");
  const exposeHeaders = [
    ...new Set([...connectCors.exposedHeaders, requestIdHeader, "grpc-status", "grpc-message", "grpc-status-details-bin", ...(opts.exposedHeaders ?? [])]),
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
