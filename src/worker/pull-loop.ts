// Pulls task messages in batches and runs each as it arrives, at most
// `concurrency` at once. One pull request asks for as many messages as there
// are free slots; while tasks run, a new one waits until `minPull` slots are
// free (at most `gatherMs`), so a busy worker pays one pull per batch rather
// than one per message, long tasks leave no slot idle for long, and an idle
// worker always has a request waiting at the server (a new message starts at
// once).
import type { JsMsg } from "@nats-io/jetstream";
import type { Logger } from "../log.js";
import { createOutageLog } from "../queue/outage-log.js";
import type { TaskQueue } from "../queue/task-queue.js";

export interface PullLoopOptions {
  queue: Pick<TaskQueue, "pull">;
  concurrency: number;
  minPull: number;
  /** Longest wait for `minPull` free slots once one is free. */
  gatherMs: number;
  /** How long one pull request waits at the server. */
  expiresMs: number;
  logger: Logger;
  /** Runs one message to its outcome; never rejects. */
  run(msg: JsMsg): Promise<void>;
  /** A message that arrived after stop() began: handed back to the queue at once. */
  refuse(msg: JsMsg): void;
}

export interface PullLoop {
  /** Messages being run now. */
  running(): number;
  /** Stops pulling; resolves once the last pull ended and every message taken was run. */
  stop(): Promise<void>;
  /** Ends a pull that waits at the server now (a shutdown past its grace period). */
  abortPulls(): void;
}

export function startPullLoop(o: PullLoopOptions): PullLoop {
  let stopping = false;
  const pulls = new AbortController();
  const running = new Set<Promise<void>>();
  let wake: (() => void) | undefined;
  const changed = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  /** Resolves when a run ends or stop() begins, or after `ms`. */
  const changes = (ms?: number) =>
    new Promise<void>((resolve) => {
      const timer = ms === undefined ? undefined : setTimeout(() => changed(), ms);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  const outage = createOutageLog(o.logger, "pulling tasks");

  const start = (msg: JsMsg) => {
    const p: Promise<void> = o
      .run(msg)
      .catch((err: unknown) => o.logger.error("task message run failed", { err }))
      .finally(() => {
        running.delete(p);
        changed();
      });
    running.add(p);
  };

  const loop = async () => {
    while (!stopping) {
      if (running.size >= o.concurrency) {
        await changes();
        continue;
      }
      const enough = Math.min(o.minPull, o.concurrency);
      if (running.size > 0 && o.concurrency - running.size < enough) {
        const until = Date.now() + o.gatherMs;
        while (!stopping && o.concurrency - running.size < enough && Date.now() < until) await changes(until - Date.now());
        if (stopping || running.size >= o.concurrency) continue;
      }
      const free = o.concurrency - running.size;
      // One loop pulls for every slot: a pull that outlives its expiry by far
      // (a server that went away mid-pull) is ended here, never waited on.
      const pull = new AbortController();
      const endPull = () => pull.abort();
      pulls.signal.addEventListener("abort", endPull, { once: true });
      const overdue = setTimeout(endPull, 2 * o.expiresMs + 5000);
      try {
        // The queue recreates a vanished stream or consumer; every pull is a
        // new request, so one that missed its heartbeats is simply replaced.
        for await (const msg of o.queue.pull(free, o.expiresMs, pull.signal)) {
          if (stopping) o.refuse(msg);
          else start(msg);
        }
        outage.ok();
      } catch (err) {
        if (stopping) return;
        outage.failed(err);
        await sleep(1000, pulls.signal);
      } finally {
        clearTimeout(overdue);
        pulls.signal.removeEventListener("abort", endPull);
      }
    }
  };
  const looping = loop();

  return {
    running: () => running.size,
    async stop() {
      stopping = true;
      changed();
      await looping;
      while (running.size > 0) await Promise.all([...running]);
    },
    abortPulls: () => pulls.abort(),
  };
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
