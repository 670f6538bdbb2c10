// Re-publishes tasks that stay PENDING or whose worker stopped renewing its
// lease: a lost queue message delays a task, it never loses it.
import type { Db } from "../db/connect.js";
import { takeTasksToRequeue } from "../db/tasks.js";
import type { Logger } from "../log.js";
import type { TaskPublisher } from "./task-queue.js";

export interface Sweeper {
  sweepOnce(): Promise<number>;
  stop(): Promise<void>;
}

export interface SweeperOptions {
  db: Db;
  publisher: TaskPublisher;
  logger: Logger;
  intervalMs: number;
  olderThanMs: number;
  /** Messages in the queue not yet delivered to any worker (see queueBacklog). */
  backlog?: () => Promise<number>;
}

export function startSweeper(o: SweeperOptions): Sweeper {
  let current: Promise<number> = Promise.resolve(0);
  const sweepOnce = async () => {
    // While the queue still holds undelivered messages, a task no worker has
    // claimed yet is most likely one of them, waiting its turn: re-publishing
    // it would only add duplicates to the backlog. A lost message is found
    // once the backlog is drained (delayed, never lost).
    const skipNeverClaimed = o.backlog ? (await o.backlog().catch(() => 0)) > 0 : false;
    const tasks = await takeTasksToRequeue(o.db, o.olderThanMs, 200, { skipNeverClaimed });
    // A fresh msg id per re-publish: the original may still sit in the dedup window.
    await Promise.all(tasks.map((t) => o.publisher.publish(t.id, `${t.id}:r${t.enqueue_count}`)));
    if (tasks.length > 0) o.logger.info("re-enqueued stalled tasks", { count: tasks.length });
    return tasks.length;
  };
  const timer = setInterval(() => {
    current = sweepOnce().catch((err) => {
      o.logger.warn("sweep failed; will retry", { err });
      return 0;
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
