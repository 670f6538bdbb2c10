// HTTP/1.1 front of the model server: the Open Inference Protocol (KServe v2)
// REST endpoints for one model.
import http from "node:http";
import type { Tensor } from "onnxruntime-node";
import type { Logger } from "../log.js";
import { codecFor, kserveDatatypeOf } from "./datatypes.js";
import { BodyTooLargeError, readBody } from "./http-body.js";
import { BadRequestError, parseInferRequest } from "./infer-request.js";
import type { LoadedModel } from "./model.js";

export interface ModelServerOptions {
  name: string;
  version: string;
  maxBatchSize: number;
  maxBodyBytes: number;
  logger: Logger;
}

export interface ModelServer {
  readonly server: http.Server;
  /** Marks the server ready: until then health/ready and the model endpoints answer 503. */
  setModel(model: LoadedModel): void;
}

const MODEL_PATH = /^\/v2\/models\/([^/]+)(?:\/versions\/([^/]+))?(\/ready|\/infer)?\/?$/;

export function createModelServer(options: ModelServerOptions): ModelServer {
  let model: LoadedModel | undefined;

  const metadata = (m: LoadedModel) => ({
    name: options.name,
    versions: [options.version],
    platform: "onnxruntime",
    inputs: m.inputs,
    outputs: m.outputs,
  });

  async function infer(req: http.IncomingMessage, res: http.ServerResponse, m: LoadedModel): Promise<void> {
    let body: unknown;
    try {
      const raw = await readBody(req, options.maxBodyBytes);
      body = JSON.parse(raw.toString("utf8"));
    } catch (err) {
      if (err instanceof BodyTooLargeError) return sendJson(res, 413, { error: err.message }, true);
      if (err instanceof SyntaxError) return sendJson(res, 400, { error: `request body is not valid JSON: ${err.message}` });
      throw err;
    }
    const parsed = parseInferRequest(body, m, { maxBatchSize: options.maxBatchSize });
    let results: Record<string, Tensor>;
    try {
      results = await m.run(parsed.feeds, parsed.outputNames);
    } catch (err) {
      options.logger.warn("inference failed", { err });
      return sendJson(res, 500, { error: `inference failed: ${(err as Error).message}` });
    }
    const outputs = parsed.outputNames.map((name) => {
      const t = results[name];
      if (!t) throw new Error(`onnxruntime returned no output '${name}'`);
      const datatype = kserveDatatypeOf(t.type);
      const codec = codecFor(datatype);
      if (!codec) throw new Error(`output '${name}' has datatype ${datatype}, which cannot be returned as JSON`);
      return { name, datatype, shape: [...t.dims], data: codec.toJson(t.data) };
    });
    sendJson(res, 200, {
      model_name: options.name,
      model_version: options.version,
      ...(parsed.id !== undefined ? { id: parsed.id } : {}),
      outputs,
    });
  }

  async function route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = new URL(req.url ?? "/", "http://localhost").pathname;
    const method = req.method ?? "GET";
    const isRead = method === "GET" || method === "HEAD";

    if (path === "/v2/health/live") return onlyRead(isRead, res, () => sendJson(res, 200, { live: true }));
    if (path === "/v2/health/ready") {
      return onlyRead(isRead, res, () => sendJson(res, model ? 200 : 503, { ready: model !== undefined }));
    }
    if (path === "/v2" || path === "/v2/") {
      return onlyRead(isRead, res, () => sendJson(res, 200, { name: "modeldeploy-model-server", version: "1", extensions: [] }));
    }
    const match = MODEL_PATH.exec(path);
    if (!match) return sendJson(res, 404, { error: `no such endpoint: ${method} ${path}` });
    const [, rawName = "", version, action] = match;
    const name = safeDecode(rawName);
    if (name !== options.name || (version !== undefined && safeDecode(version) !== options.version)) {
      const which = version === undefined ? `'${name}'` : `'${name}' version '${safeDecode(version)}'`;
      return sendJson(res, 404, { error: `model ${which} not found; this server serves '${options.name}'` });
    }
    if (action === "/infer") {
      if (method !== "POST") return methodNotAllowed(res, "POST");
      if (!model) return sendJson(res, 503, { error: "model is still loading" });
      return infer(req, res, model);
    }
    if (action === "/ready") {
      return onlyRead(isRead, res, () => sendJson(res, model ? 200 : 503, { name: options.name, ready: model !== undefined }));
    }
    return onlyRead(isRead, res, () => (model ? sendJson(res, 200, metadata(model)) : sendJson(res, 503, { error: "model is still loading" })));
  }

  const server = http.createServer((req, res) => {
    route(req, res).catch((err: unknown) => {
      if (err instanceof BadRequestError) return sendJson(res, 400, { error: err.message });
      options.logger.error("request failed", { err, url: req.url });
      if (!res.headersSent) sendJson(res, 500, { error: `internal error: ${(err as Error).message}` });
      else res.destroy();
    });
  });
  // Longer than the gateway's idle-socket timeout, so the gateway never reuses a socket we are closing.
  server.keepAliveTimeout = 65_000;

  return {
    server,
    setModel: (m) => {
      model = m;
    },
  };
}

function onlyRead(isRead: boolean, res: http.ServerResponse, handle: () => void): void {
  if (!isRead) return methodNotAllowed(res, "GET, HEAD");
  handle();
}

function methodNotAllowed(res: http.ServerResponse, allow: string): void {
  res.setHeader("allow", allow);
  sendJson(res, 405, { error: `method not allowed; use ${allow}` });
}

function sendJson(res: http.ServerResponse, status: number, body: unknown, closeConnection = false): void {
  const payload = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(payload),
    ...(closeConnection ? { connection: "close" } : {}),
  });
  res.end(payload);
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
