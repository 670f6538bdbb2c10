// After a task fails or is cancelled, the runtime is put back as the
// deployment row says: its serving revision serves (at the replicas its
// scaling asks for, all the traffic: a canary's split ends) and then the
// task's own revision, if not the serving one, stops. Best effort: a step
// that fails is logged, and the observer and the next task converge the rest.
import type { Deployment, Task } from "../domain/types.js";
import { initialReplicas } from "../domain/validation.js";
import { loadRevision } from "../db/revisions.js";
import type { Db } from "../db/connect.js";
import type { Logger } from "../log.js";
import type { RuntimeDriver } from "../runtime/driver.js";
import type { TokenSealer } from "../secrets/token-seal.js";
import { revisionSpec } from "./model-spec.js";

export async function settleRuntime(
  o: { db: Db; driver: RuntimeDriver; logger: Logger; tokens?: TokenSealer | undefined },
  task: Task,
  deployment: Deployment,
): Promise<void> {
  if (task.kind === "DELETE" || deployment.state === "DELETING" || deployment.state === "DELETED") return;
  const step = async (what: string, fn: () => Promise<unknown>) => {
    try {
      await fn();
    } catch (err) {
      o.logger.warn(`could not ${what} after the task ended`, { taskId: task.id, deploymentUid: deployment.uid, err });
    }
  };
  const serving = deployment.servingRevision;
  const stopTaskRevision = async () => {
    if (task.revision !== serving) await step(`stop revision ${task.revision}`, () => o.driver.stopRevision(deployment.uid, task.revision));
  };
  if (serving === 0) return stopTaskRevision();
  // The serving revision as the row says: its replicas (a failed scale may
  // have changed them) and the route (a cancelled rollout may have switched it).
  await step(`restore revision ${serving}`, async () => {
    const revision = await loadRevision(o.db, deployment.uid, serving);
    const spec = revisionSpec(deployment, serving, revision, initialReplicas(deployment.scaling), deployment.scaling, o.tokens);
    if (task.kind === "SCALE") {
      const weights = await o.driver.prepareWeights(spec, () => {});
      await o.driver.startRevision(spec, weights);
    }
    await o.driver.switchTraffic(spec);
  });
  // After the route: a canary's share of requests moves back before its revision stops.
  await stopTaskRevision();
}
