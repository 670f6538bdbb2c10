// Pieces of the gateway's proxying: which headers pass, the buffered prefix
// of a request body (so a failed attempt can be retried), the body size limit.
import type http from "node:http";
import { Transform } from "node:stream";

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

export class BodyTooLargeError extends Error {
  override readonly name = "BodyTooLargeError";
}

export interface BufferedPrefix {
  chunks: Buffer[];
  size: number;
  /** The whole body is in `chunks`. */
  complete: boolean;
}

export function forwardedHeaders(headers: http.IncomingHttpHeaders): http.OutgoingHttpHeaders {
  const out: http.OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(headers)) {
    if (v !== undefined && !HOP_BY_HOP.has(k)) out[k] = v;
  }
  return out;
}

export function responseHeaders(headers: http.IncomingHttpHeaders): http.OutgoingHttpHeaders {
  const out: http.OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(headers)) {
    if (v !== undefined && (!HOP_BY_HOP.has(k) || k === "content-length")) out[k] = v;
  }
  return out;
}

/** Reads the body until it ends or exceeds `limit`; then leaves the stream paused for piping. */
export function readPrefix(req: http.IncomingMessage, limit: number): Promise<BufferedPrefix> {
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

export function byteLimit(already: number, limit: number): Transform {
  let size = already;
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      size += chunk.length;
      if (size > limit) done(new BodyTooLargeError(`request body is larger than ${limit} bytes`));
      else done(null, chunk);
    },
  });
}
