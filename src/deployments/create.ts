// CreateDeployment: the deployment, its first revision, its DEPLOY task, its
// first event and an outbox row, written together (db/create-deployment.ts).
import type { CallScope } from "../db/call-scope.js";
import { isUniqueViolation } from "../db/db-errors.js";
import { invalidRequest, RefusedError } from "../domain/errors.js";
import { newId, newSuffix } from "../domain/ids.js";
import { comparableModel, type Deployment, type ModelSource, type Principal, type Resources, type Scaling, type Task } from "../domain/types.js";
import { resolveName, validateLabels, validateSpec } from "../domain/validation.js";
import { checkCapacity, checkHostCapacity } from "./capacity.js";
import type { DeploymentsDeps } from "./deps.js";
import { newTask } from "./new-task.js";
import { progressDeadlineProblems, replayIfSeen, requestHash, requestIdProblems } from "./requests.js";

export interface CreateInput {
  model: ModelSource;
  resources: Resources;
  scaling: Scaling;
  suffix: string;
  labels: Record<string, string>;
  requestId: string;
  progressDeadlineSeconds: number;
}

/** `call`: whose abort takes a waiting write out of the batch queue. */
export async function createDeployment(
  deps: DeploymentsDeps,
  principal: Principal,
  input: CreateInput,
  call?: CallScope,
): Promise<{ deployment: Deployment; task: Task }> {
  const problems = [
    ...validateSpec(input, deps.catalog, deps.limits),
    ...validateLabels(input.labels, deps.limits),
    ...requestIdProblems(input.requestId),
    ...progressDeadlineProblems(input.progressDeadlineSeconds),
  ];
  const named = resolveName(input.model.name, input.suffix || "x");
  if ("violation" in named && input.model.name) problems.push(named.violation);
  if (problems.length > 0) throw invalidRequest(problems);

  const hash = requestHash("create", input.requestId, { ...input, model: comparableModel(input.model), requestId: "" });
  const seen = await replayIfSeen(deps.db, principal.workspace, input.requestId, hash);
  if (seen) return seen;
  await checkCapacity(deps, input.resources, input.scaling);
  await checkHostCapacity(deps, input.resources, input.scaling);

  // A generated suffix that collides is drawn again; a chosen one is the caller's to change.
  for (let tries = 0; ; tries++) {
    const suffix = input.suffix || newSuffix();
    const resolved = resolveName(input.model.name, suffix);
    if ("violation" in resolved) throw invalidRequest([resolved.violation]);
    try {
      const created = await insertCreate(deps, principal, input, resolved.name, hash, call);
      if (created) return created;
      // The name may be this very request's: a retry that raced its first try
      // (a conflicting insert waits for the other to commit, so it is visible now).
      const again = await replayIfSeen(deps.db, principal.workspace, input.requestId, hash);
      if (again) return again;
      if (!input.suffix && tries < 3) continue;
      throw new RefusedError(
        "already_exists",
        `a deployment named "${resolved.name}" already exists in workspace "${principal.workspace}": specify another suffix`,
        "NAME_TAKEN",
        { name: resolved.name },
      );
    } catch (err) {
      if (isUniqueViolation(err, "tasks_request_id")) {
        const again = await replayIfSeen(deps.db, principal.workspace, input.requestId, hash);
        if (again) return again;
      }
      throw err;
    }
  }
}

/** The new deployment and its task; undefined when the name is taken. */
async function insertCreate(deps: DeploymentsDeps, principal: Principal, input: CreateInput, name: string, hash: string, call: CallScope | undefined) {
  const now = new Date();
  const uid = newId();
  const taskId = newId();
  const deadlineSeconds = input.progressDeadlineSeconds || deps.defaultProgressDeadlineSeconds;
  const deployment: Deployment = {
    uid,
    workspace: principal.workspace,
    name,
    state: "PENDING",
    model: input.model,
    resources: input.resources,
    scaling: input.scaling,
    failure: null,
    instances: { desired: 0, ready: 0, pending: 0, restarts: 0 },
    endpointUrl: "",
    servingRevision: 0,
    targetRevision: 1,
    activeTaskId: taskId,
    traffic: [],
    labels: input.labels,
    creator: principal.name,
    modifier: principal.name,
    createTime: now,
    updateTime: now,
    sequence: 1,
  };
  const task = newTask({ id: taskId, kind: "DEPLOY", principal, uid, name, revision: 1, requestId: input.requestId, deadlineSeconds, now });
  const written = await deps.newDeployments.run(
    {
      deployment,
      revision: { number: 1, model: input.model, resources: input.resources, taskId, createTime: now },
      task,
      requestHash: hash,
      callContext: deps.callContext ?? null,
    },
    call,
  );
  if (written === "NAME_TAKEN") return undefined;
  const { event, outbox } = written;
  deps.sink([event]);
  deps.wakeRelay([outbox]);
  return { deployment: event.deployment, task: event.task! };
}
