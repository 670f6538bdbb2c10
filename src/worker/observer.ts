// Keeps `instances` and `endpointUrl` honest between tasks: a replica that
// crashes (or comes back) after a deployment is RUNNING shows up here.
//
// A pass reads from Postgres only what may need a correction (see
// observation-tracker.ts), not every deployment the runtime runs: a pass that
// read them all, every second, cost more with every deployment ever run, and
// with it every task's dispatch latency.
import type { Db } from "../db/connect.js";
import { findDeploymentsByUids } from "../db/deployments.js";
import { toDeployment } from "../db/mappers.js";
import type { EventSink } from "../db/transact.js";
import { correctObserved, needsCorrection } from "../deployments/observed.js";
import type { Deployment } from "../domain/types.js";
import type { Logger } from "../log.js";
import type { RuntimeDriver } from "../runtime/driver.js";
import { createObservationTracker } from "./observation-tracker.js";

export interface ObserverPass {
  /** Deployments read from the database. */
  read: number;
  /** Deployments corrected. */
  corrected: number;
}

export interface Observer {
  observeOnce(): Promise<ObserverPass>;
  /** Something else changed these deployments (a task of this process): check them on the next pass. */
  touched(deploymentUids: Iterable<string>): void;
  stop(): Promise<void>;
}

export interface ObserverOptions {
  db: Db;
  sink: EventSink;
  driver: RuntimeDriver;
  logger: Logger;
  intervalMs: number;
  /** Every deployment is read again at least once in this many passes; 0: never (tests). */
  revisitPasses?: number;
}

/** A row that will change without the runtime changing: the task that owns it will write it. */
function unsettled(d: Deployment): boolean {
  return d.activeTaskId !== null;
}

export function startObserver(o: ObserverOptions): Observer {
  const tracker = createObservationTracker({ revisitPasses: o.revisitPasses ?? 60 });
  const observeOnce = async (): Promise<ObserverPass> => {
    const due = tracker.pass(await o.driver.observe());
    // One unlocked read for those due; a locked write only where something changed.
    const rows = new Map(
      (
        await findDeploymentsByUids(
          o.db,
          due.map((x) => x.deploymentUid),
        )
      ).map((r) => [r.uid, toDeployment(r)]),
    );
    let corrected = 0;
    for (const obs of due) {
      const d = rows.get(obs.deploymentUid);
      try {
        if (d && needsCorrection(d, obs) && (await correctObserved(o.db, o.sink, obs))) corrected++;
        tracker.checked(obs, d !== undefined && unsettled(d));
      } catch (err) {
        // Left due: the next pass tries it again.
        o.logger.warn("observer could not correct a deployment; will retry", {
          ...(d ? { workspace: d.workspace, deployment: d.name } : {}),
          deploymentUid: obs.deploymentUid,
          err,
        });
      }
    }
    return { read: due.length, corrected };
  };
  let current: Promise<unknown> | undefined;
  const timer = setInterval(() => {
    // A slow pass is not overtaken by the next one.
    current ??= observeOnce()
      .catch((err) => o.logger.warn("observe failed; will retry", { err }))
      .finally(() => (current = undefined));
  }, o.intervalMs);
  timer.unref();
  return {
    observeOnce,
    touched: (uids) => tracker.touched(uids),
    async stop() {
      clearInterval(timer);
      await current;
    },
  };
}
