// Publishes outbox rows to JetStream. Woken right after a commit for low
// latency, and on a timer so that rows left by a crash are never stranded.
import type { Db } from "../db/connect.js";
import { drainOutbox, type OutboxEntry } from "../db/outbox.js";
import type { Logger } from "../log.js";
import { parseCallContext } from "../telemetry/call-context.js";
import { carrierOf, contextFrom, otelTrace, spanFailed, SpanKind, tracer, tracingEnabled } from "../telemetry/tracing.js";
import { createOutageLog } from "./outage-log.js";
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
  const outage = createOutageLog(o.logger, "outbox relay pass");

  const pass = async () => {
    for (;;) {
      const n = await drainOutbox(o.db, batch, async (entries) => {
        await Promise.all(entries.map((e) => publishEntry(o.publisher, e)));
      });
      if (n < batch) return;
    }
  };
  // After a failed pass, commits do not wake the relay (under load that would
  // retry without pause against a queue that is down); the timer retries.
  let quietUntil = 0;
  const run = (fromTimer: boolean) => {
    if (stopped || (!fromTimer && Date.now() < quietUntil)) return;
    if (running) {
      again = true;
      return;
    }
    running = true;
    // Woken from a call's commit, the pass still runs for no call (o.db, not
    // dbForCall): it serves every call, and must not end when that one completes.
    current = (async () => {
      do {
        again = false;
        try {
          // The publisher recreates a vanished stream; an unreachable queue
          // leaves the rows for the next pass.
          await pass();
          outage.ok();
          quietUntil = 0;
        } catch (err) {
          outage.failed(err);
          quietUntil = Date.now() + intervalMs;
          break;
        }
      } while (again && !stopped);
      running = false;
    })();
  };
  const timer = setInterval(() => run(true), intervalMs);
  timer.unref();
  run(true);
  return {
    wake: () => run(false),
    async stop() {
      stopped = true;
      clearInterval(timer);
      await current;
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
