// Content-addressed cache of model weights on this host:
//   <dataDir>/weights/sha256/<hex>/model.onnx
// Downloads stream through a sha256 hash into a temp file that is renamed into
// place only once complete and verified, so a cache entry is never partial.
// Temp files a killed process left are removed at start and before a download.
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ReadableStream as WebReadableStream } from "node:stream/web";
import { fileURLToPath } from "node:url";
import type { Logger } from "../../log.js";
import { RuntimeError, type DownloadProgress, type PreparedWeights } from "../driver.js";
import { removeLeftoverTempFiles, tempFileName } from "./weights-temp.js";

export interface WeightsCacheOptions {
  dataDir: string;
  logger: Logger;
  /** Minimum time between progress reports during a download; the first and last are always sent. */
  progressIntervalMs?: number;
}

export interface WeightsSource {
  uri: string;
  /** Lowercase hex, or "" when not given. */
  sha256: string;
  /** Sent as `Authorization: Bearer` on http(s) only, and only to the uri's own origin. */
  token?: string | undefined;
}

export interface WeightsCache {
  readonly root: string;
  prepare(source: WeightsSource, onProgress: (p: DownloadProgress) => void, signal?: AbortSignal): Promise<PreparedWeights>;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;
const MODEL_FILE = "model.onnx";

export function createWeightsCache(options: WeightsCacheOptions): WeightsCache {
  const root = join(options.dataDir, "weights");
  const progressIntervalMs = options.progressIntervalMs ?? 250;
  const entryPath = (hex: string) => join(root, "sha256", hex, MODEL_FILE);
  const tmpDir = join(root, "tmp");
  const removeLeftovers = async () => {
    const removed = await removeLeftoverTempFiles(tmpDir);
    if (removed.length > 0) options.logger.info("removed temp files of interrupted downloads", { files: removed });
  };
  const startup = removeLeftovers().catch((err: unknown) => options.logger.warn("cannot clean the weights cache's temp files", { err }));

  async function prepare(source: WeightsSource, onProgress: (p: DownloadProgress) => void, signal?: AbortSignal): Promise<PreparedWeights> {
    const shown = URL.canParse(source.uri) ? redact(new URL(source.uri)) : source.uri;
    const expected = source.sha256.toLowerCase();
    if (expected !== "" && !SHA256_HEX.test(expected)) {
      throw new RuntimeError("INVALID_SPEC", `model sha256 must be 64 hex digits, got "${source.sha256}"`);
    }
    const opener = openerFor(source.uri, source.token);

    if (expected !== "") {
      const cached = await stat(entryPath(expected)).catch(() => undefined);
      if (cached?.isFile()) {
        onProgress({ bytesDone: cached.size, bytesTotal: cached.size });
        return { path: entryPath(expected), sha256: expected, bytes: cached.size };
      }
    }

    throwIfAborted(signal);
    await startup;
    await removeLeftovers().catch(() => {});
    await mkdir(tmpDir, { recursive: true });
    const tmp = join(tmpDir, tempFileName());
    try {
      const { stream, bytesTotal } = await opener(signal);
      const hash = createHash("sha256");
      let bytesDone = 0;
      let lastReport = 0;
      onProgress({ bytesDone: 0, bytesTotal });
      const meter = new Transform({
        transform(chunk: Buffer, _enc, done) {
          hash.update(chunk);
          bytesDone += chunk.length;
          const now = Date.now();
          if (now - lastReport >= progressIntervalMs) {
            lastReport = now;
            onProgress({ bytesDone, bytesTotal });
          }
          done(null, chunk);
        },
      });
      await pipeline(stream, meter, createWriteStream(tmp), ...(signal ? [{ signal }] : []));
      if (bytesTotal > 0 && bytesDone !== bytesTotal) {
        throw new RuntimeError("WEIGHTS_DOWNLOAD_FAILED", `download of ${shown} ended after ${bytesDone} of ${bytesTotal} bytes`, { retryable: true });
      }
      const actual = hash.digest("hex");
      if (expected !== "" && actual !== expected) {
        throw new RuntimeError(
          "WEIGHTS_CHECKSUM_MISMATCH",
          `weights at ${shown} have sha256 ${actual}, expected ${expected}; fix the model's sha256 or its uri`,
        );
      }
      const path = entryPath(actual);
      await mkdir(join(root, "sha256", actual), { recursive: true });
      await rename(tmp, path);
      onProgress({ bytesDone, bytesTotal: bytesTotal || bytesDone });
      options.logger.info("weights cached", { uri: shown, sha256: actual, bytes: bytesDone });
      return { path, sha256: actual, bytes: bytesDone };
    } catch (err) {
      await rm(tmp, { force: true });
      throw toRuntimeError(err, shown, signal);
    }
  }

  return { root, prepare };
}

type Opener = (signal?: AbortSignal) => Promise<{ stream: Readable; bytesTotal: number }>;

function openerFor(uri: string, token: string | undefined): Opener {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    throw new RuntimeError("INVALID_SPEC", `model uri "${uri}" is not a URL; use file:///absolute/path or http(s)://…`);
  }
  switch (url.protocol) {
    case "file:": {
      let path: string;
      try {
        path = fileURLToPath(url);
      } catch (err) {
        throw new RuntimeError("INVALID_SPEC", `model uri "${uri}" is not a local absolute path (file:///abs/path): ${(err as Error).message}`);
      }
      return () => openFile(path, url.href);
    }
    case "http:":
    case "https:":
      return (signal) => openHttp(url, signal, token);
    default:
      throw new RuntimeError("INVALID_SPEC", `model uri scheme "${url.protocol}" is not supported by the local runtime; use file:// or http(s)://`);
  }
}

async function openFile(file: string, uri: string): Promise<{ stream: Readable; bytesTotal: number }> {
  let path = file;
  let info = await stat(path).catch(() => undefined);
  if (info?.isDirectory()) {
    path = join(path, MODEL_FILE);
    info = await stat(path).catch(() => undefined);
  }
  if (!info?.isFile()) {
    throw new RuntimeError(
      "WEIGHTS_NOT_FOUND",
      `no model file at ${path} (from ${uri}); check the uri, and that the file exists on the runtime host and is readable`,
    );
  }
  return { stream: createReadStream(path), bytesTotal: info.size };
}

const MAX_REDIRECTS = 10;

/**
 * fetch, following redirects; with a token, by hand: the token goes to the
 * uri's own origin only, never to wherever a redirect points elsewhere
 * (a presigned storage URL, say, or a host that should not see it).
 */
async function fetchWeights(url: URL, signal: AbortSignal | undefined, token: string | undefined): Promise<Response> {
  // identity: content-length then counts the bytes we store, and the hash covers the file itself.
  const base = { "accept-encoding": "identity" };
  if (!token) return fetch(url, { signal: signal ?? null, redirect: "follow", headers: base });
  let at = url;
  for (let hops = 0; ; hops++) {
    const headers = at.origin === url.origin ? { ...base, authorization: `Bearer ${token}` } : base;
    const res = await fetch(at, { signal: signal ?? null, redirect: "manual", headers });
    const location = res.headers.get("location");
    if (res.status < 300 || res.status >= 400 || location === null) return res;
    await res.body?.cancel();
    if (hops >= MAX_REDIRECTS) throw new RuntimeError("WEIGHTS_DOWNLOAD_FAILED", `${redact(url)} redirected more than ${MAX_REDIRECTS} times`);
    const next = new URL(location, at);
    if (next.protocol !== "http:" && next.protocol !== "https:") {
      throw new RuntimeError("WEIGHTS_DOWNLOAD_FAILED", `${redact(url)} redirected to a ${next.protocol} location; only http(s) is followed`);
    }
    at = next;
  }
}

async function openHttp(url: URL, signal?: AbortSignal, token?: string): Promise<{ stream: Readable; bytesTotal: number }> {
  const shown = redact(url);
  let res: Response;
  try {
    res = await fetchWeights(url, signal, token);
  } catch (err) {
    if (err instanceof RuntimeError) throw err;
    if (signal?.aborted) throw err;
    throw new RuntimeError("WEIGHTS_DOWNLOAD_FAILED", `cannot reach ${shown}: ${describe(err)}`, {
      retryable: true,
      cause: err,
    });
  }
  if (!res.ok || !res.body) {
    await res.body?.cancel();
    if (res.status === 404 || res.status === 410) {
      throw new RuntimeError("WEIGHTS_NOT_FOUND", `${shown} answered ${res.status}: no weights there; check the uri`);
    }
    if (res.status === 401 || res.status === 403) {
      throw new RuntimeError(
        "WEIGHTS_NOT_FOUND",
        token
          ? `${shown} answered ${res.status}: access denied with the model's token; give the model a valid token (model.token)`
          : `${shown} answered ${res.status}: access denied; give the model a token (model.token), or make the weights readable without credentials`,
      );
    }
    const retryable = res.status >= 500 || res.status === 408 || res.status === 429;
    throw new RuntimeError("WEIGHTS_DOWNLOAD_FAILED", `${shown} answered ${res.status} ${res.statusText}`, {
      retryable,
    });
  }
  const length = Number(res.headers.get("content-length") ?? NaN);
  const encoded = (res.headers.get("content-encoding") ?? "identity") !== "identity";
  return {
    stream: Readable.fromWeb(res.body as WebReadableStream<Uint8Array>),
    bytesTotal: Number.isSafeInteger(length) && length >= 0 && !encoded ? length : 0,
  };
}

/** Without credentials or query: presigned URLs carry secrets there, and messages end up in the database. */
function redact(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}`;
}

function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw toRuntimeError(signal.reason, "", signal);
}

function toRuntimeError(err: unknown, uri: string, signal?: AbortSignal): RuntimeError {
  if (err instanceof RuntimeError) return err;
  if (signal?.aborted) {
    // Retryable: an abort means this worker stopped (shutdown or cancel), not that the weights are bad.
    return new RuntimeError("INTERNAL", "weights download aborted", { retryable: true, cause: err });
  }
  const code = (err as NodeJS.ErrnoException).code;
  if (code === "ENOSPC") {
    return new RuntimeError("INSUFFICIENT_RESOURCES", `no space left to cache ${uri}`, { retryable: true, cause: err });
  }
  return new RuntimeError("WEIGHTS_DOWNLOAD_FAILED", `reading ${uri} failed: ${describe(err)}`, {
    retryable: true,
    cause: err,
  });
}

/** What the usual network error codes mean, for a message a user can act on. */
const NETWORK_CAUSES: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset",
  ETIMEDOUT: "connection timed out",
  UND_ERR_CONNECT_TIMEOUT: "connection timed out",
  UND_ERR_SOCKET: "connection closed by the server",
  ENOTFOUND: "host not found",
  EAI_AGAIN: "host name lookup failed",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
};

/** fetch hides the useful part (ECONNREFUSED, a TLS error, …) in the cause. */
function describe(err: unknown): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  const code = e.cause?.code;
  const known = code !== undefined ? NETWORK_CAUSES[code] : undefined;
  if (known) return `${known} (${code})`;
  if (e.cause?.message) return code ? `${e.cause.message} (${code})` : e.cause.message;
  return code ? `${e.message} (${code})` : e.message;
}
