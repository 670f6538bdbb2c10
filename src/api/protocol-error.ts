// An error response written before connect-node (or grpc-js) handles the
// request, in the protocol the request speaks, so that every client reports
// the code and message: gRPC and gRPC-Web get a trailers-only response
// (grpc-status, grpc-message), Connect streaming an end-of-stream message,
// Connect unary (and anything else) the Connect JSON error.
import type { ConnectError } from "@connectrpc/connect";
import type { NodeResponse } from "./node-http.js";
import { codeToHttpStatus, errorToJson, errorToJsonBytes } from "@connectrpc/connect/protocol-connect";

export interface ErrorResponse {
  status: number;
  headers: Record<string, string>;
  body: Uint8Array;
}

const empty = new Uint8Array(0);

export function protocolErrorResponse(contentType: string | undefined, err: ConnectError): ErrorResponse {
  const ct = (contentType ?? "").toLowerCase();
  if (ct.startsWith("application/grpc")) {
    return {
      status: 200,
      headers: {
        "content-type": ct.split(";", 1)[0] ?? ct,
        "grpc-status": String(err.code),
        "grpc-message": encodeURI(err.rawMessage),
      },
      body: empty,
    };
  }
  if (ct.startsWith("application/connect+")) {
    const json = new TextEncoder().encode(JSON.stringify({ error: errorToJson(err, {}) }));
    const body = new Uint8Array(5 + json.byteLength);
    body[0] = 0b10; // end of stream
    new DataView(body.buffer).setUint32(1, json.byteLength);
    body.set(json, 5);
    return { status: 200, headers: { "content-type": ct.split(";", 1)[0] ?? ct }, body };
  }
  return {
    status: codeToHttpStatus(err.code),
    headers: { "content-type": "application/json" },
    body: errorToJsonBytes(err, {}),
  };
}

/** Write protocolErrorResponse to a Node HTTP/1.1 or HTTP/2 (compatibility API) response. */
export function writeProtocolError(res: NodeResponse, contentType: string | undefined, err: ConnectError): void {
  const r = protocolErrorResponse(contentType, err);
  if (r.body.byteLength === 0) {
    // gRPC trailers-only: one HEADERS frame that ends the stream.
    res.writeHead(r.status, r.headers);
    res.end();
    return;
  }
  res.writeHead(r.status, { ...r.headers, "content-length": String(r.body.byteLength) });
  res.end(r.body);
}
