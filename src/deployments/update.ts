// UpdateDeployment: a new model and/or resources is a new revision, rolled
// out green (UPDATE); a scaling alone changes the serving revision's replicas
// (SCALE; min = max = 0 stops the deployment, more resumes it). A deployment
// whose first deploy failed is deployed again by any update.
import type { Executor } from "../db/executor.js";
import { invalidRequest, RefusedError } from "../domain/errors.js";
import { comparableModel, type Deployment, type ModelSource, type Principal, type Resources, type Rollout, type Scaling, type Task } from "../domain/types.js";
import { resolveRollout, validateSpec, type RolloutInput } from "../domain/validation.js";
import { checkCapacity, checkHostCapacity } from "./capacity.js";
import type { DeploymentsDeps } from "./deps.js";
import { queueChange, type ChangePlan } from "./queue-change.js";
import { progressDeadlineProblems, requestHash, requestIdProblems } from "./requests.js";
import { sameValue } from "./same-value.js";

export interface UpdateInput {
  name: string;
  /** Each absent part stays as it is; a model given replaces the old one whole, its token included (none given: none kept). */
  model: ModelSource | undefined;
  resources: Resources | undefined;
  scaling: Scaling | undefined;
  /** How traffic moves to a new revision; undefined: all at once. */
  rollout?: RolloutInput | undefined;
  progressDeadlineSeconds: number;
  requestId: string;
}

export async function updateDeployment(deps: DeploymentsDeps, principal: Principal, input: UpdateInput): Promise<{ deployment: Deployment; task: Task }> {
  const problems = [...requestIdProblems(input.requestId), ...progressDeadlineProblems(input.progressDeadlineSeconds)];
  if (!input.model && !input.resources && !input.scaling) {
    problems.push({ field: "model", description: "nothing to update: give a model, resources and/or scaling", reason: "UPDATE_EMPTY", metadata: {} });
  }
  const deadlineSeconds = input.progressDeadlineSeconds || deps.defaultProgressDeadlineSeconds;
  const resolved = resolveRollout(input.rollout, deadlineSeconds);
  if ("problems" in resolved) problems.push(...resolved.problems);
  if (problems.length > 0 || "problems" in resolved) throw invalidRequest(problems);
  const { requestId, rollout: _asked, ...body } = input;
  // Without a rollout the hash is the one from before rollouts existed (requests repeated across an upgrade still match).
  const hashed = input.rollout ? { ...body, rollout: resolved.rollout } : body;
  return queueChange(deps, principal, {
    name: input.name,
    requestId,
    requestHash: requestHash("update", requestId, { ...hashed, model: body.model && comparableModel(body.model) }),
    deadlineSeconds,
    plan: (current, trx) => planUpdate(deps, trx, current, input, resolved.rollout),
  });
}

async function planUpdate(deps: DeploymentsDeps, trx: Executor, current: Deployment, input: UpdateInput, rollout: Rollout): Promise<ChangePlan> {
  const model = input.model ?? current.model;
  const resources = input.resources ?? current.resources;
  const scaling = input.scaling ?? current.scaling;
  const problems = validateSpec({ model, resources, scaling }, deps.catalog, deps.limits);
  if (problems.length > 0) throw invalidRequest(problems);
  // Nothing serves after a failed first deploy: any update deploys again.
  const newRevision =
    current.servingRevision === 0 || !sameValue(comparableModel(model), comparableModel(current.model)) || !sameValue(resources, current.resources);
  const newScaling = !sameValue(scaling, current.scaling);
  if (!newRevision && !newScaling) {
    throw new RefusedError(
      "failed_precondition",
      `deployment "${current.name}" already runs this model, resources and scaling: nothing to change`,
      "NO_CHANGE",
      { name: current.name },
    );
  }
  if (!sameValue(resources, current.resources) || newScaling) {
    await checkCapacity({ db: trx, catalog: deps.catalog }, resources, scaling, current.uid);
    await checkHostCapacity({ db: trx, hostCapacity: deps.hostCapacity, cpuAllocationRatio: deps.cpuAllocationRatio }, resources, scaling, current.uid);
  }
  if (newRevision) {
    return {
      kind: "UPDATE",
      state: "UPDATING",
      revision: { model, resources },
      scaling: newScaling ? scaling : null,
      rollout,
      message: current.servingRevision === 0 ? "queued: deploy again" : `queued: roll out a new revision beside revision ${current.servingRevision}`,
    };
  }
  if (input.rollout && rollout.strategy === "CANARY") {
    throw invalidRequest([
      {
        field: "rollout",
        description: "a canary rolls out a new revision; this update changes only the scaling (give a model or resources, or drop the rollout)",
        reason: "ROLLOUT_INVALID",
        metadata: { field: "rollout" },
      },
    ]);
  }
  const verb = scaling.maxReplicas === 0 ? "stop" : current.scaling.maxReplicas === 0 ? "resume" : "scale";
  return {
    kind: "SCALE",
    state: "UPDATING",
    revision: null,
    scaling,
    rollout: null,
    message: `queued: ${verb} (replicas ${scaling.minReplicas}–${scaling.maxReplicas})`,
  };
}
