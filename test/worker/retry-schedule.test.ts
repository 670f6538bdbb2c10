import { describe, expect, it } from "vitest";
import { DOWNLOAD_RETRY, retryDelayMs, type RetryPolicy } from "../../src/worker/retry-schedule.js";

const policy: RetryPolicy = { initialMs: 1_000, maxMs: 30_000, factor: 2, jitter: 0.2, maxTries: 20 };
const middle = () => 0.5; // no jitter
const low = () => 0; // the most jitter takes off
const high = () => 0.999999; // the most jitter adds

describe("retryDelayMs", () => {
  it("doubles from the initial delay up to the cap", () => {
    expect([1, 2, 3, 4, 5, 6, 7, 8].map((n) => retryDelayMs(n, policy, middle))).toEqual([1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000]);
  });

  it("spreads each delay over ±jitter, never past the cap", () => {
    expect(retryDelayMs(1, policy, low)).toBe(800);
    expect(retryDelayMs(1, policy, high)).toBe(1_200);
    expect(retryDelayMs(3, policy, low)).toBe(3_200);
    expect(retryDelayMs(3, policy, high)).toBe(4_800);
    expect(retryDelayMs(6, policy, low)).toBe(24_000);
    expect(retryDelayMs(6, policy, high)).toBe(30_000);
  });

  it("does not overflow after many failures", () => {
    expect(retryDelayMs(10_000, policy, middle)).toBe(30_000);
  });

  it("treats a count below 1 as the first failure", () => {
    expect(retryDelayMs(0, policy, middle)).toBe(1_000);
  });

  it("lets a short progress deadline end the downloads' retries after a few tries", () => {
    // Tries start at 0 s, ~1 s, ~3 s: a 4 s deadline sees three, not dozens.
    const starts = [0];
    for (let n = 1; n < 10; n++) {
      const next = starts[n - 1]! + retryDelayMs(n, DOWNLOAD_RETRY, high);
      if (next >= 4_000) break;
      starts.push(next);
    }
    expect(starts.length).toBeLessThanOrEqual(3);
  });
});
