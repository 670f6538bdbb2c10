// The gateway's side of each deployment's traffic: which revision a request
// goes to (by weight during a split, with a fallback to a share that can
// serve), and the counts kept per deployment since this runtime started.
import { randomUUID } from "node:crypto";
import type { DeploymentTraffic } from "../driver.js";
import type { Revision } from "./revision.js";
import type { Route } from "./routes.js";
import { DeploymentCounts } from "./traffic-counts.js";
import { pickShare } from "./traffic-split.js";

export class TrafficBook {
  /** Counts start again from 0 with every runtime: consumers tell by the epoch. */
  readonly epoch = randomUUID();
  private readonly counts = new Map<string, DeploymentCounts>();

  constructor(private readonly revisionOf: (uid: string, revision: number) => Revision | undefined) {}

  countsOf(uid: string): DeploymentCounts {
    let counts = this.counts.get(uid);
    if (!counts) this.counts.set(uid, (counts = new DeploymentCounts()));
    return counts;
  }

  /** The revision a request goes to: a share by weight; if that one has no ready replica, another share's that has one. */
  choose(route: Route): number {
    const shares = route.shares;
    if (!shares) return route.revision;
    const picked = pickShare(shares, Math.random());
    if (!picked) return route.revision;
    const uid = route.deploymentUid;
    if (this.revisionOf(uid, picked.revision)?.hasReadyReplica()) return picked.revision;
    for (const s of shares) {
      if (s !== picked && s.percent > 0 && this.revisionOf(uid, s.revision)?.hasReadyReplica()) return s.revision;
    }
    return picked.revision;
  }

  /** The route's counts; the revisions it sends traffic to are listed even before their first request. */
  stats(route: Route): DeploymentTraffic {
    const listed = route.shares ? route.shares.map((s) => s.revision) : [route.revision];
    return this.countsOf(route.deploymentUid).snapshot(route.deploymentUid, this.epoch, listed);
  }

  forget(uid: string): void {
    this.counts.delete(uid);
  }
}
