// When to try a failed step again: capped exponential backoff with jitter, so
// that workers retrying the same unreachable host do not do so in lockstep.

export interface RetryPolicy {
  /** Delay before the second try. */
  initialMs: number;
  /** No delay grows past this. */
  maxMs: number;
  factor: number;
  /** Each delay is spread uniformly over ±jitter of itself (0 ≤ jitter < 1). */
  jitter: number;
  /** Tries in all, for a step with no deadline to end its retries. */
  maxTries: number;
}

/** Downloads: 1 s, 2 s, 4 s … up to 30 s between tries; the task's progress deadline usually ends them. */
export const DOWNLOAD_RETRY: RetryPolicy = { initialMs: 1_000, maxMs: 30_000, factor: 2, jitter: 0.2, maxTries: 20 };

/**
 * The delay after the `failures`-th failed try (1 = the first), before the
 * next one. `random` returns a number in [0, 1): Math.random, or a fixed
 * value in tests.
 */
export function retryDelayMs(failures: number, policy: RetryPolicy, random: () => number = Math.random): number {
  const base = Math.min(policy.maxMs, policy.initialMs * policy.factor ** Math.max(0, failures - 1));
  const spread = base * policy.jitter * (2 * random() - 1);
  return Math.max(0, Math.round(Math.min(policy.maxMs, base + spread)));
}
