// The autoscaler's rule, apart from any I/O: from successive readings of a
// deployment's gateway counts, the replica count it should have and why.
// Up quickly under load (UP_AFTER_MS of in-flight above target), down only
// after scaleDownDelaySeconds of low load, to zero (minReplicas 0) after
// scaleDownDelaySeconds without a request.
import type { Scaling } from "./types.js";

/** How long in-flight must stay above the target before replicas are added. */
export const UP_AFTER_MS = 2_000;

export interface LoadReading {
  /** ms since epoch, when it was read. */
  at: number;
  /** The runtime's counter epoch: a new one starts the counts again. */
  epoch: string;
  inFlight: number;
  inFlightSeconds: number;
  arrivals: number;
}

/** What the autoscaler remembers of a deployment between readings. */
export interface LoadMemory {
  last: LoadReading;
  /** When the last request arrived (or the deployment was first seen). */
  lastArrivalAt: number;
  /** Since when the load has asked for more replicas, for fewer. */
  highSince: number | undefined;
  lowSince: number | undefined;
}

export interface ScaleDecision {
  memory: LoadMemory;
  change?: { replicas: number; reason: string };
}

const seconds = (ms: number) => `${Math.round(ms / 1000)} s`;

export function decideReplicas(scaling: Scaling, current: number, memory: LoadMemory | undefined, now: LoadReading): ScaleDecision {
  if (!memory || memory.last.epoch !== now.epoch || now.at <= memory.last.at) {
    return { memory: { last: now, lastArrivalAt: memory?.lastArrivalAt ?? now.at, highSince: undefined, lowSince: undefined } };
  }
  const span = (now.at - memory.last.at) / 1000;
  const mean = Math.max(0, now.inFlightSeconds - memory.last.inFlightSeconds) / span;
  const lastArrivalAt = now.arrivals > memory.last.arrivals || now.inFlight > 0 ? now.at : memory.lastArrivalAt;
  const next: LoadMemory = { last: now, lastArrivalAt, highSince: memory.highSince, lowSince: memory.lowSince };
  const target = scaling.targetInFlight;
  const delayMs = scaling.scaleDownDelaySeconds * 1000;
  const floor = Math.max(scaling.minReplicas, 1);
  const wanted = Math.min(scaling.maxReplicas, Math.max(floor, Math.ceil(mean / target)));
  const perReplica = (mean / Math.max(current, 1)).toFixed(1);

  if (scaling.minReplicas === 0 && current > 0 && now.inFlight === 0 && now.at - lastArrivalAt >= delayMs) {
    return {
      memory: { ...next, highSince: undefined, lowSince: undefined },
      change: { replicas: 0, reason: `no requests for ${seconds(now.at - lastArrivalAt)}` },
    };
  }
  if (current > 0 && wanted > current) {
    next.lowSince = undefined;
    next.highSince ??= memory.last.at;
    if (now.at - next.highSince >= UP_AFTER_MS) {
      return {
        memory: { ...next, highSince: undefined },
        change: { replicas: wanted, reason: `in-flight ${perReplica} per replica > ${target} for ${seconds(now.at - next.highSince)}` },
      };
    }
    return { memory: next };
  }
  if (current > 0 && wanted < current) {
    next.highSince = undefined;
    next.lowSince ??= memory.last.at;
    if (now.at - next.lowSince >= delayMs) {
      return {
        memory: { ...next, lowSince: undefined },
        change: { replicas: wanted, reason: `in-flight ${perReplica} per replica < ${target} for ${seconds(now.at - next.lowSince)}` },
      };
    }
    return { memory: next };
  }
  return { memory: { ...next, highSince: undefined, lowSince: undefined } };
}
