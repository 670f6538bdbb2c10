// Reads a request body before connect-node does and refuses what it must not
// parse: a message above the size limit (RESOURCE_EXHAUSTED; JSON has a lower
// limit than protobuf), JSON nested too deep (INVALID_ARGUMENT, found while
// the chunks arrive), a protobuf message that does not parse (INVALID_ARGUMENT:
// connect-node calls that "internal"). Compressed messages are decompressed
// here, bounded, so the checks see what the parser would see, and connect-node
// then receives them uncompressed. Every method of the API takes exactly one
// request message, so the whole body is read before it is handed on.
import type { DescMethod } from "@bufbuild/protobuf";
import { fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { compressionBrotli, compressionGzip } from "@connectrpc/connect-node";
import { JsonDepthScanner } from "./json-limits.js";
import type { NodeRequest } from "./node-http.js";
import { EnvelopeInspector } from "./envelope-inspector.js";
import { jsonTooDeep, malformedMessage, messageTooLarge } from "./request-rejections.js";

export interface RequestGuardLimits {
  /** Protobuf request messages above this: RESOURCE_EXHAUSTED. */
  maxMessageBytes: number;
  /** JSON request messages above this (after decompression): RESOURCE_EXHAUSTED. */
  maxJsonBytes: number;
  /** JSON nested deeper than this: INVALID_ARGUMENT. */
  maxJsonDepth: number;
}

export interface BodyFormat {
  protocol: "connect" | "grpc" | "grpc-web";
  json: boolean;
  /** Length-prefixed messages (gRPC, gRPC-Web, Connect streaming), not a bare body (Connect unary). */
  enveloped: boolean;
  /** The request header that names the compression of the body or of its messages. */
  encodingHeader: string;
  /** Envelopes with this flag are not messages (connect-node skips them). */
  endFlag: number;
}

// Supersets of connect-node's own content types: whatever it would parse,
// this guard has seen first.
const formats: readonly [RegExp, Omit<BodyFormat, "json">][] = [
  [/^application\/(json|proto)(?:; ?charset=utf-?8)?$/i, { protocol: "connect", enveloped: false, encodingHeader: "content-encoding", endFlag: 0 }],
  [
    /^application\/connect\+(json|proto)(?:; ?charset=utf-?8)?$/i,
    { protocol: "connect", enveloped: true, encodingHeader: "connect-content-encoding", endFlag: 0b10 },
  ],
  [/^application\/grpc(?:\+(json|proto))?(?:; ?charset=utf-?8)?$/i, { protocol: "grpc", enveloped: true, encodingHeader: "grpc-encoding", endFlag: 0 }],
  [
    /^application\/grpc-web(?:\+(json|proto))?(?:; ?charset=utf-?8)?$/i,
    { protocol: "grpc-web", enveloped: true, encodingHeader: "grpc-encoding", endFlag: 0x80 },
  ],
];

export function bodyFormatOf(contentType: string | null): BodyFormat | undefined {
  if (contentType === null) return undefined;
  for (const [re, format] of formats) {
    const m = re.exec(contentType);
    if (m) return { ...format, json: m[1]?.toLowerCase() === "json" };
  }
  return undefined;
}

type Compression = typeof compressionGzip;
const compressions = new Map<string, Compression>([
  ["gzip", compressionGzip],
  ["br", compressionBrotli],
]);

/**
 * The compression a request names: null for none, undefined for one this
 * server does not know (connect-node refuses it before reading anything).
 */
export function requestCompression(name: string | null): Compression | null | undefined {
  if (name === null || name === "" || name === "identity") return null;
  return compressions.get(name);
}

async function decompress(c: Compression, bytes: Uint8Array, limit: number, what: string): Promise<Uint8Array> {
  try {
    return await c.decompress(bytes, limit);
  } catch (e) {
    const err = ConnectError.from(e, Code.InvalidArgument);
    if (err.code === Code.ResourceExhausted) throw messageTooLarge(undefined, limit, `${what} (decompressed)`);
    throw err;
  }
}

/** Size, depth and parse checks of one whole (decompressed) message. */
export function checkMessage(method: DescMethod, bytes: Uint8Array, json: boolean, limits: RequestGuardLimits, depthScanned = false): void {
  if (json) {
    if (bytes.byteLength > limits.maxJsonBytes) throw messageTooLarge(bytes.byteLength, limits.maxJsonBytes, "JSON request message");
    if (!depthScanned && !new JsonDepthScanner(limits.maxJsonDepth).push(bytes)) throw jsonTooDeep(limits.maxJsonDepth);
    return;
  }
  if (bytes.byteLength > limits.maxMessageBytes) throw messageTooLarge(bytes.byteLength, limits.maxMessageBytes);
  try {
    // Parsed twice (here and by connect-node): a request message is small,
    // and only a parse says whether it is well-formed for its type.
    fromBinary(method.input, bytes);
  } catch (e) {
    throw malformedMessage(method, e);
  }
}

const canceled = () => new ConnectError("the client went away before sending the request", Code.Canceled);

/**
 * Read the whole body ('data' events, no async iteration), passing each
 * chunk to `inspect` first; an error it throws stops the reading.
 */
function readBody(req: NodeRequest, inspect: (chunk: Buffer) => void): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = () => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      req.off("close", onClose);
    };
    const onData = (chunk: Buffer) => {
      try {
        inspect(chunk);
      } catch (e) {
        done();
        req.pause();
        reject(e);
        return;
      }
      chunks.push(chunk);
      size += chunk.byteLength;
    };
    const onEnd = () => {
      done();
      resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size));
    };
    const onError = () => {
      done();
      reject(canceled());
    };
    // "close" before "end": the client reset the stream or dropped the connection.
    const onClose = onError;
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
    req.on("close", onClose);
  });
}

/** The size limit of a body's messages, and their name in the error past it. */
function sizeLimitOf(format: BodyFormat, limits: RequestGuardLimits): { limit: number; what: string } {
  return format.json ? { limit: limits.maxJsonBytes, what: "JSON request message" } : { limit: limits.maxMessageBytes, what: "request message" };
}

/** A Connect unary body: one message, possibly compressed as a whole. */
async function readUnary(
  req: NodeRequest,
  method: DescMethod,
  format: BodyFormat,
  compression: Compression | null,
  limits: RequestGuardLimits,
): Promise<Uint8Array> {
  const { limit, what } = sizeLimitOf(format, limits);
  const declared = Number(req.headers["content-length"] ?? NaN);
  if (declared > limit) throw messageTooLarge(declared, limit, what);
  const scanner = format.json && compression === null ? new JsonDepthScanner(limits.maxJsonDepth) : undefined;
  let size = 0;
  const body = await readBody(req, (chunk) => {
    size += chunk.byteLength;
    if (size > limit) throw messageTooLarge(undefined, limit, what);
    if (scanner !== undefined && !scanner.push(chunk)) throw jsonTooDeep(limits.maxJsonDepth);
  });
  const message = compression === null ? body : await decompress(compression, body, limit, what);
  checkMessage(method, message, format.json, limits, scanner !== undefined);
  return message;
}

const plainUnary = {
  json: bodyFormatOf("application/json") as BodyFormat,
  proto: bodyFormatOf("application/proto") as BodyFormat,
};

/**
 * An uncompressed Connect unary body, read and checked exactly as guardBody
 * would (connect-unary-fast.ts reads its bodies with it).
 */
export function readPlainUnary(req: NodeRequest, method: DescMethod, json: boolean, limits: RequestGuardLimits): Promise<Uint8Array> {
  return readUnary(req, method, json ? plainUnary.json : plainUnary.proto, null, limits);
}

/** gRPC, gRPC-Web or Connect streaming body: length-prefixed messages. */
async function readEnveloped(
  req: NodeRequest,
  method: DescMethod,
  format: BodyFormat,
  compression: Compression | null,
  limits: RequestGuardLimits,
): Promise<Uint8Array> {
  const { limit, what } = sizeLimitOf(format, limits);
  const inspector = new EnvelopeInspector(limit, what, format.json, limits.maxJsonDepth);
  const body = await readBody(req, (chunk) => inspector.push(chunk));
  // Rebuilt only when a message was decompressed here.
  let out: Uint8Array[] | undefined;
  let pos = 0;
  // An incomplete trailing envelope is passed on as it is: connect-node says what is wrong.
  while (body.byteLength - pos >= 5 && body.byteLength - pos - 5 >= body.readUInt32BE(pos + 1)) {
    let flags = body[pos] as number;
    const end = pos + 5 + body.readUInt32BE(pos + 1);
    let payload: Uint8Array = body.subarray(pos + 5, end);
    const compressed = (flags & 1) === 1;
    if (compressed && compression !== null) {
      payload = await decompress(compression, payload, limit, what);
      flags &= ~1;
      out ??= [body.subarray(0, pos)];
    }
    if (format.endFlag === 0 || (flags & format.endFlag) !== format.endFlag) {
      if ((flags & 1) === 0) checkMessage(method, payload, format.json, limits, !compressed);
    }
    if (out !== undefined) {
      const prefix = Buffer.alloc(5);
      prefix[0] = flags;
      prefix.writeUInt32BE(payload.byteLength, 1);
      out.push(prefix, payload);
    }
    pos = end;
  }
  if (out === undefined) return body;
  out.push(body.subarray(pos));
  return Buffer.concat(out);
}

export interface GuardedBody {
  /** Read and check the body; rejects with the ConnectError the client gets. */
  read(): Promise<Uint8Array>;
  /** Request headers connect-node must no longer see (the body is handed on decompressed). */
  dropHeaders: readonly string[];
  protocol: BodyFormat["protocol"];
}

/**
 * How to read this request's body, or undefined to leave it to connect-node
 * (a content type or compression it refuses without reading the body).
 */
export function guardBody(req: NodeRequest, header: Headers, method: DescMethod, limits: RequestGuardLimits): GuardedBody | undefined {
  const format = bodyFormatOf(header.get("content-type"));
  if (format === undefined) return undefined;
  const compression = requestCompression(header.get(format.encodingHeader));
  if (compression === undefined) return undefined;
  if (!format.enveloped) {
    return {
      read: () => readUnary(req, method, format, compression, limits),
      dropHeaders: compression === null ? [] : [format.encodingHeader, "content-length"],
      protocol: format.protocol,
    };
  }
  return { read: () => readEnveloped(req, method, format, compression, limits), dropHeaders: [], protocol: format.protocol };
}

/**
 * Checks the message of a Connect GET request (`?encoding=…&message=…`,
 * optionally `base64=1` and `compression=…`). Resolves with the error to
 * answer, or undefined when connect-node may go on.
 */
export async function checkGetMessage(url: string, method: DescMethod, limits: RequestGuardLimits): Promise<ConnectError | undefined> {
  const query = new URL(url, "http://x").searchParams;
  const encoding = query.get("encoding");
  const message = query.get("message");
  if (message === null || (encoding !== "json" && encoding !== "proto")) return undefined;
  const compression = requestCompression(query.get("compression"));
  if (compression === undefined) return undefined;
  const json = encoding === "json";
  const limit = json ? limits.maxJsonBytes : limits.maxMessageBytes;
  try {
    let bytes: Uint8Array = query.get("base64") === "1" ? Buffer.from(message, "base64") : Buffer.from(message, "utf8");
    if (compression !== null) bytes = await decompress(compression, bytes, limit, "request message");
    checkMessage(method, bytes, json, limits);
    return undefined;
  } catch (e) {
    return ConnectError.from(e, Code.InvalidArgument);
  }
}
