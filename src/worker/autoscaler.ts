// The autoscaler: beside the observer in every worker. Each pass reads the
// deployments it tends and the gateway's counts for each, decides with
// domain/autoscaling.ts, and records a change with deployments/autoscaled.ts
// (row lock, no task, same sequence), so that two workers' autoscalers never
// both apply one change.
import type { Db } from "../db/connect.js";
import { findAutoscaledDeployments } from "../db/deployments.js";
import { toDeployment } from "../db/mappers.js";
import type { EventSink } from "../db/transact.js";
import { recordScaled } from "../deployments/autoscaled.js";
import { decideReplicas, type LoadMemory } from "../domain/autoscaling.js";
import type { Logger } from "../log.js";
import type { RuntimeDriver } from "../runtime/driver.js";

export interface Autoscaler {
  /** One pass; the changes it recorded. */
  scaleOnce(): Promise<number>;
  stop(): Promise<void>;
}

export interface AutoscalerOptions {
  db: Db;
  sink: EventSink;
  driver: RuntimeDriver;
  logger: Logger;
  intervalMs: number;
}

export function startAutoscaler(o: AutoscalerOptions): Autoscaler {
  const memory = new Map<string, LoadMemory>();
  const scaleOnce = async (): Promise<number> => {
    const deployments = (await findAutoscaledDeployments(o.db)).map(toDeployment);
    const seen = new Set<string>();
    let changed = 0;
    for (const d of deployments) {
      seen.add(d.uid);
      try {
        const traffic = await o.driver.trafficStats(d.uid);
        if (!traffic) continue;
        const reading = {
          at: Date.now(),
          epoch: traffic.epoch,
          inFlight: traffic.inFlight,
          inFlightSeconds: traffic.inFlightSeconds,
          arrivals: traffic.arrivals,
        };
        // An IDLE deployment's wake is the runtime's (on a request) and the observer's to record.
        const current = d.state === "IDLE" ? 0 : d.instances.desired;
        const decision = decideReplicas(d.scaling, current, memory.get(d.uid), reading);
        memory.set(d.uid, decision.memory);
        const change = decision.change;
        if (!change || change.replicas === current) continue;
        const applied = await recordScaled(o.db, o.sink, { deploymentUid: d.uid, sequence: d.sequence, ...change }, (serving) =>
          o.driver.scaleRevision(d.uid, serving, change.replicas),
        );
        if (applied) {
          changed++;
          o.logger.info("autoscaled", { workspace: d.workspace, deployment: d.name, replicas: change.replicas, reason: change.reason });
        }
      } catch (err) {
        o.logger.warn("autoscaler could not tend a deployment; will retry", { workspace: d.workspace, deployment: d.name, err });
      }
    }
    // A deployment a task now owns (or deleted) starts its count afresh when it comes back.
    for (const uid of memory.keys()) if (!seen.has(uid)) memory.delete(uid);
    return changed;
  };
  let current: Promise<unknown> | undefined;
  const timer = setInterval(() => {
    current ??= scaleOnce()
      .catch((err) => o.logger.warn("autoscaler pass failed; will retry", { err }))
      .finally(() => (current = undefined));
  }, o.intervalMs);
  timer.unref();
  return {
    scaleOnce,
    async stop() {
      clearInterval(timer);
      await current;
    },
  };
}
