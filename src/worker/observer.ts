// Keeps `instances` and `endpointUrl` honest between tasks: a replica that
// crashes (or comes back) after a deployment is RUNNING shows up here.
import type { Db } from "../db/connect.js";
import { applyChange } from "../db/changes.js";
import { lockDeployment } from "../db/deployments.js";
import { toDeployment } from "../db/mappers.js";
import { transact, type EventSink } from "../db/transact.js";
import type { Logger } from "../log.js";
import type { DeploymentObservation, RuntimeDriver } from "../runtime/driver.js";

export interface Observer {
  observeOnce(): Promise<number>;
  stop(): Promise<void>;
}

export function startObserver(o: { db: Db; sink: EventSink; driver: RuntimeDriver; logger: Logger; intervalMs: number }): Observer {
  const reconcile = async (obs: DeploymentObservation): Promise<boolean> =>
    transact(o.db, o.sink, async (trx, emit) => {
      const row = await lockDeployment(trx, obs.deploymentUid);
      if (!row) return false;
      const d = toDeployment(row);
      // A task in flight owns these fields; the observer only tends steady states.
      if (d.activeTaskId !== null || d.state !== "RUNNING" || obs.servingRevision !== d.servingRevision) return false;
      const i = obs.instances;
      const same = i.desired === d.instances.desired && i.ready === d.instances.ready && i.pending === d.instances.pending && i.restarts === d.instances.restarts && obs.endpointUrl === d.endpointUrl;
      if (same) return false;
      emit(await applyChange(trx, {
        deploymentUid: d.uid,
        type: "STATE_CHANGED",
        deployment: { instances: JSON.stringify(i), endpoint_url: obs.endpointUrl },
      }));
      return true;
    });

  const observeOnce = async () => {
    let changed = 0;
    for (const obs of await o.driver.observe()) if (await reconcile(obs)) changed++;
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
