// HTTP/2 probes (either port: the gRPC port, or the HTTP port over h2c):
// hand-made gRPC frames, huge header blocks, and floods of streams reset at
// once. Each opens its own session and reports what the server did.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as http2 from "node:http2";
import { fileURLToPath } from "node:url";
import { httpBase, sleep } from "./address.js";

export interface H2Outcome {
  status?: number;
  headers: Record<string, string>;
  trailers: Record<string, string>;
  body: Buffer;
  /** The gRPC status (trailers, or a trailers-only response). */
  grpcStatus?: number;
  grpcMessage?: string;
  /** The stream ended with this RST_STREAM code (0 when it closed normally). */
  rstCode?: number;
  /** The session got a GOAWAY. */
  goaway?: { code: number; debug: string };
  error?: string;
  /** No complete answer within timeoutMs: the probe cancelled the stream. */
  timedOut: boolean;
  /**
   * The server sent its final answer (trailers) but left the stream open for
   * the rest of a request the probe never ended; the probe then reset it.
   */
  leftOpen: boolean;
  elapsedMs: number;
}

export interface H2RequestSpec {
  path: string;
  method?: string;
  headers?: Record<string, string>;
  body?: Buffer;
  /** End the request after the body (default true). */
  end?: boolean;
  /** Send only once the server's SETTINGS are acknowledged (its limits then apply). */
  afterSettings?: boolean;
  timeoutMs?: number;
}

function stringHeaders(h: http2.IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined) out[k] = Array.isArray(v) ? v.join(", ") : String(v);
  return out;
}

function connect(target: string): { session: http2.ClientHttp2Session; goaway: () => H2Outcome["goaway"] } {
  // Large header blocks must leave the client: the server's limits are what is probed.
  const session = http2.connect(httpBase(target), { maxSendHeaderBlockLength: 16 * 1024 * 1024 });
  let goaway: H2Outcome["goaway"];
  session.on("goaway", (code, _last, data) => (goaway ??= { code, debug: data?.toString("utf8") ?? "" }));
  session.on("error", () => {});
  return { session, goaway: () => goaway };
}

/** One request on a fresh HTTP/2 connection. */
export async function h2Request(target: string, spec: H2RequestSpec): Promise<H2Outcome> {
  const { session, goaway } = connect(target);
  const started = performance.now();
  try {
    if (spec.afterSettings === true) {
      await new Promise<void>((resolve) => {
        session.once("remoteSettings", () => resolve());
        session.once("close", () => resolve());
      });
      await sleep(20); // our SETTINGS ack goes out
    }
    return await new Promise<H2Outcome>((resolve) => {
      const out: H2Outcome = { headers: {}, trailers: {}, body: Buffer.alloc(0), timedOut: false, leftOpen: false, elapsedMs: 0 };
      const chunks: Buffer[] = [];
      let req: http2.ClientHttp2Stream;
      try {
        req = session.request({ ":method": spec.method ?? "POST", ":path": spec.path, ...spec.headers }, { endStream: false });
      } catch (e) {
        resolve({ ...out, error: String(e), goaway: goaway(), elapsedMs: performance.now() - started });
        return;
      }
      const timer = setTimeout(() => {
        out.timedOut = true;
        req.close(http2.constants.NGHTTP2_CANCEL);
      }, spec.timeoutMs ?? 10_000);
      // A final answer on a request still being sent: give the server a moment to reset the stream.
      const answered = () => {
        if (spec.end !== false) return;
        setTimeout(() => {
          if (req.closed) return;
          out.leftOpen = true;
          req.close(http2.constants.NGHTTP2_CANCEL);
        }, 500).unref();
      };
      req.on("response", (h, flags) => {
        out.status = Number(h[":status"]);
        out.headers = stringHeaders(h);
        if ((flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0) answered();
      });
      req.on("trailers", (t) => {
        out.trailers = stringHeaders(t);
        answered();
      });
      req.on("data", (d: Buffer) => chunks.push(d));
      req.on("error", (e) => (out.error ??= e.message));
      req.on("close", () => {
        clearTimeout(timer);
        out.body = Buffer.concat(chunks);
        out.rstCode = req.rstCode;
        const status = out.trailers["grpc-status"] ?? out.headers["grpc-status"];
        if (status !== undefined) out.grpcStatus = Number(status);
        const message = out.trailers["grpc-message"] ?? out.headers["grpc-message"];
        if (message !== undefined) out.grpcMessage = decodeURIComponent(message);
        out.goaway = goaway();
        out.elapsedMs = performance.now() - started;
        resolve(out);
      });
      if (spec.body !== undefined) req.write(spec.body);
      if (spec.end !== false) req.end();
    });
  } finally {
    session.destroy();
  }
}

/** A gRPC length-prefixed frame; `declaredLength` may lie about the payload. */
export function grpcFrame(payload: Uint8Array, opts: { declaredLength?: number; flags?: number } = {}): Buffer {
  const prefix = Buffer.alloc(5);
  prefix[0] = opts.flags ?? 0;
  prefix.writeUInt32BE(opts.declaredLength ?? payload.byteLength, 1);
  return Buffer.concat([prefix, payload]);
}

export const grpcRequestHeaders = { "content-type": "application/grpc", te: "trailers" } as const;

/** Bytes that are not a protobuf message: a length-delimited field 1 promising 4 GiB. */
export const malformedProto = Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01, 0x02]);

/** A frame that promises 1000 bytes and carries 10, then the stream ends. */
export function truncatedGrpcFrame(target: string, path: string, contentType = "application/grpc"): Promise<H2Outcome> {
  return h2Request(target, {
    path,
    headers: { ...grpcRequestHeaders, "content-type": contentType },
    body: grpcFrame(randomBytes(10), { declaredLength: 1000 }),
  });
}

/** A frame whose prefix declares declaredBytes (default 2 GiB − 1); 1 KiB follows and the stream stays open. */
export function oversizedGrpcFrame(
  target: string,
  path: string,
  opts: { declaredBytes?: number; contentType?: string; timeoutMs?: number } = {},
): Promise<H2Outcome> {
  return h2Request(target, {
    path,
    headers: { ...grpcRequestHeaders, "content-type": opts.contentType ?? "application/grpc" },
    body: grpcFrame(randomBytes(1024), { declaredLength: opts.declaredBytes ?? 0x7fffffff }),
    end: false,
    timeoutMs: opts.timeoutMs ?? 10_000,
  });
}

/** A well-framed message that is not protobuf. */
export function malformedGrpcMessage(target: string, path: string, contentType = "application/grpc"): Promise<H2Outcome> {
  return h2Request(target, { path, headers: { ...grpcRequestHeaders, "content-type": contentType }, body: grpcFrame(malformedProto) });
}

/** A request whose header block is about `bytes` long (fields of 4 KiB). */
export function hugeHeadersH2(
  target: string,
  path: string,
  opts: { bytes: number; headers?: Record<string, string>; body?: Buffer; afterSettings?: boolean },
): Promise<H2Outcome> {
  const headers: Record<string, string> = { ...grpcRequestHeaders, ...opts.headers };
  for (let i = 0; i * 4096 < opts.bytes; i++) headers[`x-filler-${i}`] = "a".repeat(Math.min(4096, opts.bytes - i * 4096));
  return h2Request(target, {
    path,
    headers,
    ...(opts.body !== undefined ? { body: opts.body } : {}),
    ...(opts.afterSettings !== undefined ? { afterSettings: opts.afterSettings } : {}),
  });
}

export interface FloodOutcome {
  requested: number;
  /** Streams the server answered (response headers) before the reset. */
  answered: number;
  /** Streams the server refused (REFUSED_STREAM) or reset itself. */
  refusedByServer: number;
  /** The server closed the connection (e.g. past its reset budget). */
  closedByServer: boolean;
  goaway?: { code: number; debug: string };
  elapsedMs: number;
}

const floodChild = fileURLToPath(new URL("./flood-child.mjs", import.meta.url));

/**
 * Open `streams` requests on one connection as fast as possible, each with
 * its whole body, then reset them all at once (CANCEL), as a client that gave
 * up on everything would; resolves when every stream is closed. Runs in its
 * own process (flood-child.mjs): the flood's client side is costly too.
 */
export async function streamFlood(
  target: string,
  opts: {
    streams: number;
    path: string;
    headers?: Record<string, string>;
    body?: Buffer;
    resetAfterMs?: number;
    /** After the server has seen every reset, how long to wait for it to close the connection (default 3000). */
    settleMs?: number;
    timeoutMs?: number;
  },
): Promise<FloodOutcome> {
  const args = {
    url: httpBase(target),
    streams: opts.streams,
    path: opts.path,
    headers: { ...grpcRequestHeaders, ...opts.headers },
    bodyHex: (opts.body ?? Buffer.alloc(0)).toString("hex"),
    resetAfterMs: opts.resetAfterMs ?? 0,
    settleMs: opts.settleMs ?? 3000,
    timeoutMs: opts.timeoutMs ?? 30_000,
  };
  const child = spawn(process.execPath, [floodChild, JSON.stringify(args)], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
  if (code !== 0) throw new Error(`stream flood exited with ${code}: ${err}`);
  return JSON.parse(out) as FloodOutcome;
}
