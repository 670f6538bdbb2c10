// "Rapid reset" (CVE-2023-44487): a client opens streams and resets them at
// once, as fast as it can; each costs the server a handler start and an
// abort, while the client spends almost nothing. nghttp2's own rate limit did
// not stop it here (measured: 3,000 streams opened and reset on one
// connection all reached handlers). So each connection gets a budget of
// streams it may abandon (reset before their response is complete): a burst
// of `limit`, refilled at limit/10 per second. Past it the connection is closed.

export class ResetBudget {
  private tokens: number;
  private last = performance.now();

  constructor(private readonly limit: number) {
    this.tokens = limit;
  }

  /** Spend one reset; false once the budget is exhausted. */
  take(): boolean {
    const now = performance.now();
    this.tokens = Math.min(this.limit, this.tokens + ((now - this.last) / 1000) * (this.limit / 10));
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

export function tooManyResets(limit: number): string {
  return `too many streams reset (limit ${limit} per connection, refilled ${limit / 10}/s)`;
}
