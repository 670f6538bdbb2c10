// Publishes outbox rows to JetStream. Woken right after a commit for low
// latency, and on a timer so that rows left by a crash are never stranded.
import type { Db } from "../db/connect.js";
import { drainOutbox } from "../db/outbox.js";
import type { Logger } from "../log.js";
import type { TaskPublisher } from "./task-queue.js";

export interface OutboxRelay {
  /** Ask for a publish pass soon (coalesced). */
  wake(): void;
  stop(): Promise<void>;
}

export function startOutboxRelay(o: { db: Db; publisher: TaskPublisher; logger: Logger; intervalMs?: number; batch?: number }): OutboxRelay {
  const intervalMs = o.intervalMs ?? 1000;
  const batch = o.batch ?? 500;
  let running = false;
  let again = false;
  let stopped = false;
  let current: Promise<void> = Promise.resolve();

  const pass = async () => {
    for (;;) {
      const n = await drainOutbox(o.db, batch, async (entries) => {
        await Promise.all(entries.map((e) => o.publisher.publish(e.taskId, e.msgId)));
      });
      if (n < batch) return;
    }
  };
  const run = () => {
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    running = true;
    current = (async () => {
      do {
        again = false;
        try {
          await pass();
        } catch (err) {
          o.logger.warn("outbox relay pass failed; will retry", { err });
        }
      } while (again && !stopped);
      running = false;
    })();
  };
  const timer = setInterval(run, intervalMs);
  timer.unref();
  run();
  return {
    wake: run,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await current;
    },
  };
}
