// Pulls task messages in batches and runs each as it arrives, at most
// `concurrency` at once. One pull request asks for as many messages as there
// are free slots; while tasks run, a new one waits until `minPull` slots are
// free, so a busy worker pays one pull per batch rather than one per message,
// and an idle one always has a request waiting at the server (a new message
// starts at once).
import type { JsMsg } from "@nats-io/jetstream";
import type { Logger } from "../log.js";
import { createOutageLog } from "../queue/outage-log.js";
import type { TaskQueue } from "../queue/task-queue.js";

export interface PullLoopOptions {
  queue: Pick<TaskQueue, "pull">;
  concurrency: number;
  minPull: number;
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
      const free = o.concurrency - running.size;
      if (free < (running.size === 0 ? 1 : Math.min(o.minPull, o.concurrency))) {
        await new Promise<void>((r) => (wake = r));
        continue;
      }
      try {
        // The queue recreates a vanished stream or consumer; every pull is a
        // new request, so one that missed its heartbeats is simply replaced.
        for await (const msg of o.queue.pull(free, o.expiresMs, pulls.signal)) {
          if (stopping) o.refuse(msg);
          else start(msg);
        }
        outage.ok();
      } catch (err) {
        if (stopping) return;
        outage.failed(err);
        await sleep(1000, pulls.signal);
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
