// An autoscaler change, written like any other: under the deployment's row
// lock, only while no task owns the deployment and nothing changed since the
// autoscaler read it, so it never races a task, the API or another worker.
import { applyChange } from "../db/changes.js";
import type { Db } from "../db/connect.js";
import { lockDeployment } from "../db/deployments.js";
import { toDeployment } from "../db/mappers.js";
import { transact, type EventSink } from "../db/transact.js";

export interface ScaleChange {
  deploymentUid: string;
  /** The deployment's sequence when the autoscaler read it. */
  sequence: number;
  replicas: number;
  reason: string;
}

/**
 * Applies the change on the runtime (`apply`, given the serving revision)
 * while holding the row lock, then records it: the SCALED event with the
 * reason, IDLE at 0 replicas (the endpoint stays). False when the row moved on.
 */
export async function recordScaled(db: Db, sink: EventSink, change: ScaleChange, apply: (servingRevision: number) => Promise<void>): Promise<boolean> {
  return transact(db, sink, async (trx, emit) => {
    const row = await lockDeployment(trx, change.deploymentUid);
    if (!row) return false;
    const d = toDeployment(row);
    if (d.activeTaskId !== null || d.sequence !== change.sequence || (d.state !== "RUNNING" && d.state !== "IDLE")) return false;
    await apply(d.servingRevision);
    const instances = { ...d.instances, desired: change.replicas, ready: Math.min(d.instances.ready, change.replicas) };
    emit(
      await applyChange(trx, {
        deploymentUid: d.uid,
        type: "SCALED",
        deployment: { instances: change.replicas === 0 ? { ...instances, pending: 0 } : instances, state: change.replicas === 0 ? "IDLE" : "RUNNING" },
        message: `scaled to ${change.replicas} replica(s): ${change.reason}`,
      }),
    );
    return true;
  });
}
