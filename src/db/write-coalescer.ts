// Group commit in the application: writes that arrive while earlier ones are
// in flight are joined into one statement, so N concurrent creates cost one
// round trip, one plan and one WAL flush instead of N. A lone write goes out
// at once (no timer, no added latency when idle).

export interface WriteCoalescer<I, O> {
  write(item: I): Promise<O>;
}

export interface WriteCoalescerOptions<I, O> {
  /** Writes a batch; returns one result per item, in order. */
  writeBatch(items: I[]): Promise<O[]>;
  /** Most items in one statement. */
  maxBatch: number;
  /** Statements in flight at once (each holds a pooled connection). */
  maxInFlight: number;
}

export function createWriteCoalescer<I, O>(o: WriteCoalescerOptions<I, O>): WriteCoalescer<I, O> {
  type Waiter = { item: I; resolve: (v: O) => void; reject: (e: unknown) => void };
  let queue: Waiter[] = [];
  let inFlight = 0;

  const settleAlone = (w: Waiter) => {
    o.writeBatch([w.item]).then(([r]) => w.resolve(r!), w.reject);
  };

  const flush = () => {
    while (inFlight < o.maxInFlight && queue.length > 0) {
      const batch = queue.slice(0, o.maxBatch);
      queue = queue.slice(batch.length);
      inFlight++;
      o.writeBatch(batch.map((w) => w.item)).then(
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
      ).catch((err: unknown) => batch.forEach((w) => w.reject(err))).finally(() => {
        inFlight--;
        flush();
      });
    }
  };

  return {
    write(item) {
      return new Promise<O>((resolve, reject) => {
        queue.push({ item, resolve, reject });
        flush();
      });
    },
  };
}
