// What the gateway counts per deployment for the rollout controller and the
// autoscaler: arrivals, requests in flight and their time-integral, and per
// revision the requests answered and how many failed. Plain fields updated in
// place: the hot path allocates nothing (a revision's record once, at its first request).
import type { DeploymentTraffic, RevisionTraffic } from "../driver.js";

export class DeploymentCounts {
  arrivals = 0;
  inFlight = 0;
  /** ∫ inFlight dt up to `since`, in request·milliseconds. */
  private integralMs = 0;
  private since = performance.now();
  private readonly byRevision = new Map<number, RevisionTraffic>();

  /** A request reached one of the deployment's endpoints (it is in flight until end()). */
  arrive(): void {
    this.settle();
    this.arrivals++;
    this.inFlight++;
  }

  /**
   * The request is over. `answered`: it counts for `revision` (a client that
   * went away before its answer counts for none); `failed`: as a failure.
   */
  end(revision: number, answered: boolean, failed: boolean): void {
    this.settle();
    this.inFlight--;
    if (!answered || revision <= 0) return;
    let r = this.byRevision.get(revision);
    if (!r) this.byRevision.set(revision, (r = { revision, requests: 0, failures: 0 }));
    r.requests++;
    if (failed) r.failures++;
  }

  /** The counts now; `listed` revisions appear even before their first request. */
  snapshot(deploymentUid: string, epoch: string, listed: readonly number[]): DeploymentTraffic {
    this.settle();
    const numbers = new Set([...this.byRevision.keys(), ...listed]);
    return {
      deploymentUid,
      epoch,
      inFlight: this.inFlight,
      inFlightSeconds: this.integralMs / 1000,
      arrivals: this.arrivals,
      revisions: [...numbers]
        .sort((a, b) => a - b)
        .map((n) => {
          const r = this.byRevision.get(n);
          return { revision: n, requests: r?.requests ?? 0, failures: r?.failures ?? 0 };
        }),
    };
  }

  /** Adds the time since the last change at the in-flight count that held during it. */
  private settle(): void {
    const now = performance.now();
    this.integralMs += this.inFlight * (now - this.since);
    this.since = now;
  }
}
