// Whether a NATS connection is up, from its status events. nats.js buffers
// requests while it reconnects and fails them only at their timeout; knowing
// the link is down lets queue operations fail at once instead.
import type { NatsConnection, QueuedIterator, Status } from "@nats-io/transport-node";

export interface ConnectionState {
  connected(): boolean;
  /** Calls `listener` after every reconnect; returns the function that removes it. */
  onReconnect(listener: () => void): () => void;
  stop(): void;
}

export function watchConnection(nc: NatsConnection): ConnectionState {
  let up = !nc.isClosed();
  const listeners = new Set<() => void>();
  const status = nc.status();
  void (async () => {
    for await (const s of status) {
      if (s.type === "disconnect" || s.type === "close") up = false;
      else if (s.type === "reconnect") {
        up = true;
        for (const l of [...listeners]) {
          try {
            l();
          } catch {
            // A listener's failure is its own; the others still run.
          }
        }
      }
    }
  })().catch(() => {});
  return {
    connected: () => up && !nc.isClosed(),
    onReconnect(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    stop() {
      listeners.clear();
      // status() is typed as a plain iterable; the iterator it returns can be stopped.
      (status as Partial<QueuedIterator<Status>>).stop?.();
    },
  };
}
