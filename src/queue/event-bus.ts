// Live fan-out of committed events over core NATS. Postgres stays the record:
// a watcher that misses a live message finds the gap by sequence and reads it
// from the events table.
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { eventFromJson, eventToJson } from "../db/mappers.js";
import type { DeploymentEvent } from "../domain/types.js";

export type EventListener = (event: DeploymentEvent) => void;

export interface EventBus {
  publish(events: readonly DeploymentEvent[]): void;
  /** Listens to one deployment's events; returns the unsubscribe function. */
  onDeployment(deploymentUid: string, listener: EventListener): () => void;
  close(): Promise<void>;
}

export function eventSubject(prefix: string, event: { workspace: string; deploymentUid: string }): string {
  return `${prefix}.events.${event.workspace}.${event.deploymentUid}`;
}

/** One shared subscription per process, dispatched by deployment uid. */
export function createEventBus(nc: NatsConnection, prefix: string): EventBus {
  const listeners = new Map<string, Set<EventListener>>();
  let sub: Subscription | undefined;
  const ensureSubscribed = () => {
    if (sub) return;
    sub = nc.subscribe(`${prefix}.events.>`, {
      callback: (err, msg) => {
        if (err) return;
        let event: DeploymentEvent;
        try {
          event = eventFromJson(msg.string());
        } catch {
          return;
        }
        const set = listeners.get(event.deploymentUid);
        if (set) for (const l of [...set]) l(event);
      },
    });
  };
  return {
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
        // Without watchers, stop receiving (and parsing) every event of the cluster.
        if (listeners.size === 0 && sub) {
          sub.unsubscribe();
          sub = undefined;
        }
      };
    },
    async close() {
      sub?.unsubscribe();
      listeners.clear();
    },
  };
}
