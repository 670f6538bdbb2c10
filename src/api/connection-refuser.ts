// A connection past the cap is not served, but answered: its first call gets
// RESOURCE_EXHAUSTED "too many connections (limit N)" in the protocol it
// speaks (a grpc-js client reports exactly that), then the connection is
// closed. One that sends no call is closed after graceMs, over HTTP/2 with a
// GOAWAY (ENHANCE_YOUR_CALM) carrying the same text. Refusing is cheap and
// bounded: at most maxRefusing connections are being refused at once; past
// that they are dropped unanswered.
import * as http from "node:http";
import * as http2 from "node:http2";
import type * as net from "node:net";
import type { SecureContextOptions } from "node:tls";
import { Code, ConnectError } from "@connectrpc/connect";
import { protocolErrorResponse, writeProtocolError } from "./protocol-error.js";
import { sniffProtocol } from "./protocol-sniff.js";

export interface ConnectionRefuserOptions {
  /** The status message, e.g. "too many connections (limit 2000), retry later". */
  message: string;
  /** Serve the refusal over TLS (a TLS gRPC port). */
  tls?: SecureContextOptions & { requestCert?: boolean };
  /** How long a refused connection may take to send its first call. Default 2000. */
  graceMs?: number;
  /** Connections refused at once; more are dropped. Default 256. */
  maxRefusing?: number;
}

export interface ConnectionRefuser {
  /** Answer and close: "h2" for an HTTP/2-only port, "sniff" to tell HTTP/2 from HTTP/1.1 first. */
  refuse(socket: net.Socket, protocol: "h2" | "sniff"): void;
  /** Connections being refused now. */
  readonly refusing: number;
  close(): void;
}

export function createConnectionRefuser(opts: ConnectionRefuserOptions): ConnectionRefuser {
  const graceMs = opts.graceMs ?? 2000;
  const maxRefusing = opts.maxRefusing ?? 256;
  const err = new ConnectError(opts.message, Code.ResourceExhausted);
  const sockets = new Set<net.Socket>();

  const h2Options: http2.ServerOptions = { settings: { maxConcurrentStreams: 1 } };
  const h2 = opts.tls !== undefined ? http2.createSecureServer({ ...opts.tls, ...h2Options }) : http2.createServer(h2Options);
  h2.on("stream", (stream, headers) => {
    const r = protocolErrorResponse(headers["content-type"], err);
    try {
      stream.respond({ ":status": r.status, ...r.headers }, { endStream: r.body.byteLength === 0 });
      if (r.body.byteLength > 0) stream.end(r.body);
    } catch {
      // the stream is already gone
    }
    stream.session?.close();
  });
  h2.on("session", (session) => {
    session.on("error", () => {});
    const timer = setTimeout(() => {
      try {
        session.goaway(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM, 0, Buffer.from(opts.message));
      } catch {
        // already closing
      }
      session.destroy();
    }, graceMs);
    timer.unref();
    session.once("close", () => clearTimeout(timer));
  });
  h2.on("sessionError", () => {});

  const h1 = http.createServer((req, res) => {
    res.setHeader("connection", "close");
    writeProtocolError(res, req.headers["content-type"], err);
  });
  h1.on("clientError", (_e, socket) => socket.destroy());

  return {
    refuse(socket, protocol) {
      if (sockets.size >= maxRefusing) {
        socket.destroy();
        return;
      }
      sockets.add(socket);
      socket.on("error", () => {});
      // A backstop for every path (a TLS handshake, HTTP/1.1 that never ends a request).
      const timer = setTimeout(() => socket.destroy(), graceMs + 1000);
      timer.unref();
      socket.once("close", () => {
        clearTimeout(timer);
        sockets.delete(socket);
      });
      if (protocol === "h2") {
        h2.emit("connection", socket);
        return;
      }
      sniffProtocol(socket, graceMs, (isH2) => {
        if (isH2) h2.emit("connection", socket);
        else {
          h1.emit("connection", socket);
          socket.resume();
        }
      });
    },
    get refusing() {
      return sockets.size;
    },
    close() {
      for (const socket of sockets) socket.destroy();
      h1.close();
      h2.close();
    },
  };
}
