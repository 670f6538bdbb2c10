// RollbackDeployment: a green rollout to an earlier revision's model and
// resources. Like `helm rollback`, it makes a new revision (a copy), so
// revision numbers only grow and the history says which task made each one.
import { findRevision, previousServedRevision } from "../db/revisions.js";
import { invalidRequest, RefusedError } from "../domain/errors.js";
import type { Deployment, Principal, Task } from "../domain/types.js";
import { resolveRollout, type RolloutInput } from "../domain/validation.js";
import { checkCapacity, checkHostCapacity } from "./capacity.js";
import type { DeploymentsDeps } from "./deps.js";
import { queueChange } from "./queue-change.js";
import { progressDeadlineProblems, requestHash, requestIdProblems } from "./requests.js";
import { sameValue } from "./same-value.js";

export interface RollbackInput {
  name: string;
  /** 0: the revision that served before the serving one. */
  revision: number;
  /** How traffic moves back; undefined: all at once. */
  rollout?: RolloutInput | undefined;
  /** 0: the server's default. */
  progressDeadlineSeconds?: number | undefined;
  requestId: string;
}

export async function rollbackDeployment(deps: DeploymentsDeps, principal: Principal, input: RollbackInput): Promise<{ deployment: Deployment; task: Task }> {
  const problems = [...requestIdProblems(input.requestId), ...progressDeadlineProblems(input.progressDeadlineSeconds ?? 0)];
  const deadlineSeconds = input.progressDeadlineSeconds || deps.defaultProgressDeadlineSeconds;
  const resolved = resolveRollout(input.rollout, deadlineSeconds);
  if ("problems" in resolved) problems.push(...resolved.problems);
  if (input.revision < 0)
    problems.push({
      field: "revision",
      description: "revision must be 0 (the previous one) or a revision number",
      reason: "REVISION_INVALID",
      metadata: { revision: String(input.revision) },
    });
  if (problems.length > 0 || "problems" in resolved) throw invalidRequest(problems);
  const rollout = resolved.rollout;
  // Without a rollout or deadline the hash is the one from before they existed.
  const asked = {
    name: input.name,
    revision: input.revision,
    ...(input.rollout ? { rollout } : {}),
    ...(input.progressDeadlineSeconds ? { progressDeadlineSeconds: input.progressDeadlineSeconds } : {}),
  };
  return queueChange(deps, principal, {
    name: input.name,
    requestId: input.requestId,
    requestHash: requestHash("rollback", input.requestId, asked),
    deadlineSeconds,
    async plan(current, trx) {
      if (current.servingRevision === 0) {
        throw new RefusedError(
          "failed_precondition",
          `deployment "${current.name}" has never served: there is no revision to roll back to; update it to deploy again`,
          "NO_PREVIOUS_REVISION",
          { name: current.name },
        );
      }
      const target =
        input.revision === 0 ? await previousServedRevision(trx, current.uid, current.servingRevision) : await findRevision(trx, current.uid, input.revision);
      if (!target) {
        if (input.revision === 0) {
          throw new RefusedError(
            "failed_precondition",
            `deployment "${current.name}" has no revision that served before revision ${current.servingRevision}`,
            "NO_PREVIOUS_REVISION",
            { name: current.name },
          );
        }
        throw new RefusedError("not_found", `deployment "${current.name}" has no revision ${input.revision}`, "REVISION_NOT_FOUND", {
          name: current.name,
          revision: String(input.revision),
        });
      }
      if (target.number === current.servingRevision) {
        throw new RefusedError("failed_precondition", `revision ${target.number} of "${current.name}" is the one serving`, "REVISION_ALREADY_SERVING", {
          name: current.name,
          revision: String(target.number),
        });
      }
      // Back to other resources: they must fit as an update's would.
      if (!sameValue(target.resources, current.resources)) {
        await checkCapacity({ db: trx, catalog: deps.catalog }, target.resources, current.scaling, current.uid);
        await checkHostCapacity(
          { db: trx, hostCapacity: deps.hostCapacity, cpuAllocationRatio: deps.cpuAllocationRatio },
          target.resources,
          current.scaling,
          current.uid,
        );
      }
      return {
        kind: "ROLLBACK",
        state: "ROLLING_BACK",
        revision: { model: target.model, resources: target.resources },
        scaling: null,
        rollout,
        message: `queued: roll back to revision ${target.number}'s model and resources`,
      };
    },
  });
}
