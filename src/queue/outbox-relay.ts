// Publishes outbox rows to JetStream. Right after a commit the committing
// call hands over the rows it wrote: they are published at once, with no read
// of the outbox (on a busy API that read and its transaction cost more than
// the create itself), and deleted together once JetStream has them. A pass on
// a timer publishes whatever is left (a crash, a failed publish), so a row is
// never stranded; a row published by both is dropped by the queue's
// de-duplication (the message id is the task's).
import type { Db } from "../db/connect.js";
import { deleteOutboxRows, drainOutbox, type OutboxEntry } from "../db/outbox.js";
import { createCoalescer } from "../db/coalescer.js";
import type { Logger } from "../log.js";
import { parseCallContext } from "../telemetry/call-context.js";
import { carrierOf, contextFrom, otelTrace, spanFailed, SpanKind, tracer, tracingEnabled } from "../telemetry/tracing.js";
import { createOutageLog } from "./outage-log.js";
import type { TaskPublisher } from "./task-queue.js";

export interface OutboxRelay {
  /** After a commit: publish these committed rows now (those of one tick together). */
  wake(committed: readonly OutboxEntry[]): void;
  stop(): Promise<void>;
}

export function startOutboxRelay(o: { db: Db; publisher: TaskPublisher; logger: Logger; intervalMs?: number; batch?: number }): OutboxRelay {
  const intervalMs = o.intervalMs ?? 1000;
  const batch = o.batch ?? 500;
  let running = false;
  let stopped = false;
  let current: Promise<void> = Promise.resolve();
  const outage = createOutageLog(o.logger, "outbox relay");

  // Rows handed over by their commit and being published now: a pass leaves them be.
  const direct = new Set<string>();
  let handed: OutboxEntry[] = [];
  const sending = new Set<Promise<void>>();
  // One delete in flight; the rows published meanwhile go in the next.
  const deleter = createCoalescer<string, void>({
    runBatch: async (ids) => {
      await deleteOutboxRows(o.db, ids);
      return ids.map(() => undefined);
    },
    maxBatch: 2000,
    maxInFlight: 1,
  });

  const sendHanded = async (entries: OutboxEntry[]) => {
    try {
      const results = await Promise.allSettled(entries.map((e) => publishEntry(o.publisher, e)));
      const published = entries.filter((_, i) => results[i]!.status === "fulfilled");
      // A row whose delete fails stays for a pass to publish again (a duplicate the queue drops).
      await Promise.all(published.map((e) => deleter.run(e.id)));
      const failure = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
      if (failure) throw failure.reason;
      outage.ok();
    } catch (err) {
      outage.failed(err);
      quietUntil = Date.now() + intervalMs;
    } finally {
      for (const e of entries) direct.delete(e.id);
    }
  };

  const pass = async () => {
    for (;;) {
      const published = await drainOutbox(o.db, batch, async (entries) => {
        const mine = entries.filter((e) => !direct.has(e.id));
        await Promise.all(mine.map((e) => publishEntry(o.publisher, e)));
        return mine;
      });
      // Counted by what it published, not what it read: rows still being sent
      // directly would otherwise fill every batch and keep the pass spinning.
      if (published < batch) return;
    }
  };
  // After a failed publish, commits do not publish (under load that would
  // retry without pause against a queue that is down); the timer's pass retries.
  let quietUntil = 0;
  // On the timer only; a pass still running when it fires is not overlapped.
  const run = () => {
    if (stopped || running) return;
    running = true;
    current = (async () => {
      try {
        // The publisher recreates a vanished stream; an unreachable queue
        // leaves the rows for the next pass.
        await pass();
        outage.ok();
        quietUntil = 0;
      } catch (err) {
        outage.failed(err);
        quietUntil = Date.now() + intervalMs;
      } finally {
        running = false;
      }
    })();
  };
  const timer = setInterval(run, intervalMs);
  timer.unref();
  run();
  return {
    wake(committed) {
      if (stopped || committed.length === 0 || Date.now() < quietUntil) return;
      for (const e of committed) direct.add(e.id);
      // The creates of one batch commit together: their rows go out together.
      if (handed.length === 0) {
        setImmediate(() => {
          const entries = handed;
          handed = [];
          const p = sendHanded(entries).finally(() => sending.delete(p));
          sending.add(p);
        });
      }
      handed.push(...committed);
    },
    async stop() {
      stopped = true;
      clearInterval(timer);
      await Promise.all([current, ...sending]);
    },
  };
}

/**
 * One outbox row to the queue, its call's context (request id, trace) in the
 * message's headers; a traced call's message is sent in a producer span of
 * this relay when tracing is on here.
 */
async function publishEntry(publisher: TaskPublisher, e: OutboxEntry): Promise<void> {
  const carrier = parseCallContext(e.callContext);
  if (carrier?.["traceparent"] === undefined || !tracingEnabled()) return publisher.publish(e.taskId, e.msgId, carrier);
  const parent = contextFrom(carrier);
  const span = tracer().startSpan(
    "task publish",
    { kind: SpanKind.PRODUCER, attributes: { "messaging.system": "nats", "modeldeploy.task_id": e.taskId } },
    parent,
  );
  try {
    await publisher.publish(e.taskId, e.msgId, { ...carrier, ...carrierOf(otelTrace.setSpan(parent, span)) });
  } catch (err) {
    spanFailed(span, err);
    throw err;
  } finally {
    span.end();
  }
}
