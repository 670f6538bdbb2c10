// What the runtime observes between tasks and the deployment row may have to
// follow: a replica that crashes (or comes back) after a deployment is
// RUNNING, an endpoint that moved, or an IDLE deployment a request woke.
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

/**
 * The row as the observation says it should be. An IDLE deployment (scaled
 * to zero) keeps its endpoint URL; a replica that a request woke makes it
 * RUNNING once ready.
 */
function observedFields(d: Deployment, obs: Observed): Pick<Deployment, "state" | "endpointUrl"> {
  if (d.state !== "IDLE") return { state: d.state, endpointUrl: obs.endpointUrl };
  return obs.instances.ready > 0 ? { state: "RUNNING", endpointUrl: obs.endpointUrl } : { state: "IDLE", endpointUrl: d.endpointUrl };
}

/** What the observer tends differs from the row; false while a task owns the deployment. */
export function needsCorrection(d: Deployment, obs: Observed): boolean {
  // A task in flight owns these fields; the observer only tends steady states.
  if (d.activeTaskId !== null || (d.state !== "RUNNING" && d.state !== "IDLE") || obs.servingRevision !== d.servingRevision) return false;
  const i = obs.instances;
  const want = observedFields(d, obs);
  return !(
    i.desired === d.instances.desired &&
    i.ready === d.instances.ready &&
    i.pending === d.instances.pending &&
    i.restarts === d.instances.restarts &&
    want.endpointUrl === d.endpointUrl &&
    want.state === d.state
  );
}

/** Writes the observed instances and endpoint if they still differ under the row lock; true when it wrote. */
export async function correctObserved(db: Db, sink: EventSink, obs: Observed): Promise<boolean> {
  return transact(db, sink, async (trx, emit) => {
    // Checked again under the row lock: a task may have started meanwhile.
    const row = await lockDeployment(trx, obs.deploymentUid);
    if (!row) return false;
    const d = toDeployment(row);
    if (!needsCorrection(d, obs)) return false;
    const want = observedFields(d, obs);
    emit(
      await applyChange(trx, {
        deploymentUid: row.uid,
        type: "STATE_CHANGED",
        deployment: { instances: { ...obs.instances }, endpoint_url: want.endpointUrl, state: want.state },
        ...(want.state !== d.state ? { message: `woken by a request: ${obs.instances.ready} replica(s) ready` } : {}),
      }),
    );
    return true;
  });
}
