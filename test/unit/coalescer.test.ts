// The coalescer alone, with a batch writer the test controls: which items go
// out together, in what order, and what one bad item does to its neighbours.
import { describe, expect, it } from "vitest";
import { createCoalescer } from "../../src/db/coalescer.js";

/** A batch writer whose batches finish when the test says so. */
function controlledWriter(fail: (item: number) => boolean = () => false) {
  const batches: number[][] = [];
  const finishers: Array<() => void> = [];
  const runBatch = (items: number[]) => {
    batches.push([...items]);
    return new Promise<string[]>((resolve, reject) => {
      finishers.push(() => {
        const bad = items.find(fail);
        if (bad !== undefined) reject(new Error(`item ${bad} is bad`));
        else resolve(items.map((i) => `done ${i}`));
      });
    });
  };
  return { batches, runBatch, finishNext: () => finishers.shift()!() };
}

const flushMicrotasks = () => new Promise<void>((r) => setImmediate(r));

/** Item 1 alone, then 2, 3 and 4 together in a batch that fails on 3 once finished; results are values or error messages. */
async function failingBatch(mode: "write" | "read") {
  const w = controlledWriter((i) => i === 3);
  const c = createCoalescer({ runBatch: w.runBatch, maxBatch: 10, maxInFlight: 1, mode });
  const first = c.run(1);
  const results = [2, 3, 4].map((i) =>
    c.run(i).then(
      (v) => v,
      (e: Error) => e.message,
    ),
  );
  w.finishNext();
  await first;
  await flushMicrotasks();
  return { w, results };
}

describe("coalescer", () => {
  it("sends a lone write at once and joins the writes that arrive meanwhile", async () => {
    const w = controlledWriter();
    const c = createCoalescer({ runBatch: w.runBatch, maxBatch: 3, maxInFlight: 1 });
    const first = c.run(1);
    expect(w.batches).toEqual([[1]]);
    const rest = [2, 3, 4, 5].map((i) => c.run(i));
    expect(w.batches).toEqual([[1]]); // one in flight: the others wait
    w.finishNext();
    expect(await first).toBe("done 1");
    await flushMicrotasks();
    expect(w.batches).toEqual([[1], [2, 3, 4]]); // at most maxBatch together
    w.finishNext();
    await flushMicrotasks();
    expect(w.batches).toEqual([[1], [2, 3, 4], [5]]);
    w.finishNext();
    expect(await Promise.all(rest)).toEqual(["done 2", "done 3", "done 4", "done 5"]);
  });

  it("keeps maxInFlight batches going at once", async () => {
    const w = controlledWriter();
    const c = createCoalescer({ runBatch: w.runBatch, maxBatch: 10, maxInFlight: 2 });
    const all = [1, 2, 3, 4].map((i) => c.run(i));
    expect(w.batches).toEqual([[1], [2]]);
    w.finishNext();
    await flushMicrotasks();
    expect(w.batches).toEqual([[1], [2], [3, 4]]);
    w.finishNext();
    w.finishNext();
    expect(await Promise.all(all)).toEqual(["done 1", "done 2", "done 3", "done 4"]);
  });

  it("writes each item of a failed batch alone, so only the bad one fails", async () => {
    const { w, results } = await failingBatch("write");
    expect(w.batches).toEqual([[1], [2, 3, 4]]);
    w.finishNext(); // the batch fails on 3
    await flushMicrotasks();
    expect(w.batches.slice(2)).toEqual([[2], [3], [4]]);
    w.finishNext();
    w.finishNext();
    w.finishNext();
    expect(await Promise.all(results)).toEqual(["done 2", "item 3 is bad", "done 4"]);
  });

  it("rejects every item when a batch returns the wrong number of results", async () => {
    const c = createCoalescer<number, string>({ runBatch: async () => ["only one"], maxBatch: 10, maxInFlight: 1 });
    const blocker = c.run(0);
    const results = [1, 2].map((i) =>
      c.run(i).then(
        (v) => v,
        (e: Error) => e.message,
      ),
    );
    expect(await blocker).toBe("only one");
    expect(await Promise.all(results)).toEqual(["batch of 2 returned 1 results", "batch of 2 returned 1 results"]);
  });

  it("drops a waiting write whose call gave up", async () => {
    const w = controlledWriter();
    const c = createCoalescer({ runBatch: (items: number[]) => w.runBatch(items), maxBatch: 10, maxInFlight: 1 });
    const call = (signal: AbortSignal, i: number) => c.run(i, { signal });
    const first = call(new AbortController().signal, 1);
    const gone = new AbortController();
    const dropped = [2, 3].map((i) =>
      call(gone.signal, i).then(
        (v) => v,
        (e: unknown) => e,
      ),
    );
    const kept = call(new AbortController().signal, 4);
    gone.abort(new Error("cancelled"));
    expect((await Promise.all(dropped)).map((e) => (e as Error).message)).toEqual(["cancelled", "cancelled"]);
    w.finishNext();
    await first;
    await flushMicrotasks();
    expect(w.batches).toEqual([[1], [4]]);
    w.finishNext();
    expect(await kept).toBe("done 4");
  });

  it("read mode: a failed batch fails all its reads, none is run again", async () => {
    const { w, results } = await failingBatch("read");
    w.finishNext();
    expect(await Promise.all(results)).toEqual(["item 3 is bad", "item 3 is bad", "item 3 is bad"]);
    expect(w.batches).toEqual([[1], [2, 3, 4]]);
  });

  it("read mode: a read whose call gives up while its batch runs is answered at once, its neighbours later", async () => {
    const w = controlledWriter();
    const c = createCoalescer({ runBatch: (items: number[]) => w.runBatch(items), maxBatch: 10, maxInFlight: 1, mode: "read" });
    const gone = new AbortController();
    const left = c.run(1, { signal: gone.signal }).then(
      (v) => v,
      (e: unknown) => (e as Error).message,
    );
    const stays = c.run(2, { signal: new AbortController().signal });
    expect(w.batches).toEqual([[1]]);
    gone.abort(new Error("deadline"));
    expect(await left).toBe("deadline");
    w.finishNext();
    await flushMicrotasks();
    expect(w.batches).toEqual([[1], [2]]);
    w.finishNext();
    expect(await stays).toBe("done 2");
  });

  it("fails an item that waited maxWait for a batch, and leaves it out of the next one", async () => {
    const w = controlledWriter();
    const c = createCoalescer({
      runBatch: (items: number[]) => w.runBatch(items),
      maxBatch: 10,
      maxInFlight: 1,
      mode: "read",
      maxWait: { ms: 20, error: (ms) => new Error(`no batch within ${ms} ms`) },
    });
    const first = c.run(1);
    const late = c.run(2).then(
      (v) => v,
      (e: Error) => e.message,
    );
    expect(await late).toBe("no batch within 20 ms");
    const next = c.run(3);
    w.finishNext();
    expect(await first).toBe("done 1");
    await flushMicrotasks();
    expect(w.batches).toEqual([[1], [3]]);
    w.finishNext();
    expect(await next).toBe("done 3");
  });
});
