// Runs a change in a transaction, then fans its events out live. Publishing
// after commit means a live event is never one that rolled back. A deadlock
// or serialization failure rolls the transaction back whole: it runs again
// (conflict-retry.ts), so `fn` must have no effect outside the transaction
// but through `emit`.
import type { DeploymentEvent } from "../domain/types.js";
import { retryWriteConflicts } from "./conflict-retry.js";
import type { Db } from "./connect.js";
import type { Trx } from "./executor.js";

export type EventSink = (events: readonly DeploymentEvent[]) => void;

export async function transact<T>(db: Db, sink: EventSink, fn: (trx: Trx, emit: (e: DeploymentEvent) => void) => Promise<T>): Promise<T> {
  let events: DeploymentEvent[] = [];
  const result = await retryWriteConflicts("a transaction", () => {
    events = [];
    return db.transaction().execute((trx) => fn(trx, (e) => events.push(e)));
  });
  if (events.length > 0) sink(events);
  return result;
}
