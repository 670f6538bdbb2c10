// Keeps `instances` and `endpointUrl` honest between tasks: a replica that
// crashes (or comes back) after a deployment is RUNNING shows up here.
//
// A pass reads from Postgres only what may need a correction (see
// observation-tracker.ts), not every deployment the runtime runs: a pass that
// read them all, every second, cost more with every deployment ever run, and
// with it every task's dispatch latency.
import type { Db } from "../db/connect.js";
import { applyChange } from "../db/changes.js";
import { findDeploymentsByUids, lockDeployment } from "../db/deployments.js";
import { toDeployment } from "../db/mappers.js";
import { transact, type EventSink } from "../db/transact.js";
import type { Deployment } from "../domain/types.js";
import type { Logger } from "../log.js";
import type { DeploymentObservation, RuntimeDriver } from "../runtime/driver.js";
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

/** What the observer tends, as the database has it and as observed; false while a task owns it. */
export function needsCorrection(d: Deployment, obs: DeploymentObservation): boolean {
  // A task in flight owns these fields; the observer only tends steady states.
  if (d.activeTaskId !== null || d.state !== "RUNNING" || obs.servingRevision !== d.servingRevision) return false;
  const i = obs.instances;
  return !(i.desired === d.instances.desired && i.ready === d.instances.ready && i.pending === d.instances.pending && i.restarts === d.instances.restarts && obs.endpointUrl === d.endpointUrl);
}

/** A row that will change without the runtime changing: the task that owns it will write it. */
function unsettled(d: Deployment): boolean {
  return d.activeTaskId !== null;
}

export function startObserver(o: ObserverOptions): Observer {
  const tracker = createObservationTracker({ revisitPasses: o.revisitPasses ?? 60 });
  const reconcile = async (obs: DeploymentObservation): Promise<boolean> =>
    transact(o.db, o.sink, async (trx, emit) => {
      // Checked again under the row lock: a task may have started meanwhile.
      const row = await lockDeployment(trx, obs.deploymentUid);
      if (!row || !needsCorrection(toDeployment(row), obs)) return false;
      emit(await applyChange(trx, {
        deploymentUid: row.uid,
        type: "STATE_CHANGED",
        deployment: { instances: { ...obs.instances }, endpoint_url: obs.endpointUrl },
      }));
      return true;
    });

  const observeOnce = async (): Promise<ObserverPass> => {
    const due = tracker.pass(await o.driver.observe());
    // One unlocked read for those due; a locked write only where something changed.
    const rows = new Map((await findDeploymentsByUids(o.db, due.map((x) => x.deploymentUid))).map((r) => [r.uid, toDeployment(r)]));
    let corrected = 0;
    for (const obs of due) {
      const d = rows.get(obs.deploymentUid);
      try {
        if (d && needsCorrection(d, obs) && (await reconcile(obs))) corrected++;
        tracker.checked(obs, d !== undefined && unsettled(d));
      } catch (err) {
        // Left due: the next pass tries it again.
        o.logger.warn("observer could not correct a deployment; will retry", { deploymentUid: obs.deploymentUid, err });
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
