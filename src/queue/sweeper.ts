// Re-publishes tasks that stay PENDING or whose worker stopped renewing its
// lease: a lost queue message delays a task, it never loses it.
import type { Db } from "../db/connect.js";
import { findStalledTasks, markRequeued, stalledCutoff, type StalledTask } from "../db/stalled-tasks.js";
import type { Logger } from "../log.js";
import { createOutageLog } from "./outage-log.js";
import type { QueueState, TaskPublisher } from "./task-queue.js";

export interface Sweeper {
  /** One sweep; returns how many tasks it re-published. */
  sweepOnce(): Promise<number>;
  stop(): Promise<void>;
}

export interface SweeperOptions {
  db: Db;
  queue: TaskPublisher & { state(): Promise<QueueState> };
  logger: Logger;
  intervalMs: number;
  olderThanMs: number;
  /** Tasks per batch; a sweep goes on while batches come back full. */
  batch?: number;
}

/**
 * The msg id of a re-publish: fresh per re-publish, because the last copy may
 * still sit in the duplicate window although its message is gone. Except when
 * the one copy a never-claimed task had was the relay's, under the task id,
 * and is either not published yet (still in the outbox) or went with an older
 * stream (enqueued before this one was created): if the relay has published
 * it into this stream meanwhile, or does so soon, the shared id lets
 * JetStream drop the second copy instead of queuing a duplicate.
 */
function msgIdOf(t: StalledTask, streamCreated: Date): string {
  const relaysCopyMissing = t.attempt === 0 && t.enqueueCount === 0 && (t.inOutbox || t.enqueuedAt < streamCreated);
  return relaysCopyMissing ? t.id : `${t.id}:r${t.enqueueCount + 1}`;
}

export function startSweeper(o: SweeperOptions): Sweeper {
  const batch = o.batch ?? 500;
  const outage = createOutageLog(o.logger, "sweep");
  let current: Promise<number> = Promise.resolve(0);

  const sweepOnce = async () => {
    const { backlog, streamCreated } = await o.queue.state();
    // While the queue holds undelivered messages, a task no worker has claimed
    // yet is most likely one of them, waiting its turn: re-publishing it would
    // only add duplicates to the backlog (a lost one is found once the backlog
    // is drained). Not so for one enqueued before the stream existed (its
    // store was lost, or someone deleted it): its message is gone for sure;
    // nor for one the relay has not published (see msgIdOf).
    // Decided once per sweep: the sweep's own re-publishes make a backlog.
    const neverClaimedEnqueuedBefore = backlog > 0 ? streamCreated : undefined;
    const enqueuedBefore = await stalledCutoff(o.db, o.olderThanMs);
    let total = 0;
    for (;;) {
      const tasks = await findStalledTasks(o.db, { enqueuedBefore, limit: batch, neverClaimedEnqueuedBefore });
      const results = await Promise.allSettled(tasks.map((t) => o.queue.publish(t.id, msgIdOf(t, streamCreated))));
      // Only a publish JetStream acknowledged counts as an enqueue.
      const published = tasks.filter((_, i) => results[i]!.status === "fulfilled");
      await markRequeued(o.db, published);
      total += published.length;
      const failure = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
      if (failure) {
        if (total > 0) o.logger.info("re-enqueued stalled tasks", { count: total });
        throw failure.reason;
      }
      if (tasks.length < batch) break;
    }
    if (total > 0) o.logger.info("re-enqueued stalled tasks", { count: total });
    return total;
  };

  let sweeping = false;
  const timer = setInterval(() => {
    // A long sweep (a large backlog to re-publish) is not overlapped by the next.
    if (sweeping) return;
    sweeping = true;
    current = sweepOnce()
      .then(
        (n) => {
          outage.ok();
          return n;
        },
        (err: unknown) => {
          outage.failed(err);
          return 0;
        },
      )
      .finally(() => {
        sweeping = false;
      });
  }, o.intervalMs);
  timer.unref();
  return {
    sweepOnce,
    async stop() {
      clearInterval(timer);
      await current;
    },
  };
}
