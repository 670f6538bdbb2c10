// HTTP/1.1 probes of the Connect/gRPC-Web port: deep and large JSON (POST,
// GET, gRPC-Web and Connect streaming, optionally gzip-compressed), huge
// headers, and raw bodies of any content type. Each uses a fresh connection.
import * as http from "node:http";
import { gzipSync } from "node:zlib";
import { httpBase } from "./address.js";
import { grpcFrame } from "./http2.js";

export interface HttpOutcome {
  /** 0 when the server closed the connection without answering. */
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** A Connect JSON error body, or the gRPC-Web status. */
  code?: string;
  message?: string;
  requestId?: string;
  error?: string;
  elapsedMs: number;
}

export interface HttpRequestSpec {
  method?: string;
  path: string;
  headers?: Record<string, string>;
  body?: Buffer | string;
  timeoutMs?: number;
}

const grpcCodeNames = [
  "ok",
  "canceled",
  "unknown",
  "invalid_argument",
  "deadline_exceeded",
  "not_found",
  "already_exists",
  "permission_denied",
  "resource_exhausted",
  "failed_precondition",
  "aborted",
  "out_of_range",
  "unimplemented",
  "internal",
  "unavailable",
  "data_loss",
  "unauthenticated",
];

/** The error a Connect JSON body, Connect end-of-stream or gRPC-Web response carries. */
function errorOf(headers: http.IncomingHttpHeaders, body: Buffer): { code?: string; message?: string } {
  const grpcStatus = headers["grpc-status"];
  if (typeof grpcStatus === "string") {
    const message = headers["grpc-message"];
    return { code: grpcCodeNames[Number(grpcStatus)] ?? grpcStatus, message: typeof message === "string" ? decodeURIComponent(message) : "" };
  }
  const ct = String(headers["content-type"] ?? "");
  try {
    if (ct.startsWith("application/json")) {
      const j = JSON.parse(body.toString("utf8")) as { code?: string; message?: string };
      return { code: j.code, message: j.message };
    }
    // Enveloped: the last envelope is the end of stream (Connect) or the trailers (gRPC-Web).
    let pos = 0;
    let last: { flags: number; data: Buffer } | undefined;
    while (body.length - pos >= 5) {
      const len = body.readUInt32BE(pos + 1);
      last = { flags: body[pos] as number, data: body.subarray(pos + 5, pos + 5 + len) };
      pos += 5 + len;
    }
    if (last === undefined) return {};
    if (ct.startsWith("application/connect+")) {
      const j = JSON.parse(last.data.toString("utf8")) as { error?: { code?: string; message?: string } };
      return { code: j.error?.code ?? "ok", message: j.error?.message };
    }
    const trailers = Object.fromEntries(
      last.data
        .toString("latin1")
        .split("\r\n")
        .filter(Boolean)
        .map((l) => {
          const i = l.indexOf(":");
          return [l.slice(0, i).trim().toLowerCase(), l.slice(i + 1).trim()];
        }),
    ) as Record<string, string>;
    const code = trailers["grpc-status"];
    return code === undefined ? {} : { code: grpcCodeNames[Number(code)] ?? code, message: decodeURIComponent(trailers["grpc-message"] ?? "") };
  } catch {
    return {};
  }
}

/** One request on a fresh HTTP/1.1 connection. */
export function httpRequest(target: string, spec: HttpRequestSpec): Promise<HttpOutcome> {
  const started = performance.now();
  return new Promise((resolve) => {
    const req = http.request(`${httpBase(target)}${spec.path}`, {
      method: spec.method ?? (spec.body === undefined ? "GET" : "POST"),
      headers: spec.headers,
      agent: false,
      // The server's header limits are probed, not the client's.
      maxHeaderSize: 1024 * 1024,
    });
    const timer = setTimeout(() => req.destroy(new Error("timed out")), spec.timeoutMs ?? 30_000);
    const done = (o: Omit<HttpOutcome, "elapsedMs">) => {
      clearTimeout(timer);
      resolve({ ...o, elapsedMs: performance.now() - started });
    };
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (d: Buffer) => chunks.push(d));
      res.on("error", () => {});
      res.on("close", () => {
        const body = Buffer.concat(chunks);
        const rid = res.headers["x-request-id"];
        done({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body,
          ...errorOf(res.headers, body),
          ...(typeof rid === "string" ? { requestId: rid } : {}),
        });
      });
    });
    req.on("error", (e) => done({ status: 0, headers: {}, body: Buffer.alloc(0), error: e.message }));
    if (spec.body !== undefined) req.end(spec.body);
    else req.end();
  });
}

/** `{"name": [[[…]]]}` nested `depth` levels below the top object (depth + 1 in all). */
export function deepJson(depth: number): string {
  return `{"name":${"[".repeat(depth)}${"]".repeat(depth)}}`;
}

/** `{"name":"xxx…"}` of about `bytes` bytes. */
export function largeJson(bytes: number): string {
  return `{"name":"${"x".repeat(Math.max(0, bytes - 11))}"}`;
}

/** How a JSON message reaches the server. */
export type JsonVia = "connect" | "connect-get" | "grpc-web" | "connect-stream";

/**
 * Send `json` as the request message of `method` ("/pkg.Service/Method";
 * use a server-streaming method for "connect-stream"), optionally gzipped.
 */
export function sendJson(
  target: string,
  method: string,
  json: string,
  opts: { via?: JsonVia; gzip?: boolean; headers?: Record<string, string>; timeoutMs?: number } = {},
): Promise<HttpOutcome> {
  const via = opts.via ?? "connect";
  const raw = Buffer.from(json, "utf8");
  const payload = opts.gzip === true ? gzipSync(raw) : raw;
  const timeout = opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {};
  if (via === "connect-get") {
    const query =
      opts.gzip === true
        ? `encoding=json&base64=1&compression=gzip&message=${payload.toString("base64url")}`
        : `encoding=json&message=${encodeURIComponent(json)}`;
    return httpRequest(target, { method: "GET", path: `${method}?connect=v1&${query}`, headers: { ...opts.headers }, ...timeout });
  }
  if (via === "connect") {
    return httpRequest(target, {
      path: method,
      headers: { "content-type": "application/json", ...(opts.gzip === true ? { "content-encoding": "gzip" } : {}), ...opts.headers },
      body: payload,
      ...timeout,
    });
  }
  const envelope = grpcFrame(payload, { flags: opts.gzip === true ? 1 : 0 });
  const headers: Record<string, string> =
    via === "grpc-web"
      ? { "content-type": "application/grpc-web+json", "x-grpc-web": "1", ...(opts.gzip === true ? { "grpc-encoding": "gzip" } : {}) }
      : { "content-type": "application/connect+json", ...(opts.gzip === true ? { "connect-content-encoding": "gzip" } : {}) };
  return httpRequest(target, { path: method, headers: { ...headers, ...opts.headers }, body: envelope, ...timeout });
}

/** A request with about `bytes` of extra headers (fields of 4 KiB). */
export function hugeHeadersHttp1(target: string, path: string, bytes: number, headers: Record<string, string> = {}): Promise<HttpOutcome> {
  const all: Record<string, string> = { ...headers };
  for (let i = 0; i * 4096 < bytes; i++) all[`x-filler-${i}`] = "a".repeat(Math.min(4096, bytes - i * 4096));
  return httpRequest(target, { method: "GET", path, headers: all });
}
