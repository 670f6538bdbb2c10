// Keeps `instances` and `endpointUrl` honest between tasks: a replica that
// crashes (or comes back) after a deployment is RUNNING shows up here.
import type { Db } from "../db/connect.js";
import { applyChange } from "../db/changes.js";
import { findDeploymentsByUids, lockDeployment } from "../db/deployments.js";
import { toDeployment } from "../db/mappers.js";
import { transact, type EventSink } from "../db/transact.js";
import type { Deployment } from "../domain/types.js";
import type { Logger } from "../log.js";
import type { DeploymentObservation, RuntimeDriver } from "../runtime/driver.js";

export interface Observer {
  observeOnce(): Promise<number>;
  stop(): Promise<void>;
}

export function startObserver(o: { db: Db; sink: EventSink; driver: RuntimeDriver; logger: Logger; intervalMs: number }): Observer {
  // The fields the observer tends, as the database has them and as observed.
  const differs = (d: Deployment, obs: DeploymentObservation): boolean => {
    // A task in flight owns these fields; the observer only tends steady states.
    if (d.activeTaskId !== null || d.state !== "RUNNING" || obs.servingRevision !== d.servingRevision) return false;
    const i = obs.instances;
    return !(i.desired === d.instances.desired && i.ready === d.instances.ready && i.pending === d.instances.pending && i.restarts === d.instances.restarts && obs.endpointUrl === d.endpointUrl);
  };
  const reconcile = async (obs: DeploymentObservation): Promise<boolean> =>
    transact(o.db, o.sink, async (trx, emit) => {
      // Checked again under the row lock: a task may have started meanwhile.
      const row = await lockDeployment(trx, obs.deploymentUid);
      if (!row || !differs(toDeployment(row), obs)) return false;
      emit(await applyChange(trx, {
        deploymentUid: row.uid,
        type: "STATE_CHANGED",
        deployment: { instances: { ...obs.instances }, endpoint_url: obs.endpointUrl },
      }));
      return true;
    });

  const observeOnce = async () => {
    const observed = await o.driver.observe();
    // One unlocked read for all; a locked write only where something changed
    // (a pass used to lock every deployment, every second).
    const rows = new Map((await findDeploymentsByUids(o.db, observed.map((x) => x.deploymentUid))).map((r) => [r.uid, toDeployment(r)]));
    let changed = 0;
    for (const obs of observed) {
      const d = rows.get(obs.deploymentUid);
      if (d && differs(d, obs) && (await reconcile(obs))) changed++;
    }
    return changed;
  };
  let current: Promise<unknown> = Promise.resolve();
  const timer = setInterval(() => {
    current = observeOnce().catch((err) => o.logger.warn("observe failed; will retry", { err }));
  }, o.intervalMs);
  timer.unref();
  return {
    observeOnce,
    async stop() {
      clearInterval(timer);
      await current;
    },
  };
}
