// Live fan-out of committed events over core NATS. Postgres stays the record:
// a watcher that misses a live message finds the gap by sequence and reads it
// from the events table. nats.js resubscribes by itself after a reconnect;
// events published meanwhile are not replayed, hence onReconnect.
import type { Msg, NatsConnection, Subscription } from "@nats-io/transport-node";
import { eventFromJson, eventToJson } from "../db/mappers.js";
import type { DeploymentEvent } from "../domain/types.js";
import { watchConnection } from "./connection-state.js";

export type EventListener = (event: DeploymentEvent) => void;

export interface EventBus {
  publish(events: readonly DeploymentEvent[]): void;
  /** Listens to one deployment's events; returns the unsubscribe function. */
  onDeployment(deploymentUid: string, listener: EventListener): () => void;
  /**
   * One deployment's events on a subscription of its own, filtered by the
   * server (not the shared one, which would receive and parse every event of
   * the cluster): for a worker following the few tasks that run long.
   */
  followDeployment(deploymentUid: string, listener: EventListener): () => void;
  /** Listens to every deployment's events (one dispatcher of its own, e.g. the watch hub). */
  onEvent(listener: EventListener): () => void;
  /**
   * Resolves once the server has the process's subscription (a round trip
   * after subscribing): an event published after that reaches the listeners,
   * so a read made after it misses nothing in between.
   */
  subscribed(): Promise<void>;
  /**
   * Calls `listener` after the connection to NATS came back: live events of
   * the outage were missed, so a watcher re-reads Postgres from its last
   * sequence. Returns the function that removes the listener.
   */
  onReconnect(listener: () => void): () => void;
  close(): Promise<void>;
}

export function eventSubject(prefix: string, event: { workspace: string; deploymentUid: string }): string {
  return `${prefix}.events.${event.workspace}.${event.deploymentUid}`;
}

/** A subscription callback that hands each event to `listener`; a message that is not one is dropped. */
function eventCallback(listener: EventListener): (err: Error | null, msg: Msg) => void {
  return (err, msg) => {
    if (err) return;
    let event: DeploymentEvent;
    try {
      event = eventFromJson(msg.string());
    } catch {
      return;
    }
    listener(event);
  };
}

/** One shared subscription per process, dispatched by deployment uid. */
export function createEventBus(nc: NatsConnection, prefix: string): EventBus {
  const listeners = new Map<string, Set<EventListener>>();
  const everything = new Set<EventListener>();
  const link = watchConnection(nc);
  let sub: Subscription | undefined;
  let flushed: Promise<void> | undefined;
  const ensureSubscribed = () => {
    if (sub) return;
    flushed = undefined;
    sub = nc.subscribe(`${prefix}.events.>`, {
      callback: eventCallback((event) => {
        for (const l of everything) l(event);
        const set = listeners.get(event.deploymentUid);
        if (set) for (const l of [...set]) l(event);
      }),
    });
  };
  const unsubscribeIfUnused = () => {
    // Without listeners, stop receiving (and parsing) every event of the cluster.
    if (listeners.size === 0 && everything.size === 0 && sub) {
      sub.unsubscribe();
      sub = undefined;
      flushed = undefined;
    }
  };
  return {
    followDeployment(deploymentUid, listener) {
      const own = nc.subscribe(`${prefix}.events.*.${deploymentUid}`, { callback: eventCallback(listener) });
      return () => own.unsubscribe();
    },
    publish(events) {
      for (const e of events) {
        try {
          nc.publish(eventSubject(prefix, e), eventToJson(e));
        } catch {
          // Best effort: watchers recover missed events from Postgres.
        }
      }
    },
    onDeployment(uid, listener) {
      ensureSubscribed();
      let set = listeners.get(uid);
      if (!set) listeners.set(uid, (set = new Set()));
      set.add(listener);
      return () => {
        set.delete(listener);
        if (set.size === 0) listeners.delete(uid);
        unsubscribeIfUnused();
      };
    },
    onEvent(listener) {
      ensureSubscribed();
      everything.add(listener);
      return () => {
        everything.delete(listener);
        unsubscribeIfUnused();
      };
    },
    subscribed() {
      ensureSubscribed();
      // One flush per subscription; a failed one (link down) is tried again next time.
      const f = (flushed ??= nc.flush().catch((e: unknown) => {
        flushed = undefined;
        throw e;
      }));
      return f;
    },
    onReconnect(listener) {
      return link.onReconnect(() => {
        // nats.js subscribes again on reconnect: the next subscribed() waits for the server to have it.
        flushed = undefined;
        listener();
      });
    },
    async close() {
      sub?.unsubscribe();
      listeners.clear();
      everything.clear();
      link.stop();
    },
  };
}
