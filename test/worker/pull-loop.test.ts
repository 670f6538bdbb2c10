// The pull loop alone, with a queue the test feeds: one pull asks for as many
// messages as there are free slots, no more than `concurrency` run at once, a
// busy loop waits for `minPull` free slots before it asks again, and messages
// that arrive after stop() are handed back.
import type { JsMsg } from "@nats-io/jetstream";
import { describe, expect, it } from "vitest";
import { silentLogger } from "../../src/log.js";
import { startPullLoop } from "../../src/worker/pull-loop.js";

interface Pull {
  max: number;
  deliver(n: number): void;
  end(): void;
}

/** A queue whose pulls the test answers: each pull is recorded, then fed. */
function fedQueue() {
  const pulls: Pull[] = [];
  let waiting: ((p: Pull) => void) | undefined;
  let seq = 0;
  const queue = {
    pull(max: number, _expiresMs: number, signal?: AbortSignal): AsyncIterable<JsMsg> {
      const items: JsMsg[] = [];
      let ended = false;
      let wake: (() => void) | undefined;
      const poke = () => {
        wake?.();
        wake = undefined;
      };
      const pull: Pull = {
        max,
        deliver(n) {
          for (let i = 0; i < n; i++) items.push({ seq: ++seq } as JsMsg);
          poke();
        },
        end() {
          ended = true;
          poke();
        },
      };
      signal?.addEventListener("abort", () => pull.end(), { once: true });
      pulls.push(pull);
      waiting?.(pull);
      return (async function* () {
        for (;;) {
          const m = items.shift();
          if (m) yield m;
          else if (ended) return;
          else await new Promise<void>((r) => (wake = r));
        }
      })();
    },
  };
  return {
    queue,
    pulls,
    /** The next pull request (or the last one, if it has not been answered yet). */
    async nextPull(after: number): Promise<Pull> {
      if (pulls.length > after) return pulls[after]!;
      return new Promise((r) => (waiting = r));
    },
  };
}

/** Runs that finish when the test says so. */
function heldRuns() {
  const started: number[] = [];
  const finish = new Map<number, () => void>();
  return {
    started,
    run: (msg: JsMsg) => {
      started.push(msg.seq);
      return new Promise<void>((r) => finish.set(msg.seq, r));
    },
    finish(seqs: number[]) {
      for (const s of seqs) finish.get(s)!();
    },
  };
}

const settle = () => new Promise<void>((r) => setImmediate(r));

describe("pull loop", () => {
  it("asks for as many messages as there are free slots, and runs each as it arrives", async () => {
    const q = fedQueue();
    const runs = heldRuns();
    const refused: number[] = [];
    const loop = startPullLoop({
      queue: q.queue,
      concurrency: 8,
      minPull: 4,
      gatherMs: 3_600_000,
      expiresMs: 1000,
      logger: silentLogger,
      run: runs.run,
      refuse: (m) => refused.push(m.seq),
    });

    const first = await q.nextPull(0);
    expect(first.max).toBe(8);
    first.deliver(3);
    await settle();
    expect(runs.started).toEqual([1, 2, 3]);
    first.deliver(5);
    await settle();
    expect(loop.running()).toBe(8);
    first.end();
    await settle();
    // Full: no pull until minPull (4) slots are free.
    expect(q.pulls).toHaveLength(1);
    runs.finish([1, 2, 3]);
    await settle();
    expect(q.pulls).toHaveLength(1);
    runs.finish([4]);
    const second = await q.nextPull(1);
    expect(second.max).toBe(4);

    // Stopping: the pull in flight may still deliver; those go back to the queue.
    const stopped = loop.stop();
    second.deliver(2);
    second.end();
    await settle();
    expect(refused).toEqual([9, 10]);
    runs.finish([5, 6, 7, 8]);
    await stopped;
    expect(runs.started).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it("asks for fewer than minPull once gatherMs has passed, so long tasks leave no slot idle", async () => {
    const q = fedQueue();
    const runs = heldRuns();
    const loop = startPullLoop({
      queue: q.queue,
      concurrency: 4,
      minPull: 4,
      gatherMs: 1,
      expiresMs: 1000,
      logger: silentLogger,
      run: runs.run,
      refuse: () => {},
    });
    const first = await q.nextPull(0);
    first.deliver(4);
    first.end();
    await settle();
    expect(loop.running()).toBe(4);
    runs.finish([2]);
    const second = await q.nextPull(1);
    expect(second.max).toBe(1);
    const stopped = loop.stop();
    second.end();
    runs.finish([1, 3, 4]);
    await stopped;
  });

  it("keeps a pull waiting while idle, so a new message starts at once", async () => {
    const q = fedQueue();
    const runs = heldRuns();
    const loop = startPullLoop({
      queue: q.queue,
      concurrency: 4,
      minPull: 4,
      gatherMs: 3_600_000,
      expiresMs: 1000,
      logger: silentLogger,
      run: runs.run,
      refuse: () => {},
    });
    const first = await q.nextPull(0);
    first.end(); // expired with nothing
    const second = await q.nextPull(1);
    expect(second.max).toBe(4);
    second.deliver(1);
    await settle();
    expect(runs.started).toEqual([1]);
    runs.finish([1]);
    const stopped = loop.stop();
    second.end();
    await stopped;
  });
});
