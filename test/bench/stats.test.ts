import { describe, expect, it } from "vitest";
import { median, percentile, ratio } from "../../src/bench/stats.js";
import { alternate, medianOf } from "../../src/bench/pairs.js";

describe("bench stats", () => {
  it("median of odd and even counts, NaN for none", () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([])).toBeNaN();
  });

  it("percentile by nearest rank, counting never-delivered samples", () => {
    const xs = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(xs, 50)).toBe(50);
    expect(percentile(xs, 99)).toBe(99);
    expect(percentile(xs, 100)).toBe(100);
    expect(percentile([5], 99)).toBe(5);
    expect(percentile([...xs.slice(0, 98), Infinity, Infinity], 99)).toBe(Infinity);
  });

  it("ratio is NaN without a usable baseline", () => {
    expect(ratio(90, 100)).toBeCloseTo(0.9);
    expect(ratio(1, 0)).toBeNaN();
    expect(ratio(NaN, 1)).toBeNaN();
    expect(ratio(Infinity, 2)).toBe(Infinity);
  });

  it("alternates figure and baseline, then takes medians", async () => {
    const order: string[] = [];
    const s = await alternate(
      3,
      async (i) => (order.push(`f${i}`), i * 10),
      async (i) => (order.push(`b${i}`), { rate: i }),
    );
    expect(order).toEqual(["f0", "b0", "f1", "b1", "f2", "b2"]);
    expect(median(s.figure)).toBe(10);
    expect(medianOf(s.baseline, (b) => b.rate)).toBe(1);
  });
});
