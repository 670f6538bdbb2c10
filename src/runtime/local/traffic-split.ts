// A deployment's weighted split between revisions (a canary step): what a
// valid split is, and the per-request choice by weight.
import { RuntimeError, type RevisionSpec, type TrafficShare } from "../driver.js";
import type { Route } from "./routes.js";

/** The old revision, the new one, and one more (a canary replaced by another). */
export const MAX_SHARES = 3;

/**
 * Checks `shares` (1 to MAX_SHARES distinct revisions, integer percents
 * 0–100 adding up to 100, each revision `started`) and returns a copy of them;
 * throws INVALID_SPEC otherwise.
 */
export function validShares(shares: unknown, started: (revision: number) => boolean): TrafficShare[] {
  const invalid = (message: string) => new RuntimeError("INVALID_SPEC", `invalid traffic split: ${message}`);
  if (!Array.isArray(shares) || shares.length === 0 || shares.length > MAX_SHARES) {
    throw invalid(`give 1 to ${MAX_SHARES} shares`);
  }
  const out: TrafficShare[] = [];
  let total = 0;
  for (const s of shares as unknown[]) {
    const { revision, percent } = (typeof s === "object" && s !== null ? s : {}) as Partial<TrafficShare>;
    if (!Number.isSafeInteger(revision) || (revision as number) <= 0) throw invalid(`revision must be a positive integer, got ${String(revision)}`);
    if (!Number.isSafeInteger(percent) || (percent as number) < 0 || (percent as number) > 100) {
      throw invalid(`percent of revision ${revision} must be an integer from 0 to 100, got ${String(percent)}`);
    }
    if (out.some((o) => o.revision === revision)) throw invalid(`revision ${revision} appears twice`);
    if (!started(revision as number)) throw invalid(`revision ${revision} was never started on this runtime`);
    out.push({ revision: revision as number, percent: percent as number });
    total += percent as number;
  }
  if (total !== 100) throw invalid(`percents add up to ${total}, not 100`);
  return out;
}

/** The share a request goes to, by weight; `random` is uniform in [0, 1). */
export function pickShare(shares: readonly TrafficShare[], random: number): TrafficShare | undefined {
  let x = random * 100;
  let last: TrafficShare | undefined;
  for (const s of shares) {
    if (s.percent <= 0) continue;
    if (x < s.percent) return s;
    x -= s.percent;
    last = s;
  }
  // Only reached through rounding: the last share with any weight.
  return last;
}

/**
 * The route that puts `shares` (valid) in force for `spec`'s deployment. One
 * share of 100 is a plain switch. Otherwise the serving revision stays (on a
 * first route: the share not being rolled out with the most weight).
 */
export function routeOf(spec: RevisionSpec, shares: TrafficShare[], current: Route | undefined): Route {
  const base = { deploymentUid: spec.deploymentUid, workspace: spec.workspace, deploymentName: spec.deploymentName };
  const whole = shares.find((s) => s.percent === 100);
  if (whole) return { ...base, revision: whole.revision };
  const others = shares.filter((s) => s.revision !== spec.revision).sort((a, b) => b.percent - a.percent);
  return { ...base, revision: current?.revision ?? others[0]?.revision ?? spec.revision, shares };
}
