// Group commit in the application: writes that arrive while earlier ones are
// in flight are joined into one statement, so N concurrent creates cost one
// round trip, one plan and one WAL flush instead of N. A lone write goes out
// at once (no timer, no added latency when idle).
//
// A write that waits for the next batch leaves the queue when the call it was
// made for is cancelled or its deadline passes (call-scope.ts); once in a
// batch it is written. Batches run for no call: one caller giving up must not
// fail the writes of the others. Deadlocks and serialization failures are retried
// per statement by the batch writers (conflict-retry.ts).
import { watchAbort, type CallScope } from "./call-scope.js";

export interface WriteCoalescer<I, O> {
  /** `call`: the call the write is made for; while the write waits, its abort takes it out. */
  write(item: I, call?: CallScope): Promise<O>;
}

export interface WriteCoalescerOptions<I, O> {
  /** Writes a batch; returns one result per item, in order. */
  writeBatch(items: I[]): Promise<O[]>;
  /** Most items in one statement. */
  maxBatch: number;
  /** Statements in flight at once (each holds a pooled connection). */
  maxInFlight: number;
}

interface Waiter<I, O> {
  item: I;
  resolve: (v: O) => void;
  reject: (e: unknown) => void;
  /** The call gave up while this write waited: skip it. */
  gone: boolean;
  /** Stops watching the call's abort. */
  unwatch?: () => void;
}

export function createWriteCoalescer<I, O>(o: WriteCoalescerOptions<I, O>): WriteCoalescer<I, O> {
  let queue: Array<Waiter<I, O>> = [];
  let inFlight = 0;
  const writeBatch = (items: I[]) => o.writeBatch(items);

  const settleAlone = (w: Waiter<I, O>) => {
    writeBatch([w.item]).then(([r]) => w.resolve(r!), w.reject);
  };

  const takeBatch = (): Array<Waiter<I, O>> => {
    queue = queue.filter((w) => !w.gone);
    const batch = queue.slice(0, o.maxBatch);
    queue = queue.slice(batch.length);
    for (const w of batch) w.unwatch?.();
    return batch;
  };

  const flush = () => {
    while (inFlight < o.maxInFlight && queue.length > 0) {
      const batch = takeBatch();
      if (batch.length === 0) return;
      inFlight++;
      writeBatch(batch.map((w) => w.item))
        .then(
          (results) => {
            if (results.length !== batch.length) throw new Error(`batch of ${batch.length} returned ${results.length} results`);
            batch.forEach((w, i) => w.resolve(results[i]!));
          },
          (err: unknown) => {
            // One bad item must not fail its neighbours: each is written again
            // alone and gets its own outcome (and error).
            if (batch.length === 1) batch[0]!.reject(err);
            else batch.forEach(settleAlone);
          },
        )
        .catch((err: unknown) => batch.forEach((w) => w.reject(err)))
        .finally(() => {
          inFlight--;
          flush();
        });
    }
  };

  return {
    write(item, call) {
      return new Promise<O>((resolve, reject) => {
        const w: Waiter<I, O> = { item, resolve, reject, gone: false };
        if (inFlight >= o.maxInFlight && call !== undefined) {
          // It will wait: only now is the call worth watching (watchAbort makes no signal where the call offers onAbort).
          let gone = false;
          const unwatch = watchAbort(call, (reason) => {
            gone = w.gone = true;
            reject(reason);
          });
          // Aborted already: never queued.
          if (gone) return;
          w.unwatch = unwatch;
        }
        queue.push(w);
        flush();
      });
    },
  };
}
