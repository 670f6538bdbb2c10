// Group commit in the application: statements that arrive while earlier ones
// are in flight are joined into one, so N concurrent creates (or reads) cost
// one round trip, one plan and, for writes, one WAL flush instead of N. A
// lone item goes out at once (no timer, no added latency when idle).
//
// An item that waits for the next batch leaves the queue when the call it
// was made for is cancelled or its deadline passes (call-scope.ts). A write
// already in a batch is written: batches run for no call, and one caller
// giving up must not fail the writes of the others; deadlocks and
// serialization failures are retried per statement by the batch writers
// (conflict-retry.ts). A read ("read" mode) is answered no more: its call
// gets the abort at once, and a failed batch fails all its reads (a batch
// of reads fails for the database, never for one item).
import { watchAbort, type CallScope } from "./call-scope.js";

export interface Coalescer<I, O> {
  /** `call`: the call the item is for; while it waits, its abort takes it out. */
  run(item: I, call?: CallScope): Promise<O>;
}

export interface CoalescerOptions<I, O> {
  /** Runs a batch as one statement; returns one result per item, in order. */
  runBatch(items: I[]): Promise<O[]>;
  /** Most items in one statement. */
  maxBatch: number;
  /** Statements in flight at once (each holds a pooled connection). */
  maxInFlight: number;
  /** "write" (default): a failed batch is written again item by item, so only a bad item fails. "read": see above. */
  mode?: "write" | "read";
  /**
   * Longest wait for a place in a batch, and the error past it: the bound a
   * lone statement has in the pool's queue (pool-gate.ts), which a batch
   * held by a hung database would otherwise lift. Unset: no bound.
   */
  maxWait?: { ms: number; error: (ms: number) => Error };
}

interface Waiter<I, O> {
  item: I;
  resolve: (v: O) => void;
  reject: (e: unknown) => void;
  /** The call gave up: skip it (waiting) or ignore its result (a read in flight). */
  gone: boolean;
  /** Stops watching the call's abort. */
  unwatch?: () => void;
  /** Ends the wait at maxWait. */
  expiry?: NodeJS.Timeout;
}

export function createCoalescer<I, O>(o: CoalescerOptions<I, O>): Coalescer<I, O> {
  const reads = o.mode === "read";
  let queue: Array<Waiter<I, O>> = [];
  let inFlight = 0;

  const settleAlone = (w: Waiter<I, O>) => {
    o.runBatch([w.item]).then(([r]) => w.resolve(r!), w.reject);
  };

  const takeBatch = (): Array<Waiter<I, O>> => {
    queue = queue.filter((w) => !w.gone);
    const batch = queue.slice(0, o.maxBatch);
    queue = queue.slice(batch.length);
    for (const w of batch) clearTimeout(w.expiry);
    // A write in a batch no longer listens to its call; a read does, until answered.
    if (!reads) for (const w of batch) w.unwatch?.();
    return batch;
  };

  const flush = () => {
    while (inFlight < o.maxInFlight && queue.length > 0) {
      const batch = takeBatch();
      if (batch.length === 0) return;
      inFlight++;
      o.runBatch(batch.map((w) => w.item))
        .then(
          (results) => {
            if (results.length !== batch.length) throw new Error(`batch of ${batch.length} returned ${results.length} results`);
            batch.forEach((w, i) => w.resolve(results[i]!));
          },
          (err: unknown) => {
            // One bad write must not fail its neighbours: each is written again
            // alone and gets its own outcome (and error).
            if (batch.length === 1 || reads) batch.forEach((w) => w.reject(err));
            else batch.forEach(settleAlone);
          },
        )
        .catch((err: unknown) => batch.forEach((w) => w.reject(err)))
        .finally(() => {
          if (reads) for (const w of batch) w.unwatch?.();
          inFlight--;
          flush();
        });
    }
  };

  return {
    run(item, call) {
      return new Promise<O>((resolve, reject) => {
        const w: Waiter<I, O> = { item, resolve, reject, gone: false };
        // Every statement slot is taken: it waits for a later batch.
        const waits = inFlight >= o.maxInFlight;
        if (call !== undefined && (reads || waits)) {
          // Only now is the call worth watching (watchAbort makes no signal where the call offers onAbort).
          let gone = false;
          const unwatch = watchAbort(call, (reason) => {
            gone = w.gone = true;
            clearTimeout(w.expiry);
            reject(reason);
          });
          // Aborted already: never queued.
          if (gone) return;
          w.unwatch = unwatch;
        }
        const maxWait = o.maxWait;
        if (waits && maxWait !== undefined) {
          w.expiry = setTimeout(() => {
            w.gone = true;
            w.unwatch?.();
            reject(maxWait.error(maxWait.ms));
          }, maxWait.ms);
        }
        queue.push(w);
        flush();
      });
    },
  };
}
