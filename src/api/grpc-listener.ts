// The gRPC port's connections: accepted by our own listener, which counts
// them (grpc-js has no connection cap) and injects each one into grpc-js
// (Server.createConnectionInjector); past the cap a connection's calls get
// RESOURCE_EXHAUSTED "too many connections (limit N)" and it is closed. It
// also keeps each connection's reset budget (reset-budget.ts): grpc-js does
// not expose its sessions, so a connection past its budget is destroyed.
import { readFileSync } from "node:fs";
import type * as http2 from "node:http2";
import type * as net from "node:net";
import * as grpc from "@grpc/grpc-js";
import type { Logger } from "../log.js";
import { createCappedListener } from "./connection-cap.js";
import { createConnectionRefuser } from "./connection-refuser.js";
import { ResetBudget, tooManyResets } from "./reset-budget.js";
import { tooManyConnections } from "./request-rejections.js";
import { headerHardLimitFactor, type WireLimits } from "./wire-limits.js";

export interface GrpcTlsOptions {
  /** PEM certificate chain file. */
  certFile: string;
  /** PEM private key file. */
  keyFile: string;
  /** PEM CA bundle to verify client certificates (mutual TLS) against. */
  caFile?: string;
  /** Require and verify a client certificate (needs caFile). */
  requireClientCert?: boolean;
}

/** The grpc-js server options that carry our wire limits. */
export function grpcLimitOptions(limits: WireLimits): grpc.ServerOptions {
  return {
    "grpc.max_concurrent_streams": limits.maxStreamsPerConnection,
    "grpc.max_connection_idle_ms": limits.idleConnectionMs,
    "grpc.keepalive_time_ms": limits.keepaliveTimeMs,
    "grpc.keepalive_timeout_ms": limits.keepaliveTimeoutMs,
  };
}

/**
 * grpc-js has no option for the HTTP/2 header list size (grpc/grpc-node
 * #2050, #2431), so a client could send megabytes of metadata per call. It
 * hands the options in its `commonServerOptions` field to every http2 server
 * it creates: the setting goes there, before the first one is created. Node
 * then resets streams whose header block exceeds it (ENHANCE_YOUR_CALM,
 * which grpc-js clients report as RESOURCE_EXHAUSTED) once the client has
 * acknowledged the setting.
 */
function capHeaderList(server: grpc.Server, maxHeaderListSize: number, logger: Logger): void {
  const internal = server as unknown as { commonServerOptions?: http2.ServerOptions };
  const common = internal.commonServerOptions;
  if (common === undefined || typeof common !== "object") {
    logger.warn("grpc-js internals changed: the HTTP/2 header list size is not capped on the gRPC port");
    return;
  }
  common.settings = { ...common.settings, maxHeaderListSize };
}

function credentials(tls: GrpcTlsOptions | undefined): grpc.ServerCredentials {
  if (tls === undefined) return grpc.ServerCredentials.createInsecure();
  return grpc.ServerCredentials.createSsl(
    tls.caFile !== undefined ? readFileSync(tls.caFile) : null,
    [{ cert_chain: readFileSync(tls.certFile), private_key: readFileSync(tls.keyFile) }],
    tls.requireClientCert === true,
  );
}

export interface GrpcListener {
  /** Bind and start; resolves with the bound port. */
  listen(host: string, port: number): Promise<number>;
  /** Stop accepting connections. */
  close(): void;
  /** Destroy every connection still open (after the grace period). */
  destroyAll(): void;
  /** A call from this peer (grpc-js getPeer()) was abandoned by its client before it completed. */
  callAbandoned(peer: string): void;
}

export function createGrpcListener(server: grpc.Server, opts: { tls?: GrpcTlsOptions; limits: WireLimits; logger: Logger }): GrpcListener {
  const { limits, logger, tls } = opts;
  capHeaderList(server, limits.maxHeaderBytes * headerHardLimitFactor, logger);
  let injector: ReturnType<grpc.Server["createConnectionInjector"]> | undefined;
  // By "address:port", as grpc-js names a call's peer.
  const connections = new Map<string, { socket: net.Socket; resets: ResetBudget }>();
  const refuser = createConnectionRefuser({
    message: tooManyConnections(limits.maxConnections),
    ...(tls !== undefined
      ? {
          tls: {
            cert: readFileSync(tls.certFile),
            key: readFileSync(tls.keyFile),
            ...(tls.caFile !== undefined ? { ca: readFileSync(tls.caFile) } : {}),
            requestCert: tls.requireClientCert === true,
          },
        }
      : {}),
  });
  const listener = createCappedListener({
    name: "grpc",
    maxConnections: limits.maxConnections,
    logger,
    accept: (socket) => {
      if (injector === undefined) {
        socket.destroy();
        return;
      }
      const peer = `${socket.remoteAddress}:${socket.remotePort}`;
      connections.set(peer, { socket, resets: new ResetBudget(limits.maxStreamResets) });
      socket.once("close", () => connections.delete(peer));
      injector.injectConnection(socket);
    },
    refuse: (socket) => refuser.refuse(socket, "h2"),
  });

  return {
    async listen(host, port) {
      injector = server.createConnectionInjector(credentials(tls));
      const bound = await listener.listen(host, port);
      logger.info("grpc server listening", { address: host, port: bound, tls: tls !== undefined });
      return bound;
    },
    close() {
      listener.close();
      refuser.close();
    },
    destroyAll() {
      for (const socket of listener.sockets) socket.destroy();
    },
    callAbandoned(peer) {
      const c = connections.get(peer);
      if (c === undefined || c.resets.take()) return;
      connections.delete(peer);
      logger.warn("connection closed: too many streams reset", { port: "grpc", peer, error: tooManyResets(limits.maxStreamResets) });
      c.socket.destroy();
    },
  };
}
