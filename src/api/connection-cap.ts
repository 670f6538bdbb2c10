// A TCP listener that counts its connections. Up to maxConnections are
// handed to `accept`; past that a connection goes to `refuse` (which answers
// it with a clear error and closes it). Refusals are logged at most every
// few seconds, with a count, so that a flood does not flood the log too.
import * as net from "node:net";
import type { AddressInfo } from "node:net";
import type { Logger } from "../log.js";

export interface CappedListenerOptions {
  /** For logs: "grpc" or "http". */
  name: string;
  maxConnections: number;
  logger: Logger;
  accept(socket: net.Socket): void;
  refuse(socket: net.Socket): void;
}

export interface CappedListener {
  /** Bind; resolves with the bound port. */
  listen(host: string, port: number): Promise<number>;
  /** Stop accepting; connections arriving meanwhile are closed at once. */
  close(): void;
  /** Connections being served. */
  readonly sockets: ReadonlySet<net.Socket>;
  /** Resolves once no served connection is left. */
  whenEmpty(): Promise<void>;
}

const refusalLogIntervalMs = 10_000;

export function createCappedListener(opts: CappedListenerOptions): CappedListener {
  const { logger } = opts;
  const sockets = new Set<net.Socket>();
  let closing = false;
  let emptyWaiters: (() => void)[] = [];
  let refused = 0;
  let lastRefusalLog = 0;

  const noteRefusal = () => {
    refused++;
    const now = Date.now();
    if (now - lastRefusalLog < refusalLogIntervalMs) return;
    logger.warn("connection refused: too many connections", {
      port: opts.name,
      limit: opts.maxConnections,
      refused,
    });
    lastRefusalLog = now;
    refused = 0;
  };

  const server = net.createServer((socket) => {
    // Errors are handled by whoever the socket is handed to; before that
    // (and after, as a last resort) they must not crash the process.
    socket.on("error", () => {});
    if (closing) {
      socket.destroy();
      return;
    }
    if (sockets.size >= opts.maxConnections) {
      noteRefusal();
      opts.refuse(socket);
      return;
    }
    sockets.add(socket);
    socket.once("close", () => {
      sockets.delete(socket);
      if (sockets.size === 0) {
        const waiters = emptyWaiters;
        emptyWaiters = [];
        for (const w of waiters) w();
      }
    });
    opts.accept(socket);
  });

  return {
    sockets,
    listen(host, port) {
      return new Promise<number>((resolve, reject) => {
        const onError = (err: Error) => reject(err);
        server.once("error", onError);
        server.listen({ host, port }, () => {
          server.off("error", onError);
          // Accept errors (EMFILE when out of file descriptors) must not
          // crash the process: libuv keeps accepting once descriptors free up.
          server.on("error", (err) => logger.error("accept failed", { port: opts.name, err }));
          resolve((server.address() as AddressInfo).port);
        });
      });
    },
    close() {
      closing = true;
      server.close();
    },
    whenEmpty() {
      if (sockets.size === 0) return Promise.resolve();
      return new Promise<void>((resolve) => emptyWaiters.push(resolve));
    },
  };
}
