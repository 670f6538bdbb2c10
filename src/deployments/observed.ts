// What the runtime observes between tasks and the deployment row may have to
// follow: a replica that crashes (or comes back) after a deployment is
// RUNNING, or an endpoint that moved.
import { applyChange } from "../db/changes.js";
import type { Db } from "../db/connect.js";
import { lockDeployment } from "../db/deployments.js";
import { toDeployment } from "../db/mappers.js";
import { transact, type EventSink } from "../db/transact.js";
import type { Deployment, Instances } from "../domain/types.js";

/** What the runtime reports for one deployment. */
export interface Observed {
  deploymentUid: string;
  servingRevision: number;
  instances: Instances;
  endpointUrl: string;
}

/** What the observer tends differs from the row; false while a task owns the deployment. */
export function needsCorrection(d: Deployment, obs: Observed): boolean {
  // A task in flight owns these fields; the observer only tends steady states.
  if (d.activeTaskId !== null || d.state !== "RUNNING" || obs.servingRevision !== d.servingRevision) return false;
  const i = obs.instances;
  return !(
    i.desired === d.instances.desired &&
    i.ready === d.instances.ready &&
    i.pending === d.instances.pending &&
    i.restarts === d.instances.restarts &&
    obs.endpointUrl === d.endpointUrl
  );
}

/** Writes the observed instances and endpoint if they still differ under the row lock; true when it wrote. */
export async function correctObserved(db: Db, sink: EventSink, obs: Observed): Promise<boolean> {
  return transact(db, sink, async (trx, emit) => {
    // Checked again under the row lock: a task may have started meanwhile.
    const row = await lockDeployment(trx, obs.deploymentUid);
    if (!row || !needsCorrection(toDeployment(row), obs)) return false;
    emit(
      await applyChange(trx, {
        deploymentUid: row.uid,
        type: "STATE_CHANGED",
        deployment: { instances: { ...obs.instances }, endpoint_url: obs.endpointUrl },
      }),
    );
    return true;
  });
}
