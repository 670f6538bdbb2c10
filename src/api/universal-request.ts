// connect-node's universalRequestFromNodeRequest, with the one difference
// that matters per call: its signal is aborted with a shared, prebuilt reason.
// connect-node aborts without a reason when a response closes, so Node builds
// a DOMException, with a stack, on every call (~9 % of an HTTP/1.1 call's
// CPU in a profile). The reason says whether the response had completed.
import * as http2 from "node:http2";
import { Code, ConnectError, type ContextValues } from "@connectrpc/connect";
import type { UniversalServerRequest } from "@connectrpc/connect/protocol";
import type { NodeRequest, NodeResponse } from "./node-http.js";

/** The signal's reason once the response has been sent in full. */
export const responseCompleted = new ConnectError("the call has completed", Code.Canceled);
/** The signal's reason when the client went away before the response was complete. */
export const clientClosed = new ConnectError("the client closed the request", Code.Canceled);

const h2 = http2.constants;

/** A reset stream's code as connect-node reports it; undefined for NO_ERROR, STREAM_CLOSED and unknown codes. */
function resetError(rstCode: number): ConnectError | undefined {
  const text = () => `http/2 stream closed with error code 0x${rstCode.toString(16)}`;
  switch (rstCode) {
    case h2.NGHTTP2_PROTOCOL_ERROR:
    case h2.NGHTTP2_INTERNAL_ERROR:
    case h2.NGHTTP2_FLOW_CONTROL_ERROR:
    case h2.NGHTTP2_SETTINGS_TIMEOUT:
    case h2.NGHTTP2_FRAME_SIZE_ERROR:
    case h2.NGHTTP2_COMPRESSION_ERROR:
    case h2.NGHTTP2_CONNECT_ERROR:
      return new ConnectError(text(), Code.Internal);
    case h2.NGHTTP2_REFUSED_STREAM:
      return new ConnectError(text(), Code.Unavailable);
    case h2.NGHTTP2_CANCEL:
      return new ConnectError(text(), Code.Canceled);
    case h2.NGHTTP2_ENHANCE_YOUR_CALM:
      return new ConnectError(text(), Code.ResourceExhausted);
    case h2.NGHTTP2_INADEQUATE_SECURITY:
    case h2.NGHTTP2_HTTP_1_1_REQUIRED:
      return new ConnectError(text(), Code.PermissionDenied);
    default:
      return undefined;
  }
}

/** A socket error as connect-node reports it: the client hung up (ABORTED) or something else (INTERNAL). */
function socketError(e: unknown): ConnectError {
  const code = (e as { code?: unknown } | null)?.code;
  const hungUp = code === "ECONNRESET" || code === "ERR_STREAM_DESTROYED" || code === "ERR_STREAM_WRITE_AFTER_END";
  const ce = ConnectError.from(e, hungUp ? Code.Aborted : Code.Internal);
  if (ce !== e) ce.cause = e;
  return ce;
}

/** Node request headers as fetch Headers (pseudo-headers left out), as connect-node builds them. */
export function webHeaders(nodeHeaders: NodeRequest["headers"]): Headers {
  const header = new Headers();
  for (const k in nodeHeaders) {
    if (k.charCodeAt(0) === 58 /* ":" pseudo-header */) continue;
    const v = nodeHeaders[k];
    if (v === undefined) continue;
    if (typeof v === "string") header.append(k, v);
    else for (const e of v) header.append(k, e);
  }
  return header;
}

export function universalRequest(req: NodeRequest, res: NodeResponse, contextValues: ContextValues): UniversalServerRequest {
  const encrypted = "encrypted" in req.socket && req.socket.encrypted === true;
  const authority = "authority" in req ? req.authority : req.headers.host;
  if (authority === undefined) {
    throw new ConnectError("unable to determine request authority from Node.js server request", Code.Internal);
  }
  const controller = new AbortController();
  if ("stream" in req) {
    req.once("close", () => {
      controller.abort(resetError(req.stream.rstCode) ?? (res.writableFinished ? responseCompleted : clientClosed));
    });
  } else {
    // The response's close, not the request's: a request closes once its body is read.
    const onError = (e: unknown) => {
      req.off("error", onError);
      res.off("close", onClose);
      controller.abort(socketError(e));
    };
    const onClose = () => {
      req.off("error", onError);
      res.off("close", onClose);
      const errored = req.errored;
      controller.abort(errored ? socketError(errored) : res.writableFinished ? responseCompleted : clientClosed);
    };
    req.once("error", onError);
    res.once("close", onClose);
  }
  return {
    httpVersion: req.httpVersion,
    method: req.method ?? "",
    url: new URL(req.url ?? "", `${encrypted ? "https" : "http"}://${authority}`).toString(),
    header: webHeaders(req.headers),
    body: req as AsyncIterable<Uint8Array>,
    signal: controller.signal,
    contextValues,
  };
}
