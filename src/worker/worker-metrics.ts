// The worker's metrics: how long tasks take, by kind and outcome, and what
// waits for a worker (read at each scrape: the queue's backlog from
// JetStream, pending tasks and the outbox from the database).
import type { Executor } from "../db/executor.js";
import { readTaskBacklog, type TaskBacklog } from "../db/task-backlog.js";
import type { Logger } from "../log.js";
import type { TaskQueue } from "../queue/task-queue.js";
import { FastGauge, FastHistogram } from "../telemetry/fast-metrics.js";
import type { MetricsRegistry } from "../telemetry/metrics.js";

/** How a task's run on this worker ended. */
export type TaskOutcome = "succeeded" | "failed" | "retried" | "stopped";

export interface WorkerMetrics {
  taskEnded(kind: string, outcome: TaskOutcome, seconds: number): void;
}

/** A task's seconds: quick no-op tasks to downloads and health checks of many minutes. */
const TASK_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

export function createWorkerMetrics(registry: MetricsRegistry): WorkerMetrics {
  const durations = new FastHistogram(
    "modeldeploy_task_duration_seconds",
    "Task runs on this worker by kind and outcome (succeeded, failed, retried: the attempt failed and the task is redelivered, stopped: cancelled or taken over), and how long they took",
    ["kind", "outcome"],
    TASK_BUCKETS,
    registry,
  );
  return { taskEnded: (kind, outcome, seconds) => durations.child(kind, outcome).observe(seconds) };
}

/**
 * Gauges of the backlog, read once per scrape (one query and one JetStream
 * request for all of them). A failed read leaves the last values, logged at debug.
 */
export function registerBacklogGauges(registry: MetricsRegistry, o: { db: Executor; queue: Pick<TaskQueue, "state">; logger: Logger }): void {
  let reading: Promise<void> | undefined;
  let backlog: TaskBacklog = { pending: 0, running: 0, oldestPendingAgeSeconds: 0, outboxRows: 0 };
  let queued = 0;
  const read = () =>
    (reading ??= (async () => {
      const [b, q] = await Promise.allSettled([readTaskBacklog(o.db), o.queue.state()]);
      if (b.status === "fulfilled") backlog = b.value;
      else o.logger.debug("metrics: cannot read the task backlog", { err: b.reason });
      if (q.status === "fulfilled") queued = q.value.backlog;
      else o.logger.debug("metrics: cannot read the task queue's state", { err: q.reason });
    })().finally(() => (reading = undefined)));
  const gauge = (name: string, help: string, value: () => number) =>
    new FastGauge(name, help, [], registry, async (g) => {
      await read();
      g.child().set(value());
    });
  gauge("modeldeploy_queue_messages_pending", "Task messages in the JetStream queue not yet delivered to a worker", () => queued);
  gauge("modeldeploy_tasks_pending", "Tasks waiting for a worker (PENDING)", () => backlog.pending);
  gauge("modeldeploy_tasks_running", "Tasks a worker runs now (RUNNING), on every worker", () => backlog.running);
  gauge("modeldeploy_task_oldest_pending_age_seconds", "Seconds since the oldest PENDING task was created (0: none)", () => backlog.oldestPendingAgeSeconds);
  gauge("modeldeploy_outbox_rows", "Queued tasks not yet published to the queue (outbox rows)", () => backlog.outboxRows);
}
