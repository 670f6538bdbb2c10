// Queues a task that changes an existing deployment (UPDATE, SCALE,
// ROLLBACK): the precondition checks, the new revision if any, the task, its
// outbox row and the deployment's event, in one transaction under the
// deployment's row lock. One change at a time: while a task is in flight,
// another is refused (DeleteDeployment is the exception).
import { applyChange } from "../db/changes.js";
import { isUniqueViolation } from "../db/db-errors.js";
import { findDeploymentByName, lockDeployment } from "../db/deployments.js";
import type { Trx } from "../db/executor.js";
import { taskToRow, toDeployment } from "../db/mappers.js";
import { insertOutbox, type OutboxEntry } from "../db/outbox.js";
import { insertRevision, nextRevisionNumber } from "../db/revisions.js";
import { findTask, insertTask } from "../db/tasks.js";
import { transact } from "../db/transact.js";
import { deploymentNotFound, RefusedError } from "../domain/errors.js";
import { newId } from "../domain/ids.js";
import type { Deployment, ModelSource, Principal, Resources, Rollout, Scaling, Task } from "../domain/types.js";
import type { DeploymentsDeps } from "./deps.js";
import { newTask } from "./new-task.js";
import { replayIfSeen } from "./requests.js";

export interface ChangePlan {
  kind: "UPDATE" | "SCALE" | "ROLLBACK";
  /** The state the deployment shows while the task runs. */
  state: "UPDATING" | "ROLLING_BACK";
  /** A new revision to start (green rollout); null: the serving revision stays. */
  revision: { model: ModelSource; resources: Resources } | null;
  /** The scaling to put in force on completion; null: unchanged. */
  scaling: Scaling | null;
  /** How traffic moves to the new revision (UPDATE, ROLLBACK); null for a SCALE. */
  rollout: Rollout | null;
  /** The queued task's first message, e.g. "queued: roll back to revision 1". */
  message: string;
}

export interface ChangeRequest {
  name: string;
  requestId: string;
  requestHash: string;
  deadlineSeconds: number;
  /** Decides the change from the locked deployment, or refuses it. */
  plan(current: Deployment, trx: Trx): Promise<ChangePlan>;
}

const inFlight = (status: string) => status === "PENDING" || status === "RUNNING";

export async function queueChange(deps: DeploymentsDeps, principal: Principal, req: ChangeRequest): Promise<{ deployment: Deployment; task: Task }> {
  const seen = await replayIfSeen(deps.db, principal.workspace, req.requestId, req.requestHash);
  if (seen) return seen;
  const found = await findDeploymentByName(deps.db, principal.workspace, req.name);
  if (!found || found.state === "DELETED") throw deploymentNotFound(req.name);
  let result: { deployment: Deployment; task: Task };
  // The outbox row the committed transaction wrote, if any (a retried transaction sets it again).
  let committed: OutboxEntry[] = [];
  try {
    result = await transact(deps.db, deps.sink, async (trx, emit) => {
      committed = [];
      const locked = await lockDeployment(trx, found.uid);
      if (!locked || locked.state === "DELETED") throw deploymentNotFound(req.name);
      if (locked.state === "DELETING") {
        throw new RefusedError("failed_precondition", `deployment "${req.name}" is being deleted`, "DEPLOYMENT_DELETING", { name: req.name });
      }
      if (locked.active_task_id) {
        const active = await findTask(trx, locked.active_task_id);
        if (active && inFlight(active.status)) {
          throw new RefusedError(
            "failed_precondition",
            `deployment "${req.name}" is being changed by task ${active.id} (${active.kind}, ${active.status}); wait for it to finish or cancel it`,
            "TASK_IN_PROGRESS",
            { activeTaskId: active.id },
          );
        }
      }
      const current = toDeployment(locked);
      const plan = await req.plan(current, trx);
      const now = new Date();
      const taskId = newId();
      const revision = plan.revision ? await nextRevisionNumber(trx, current.uid) : current.servingRevision;
      const task = newTask({
        id: taskId,
        kind: plan.kind,
        principal,
        uid: current.uid,
        name: current.name,
        revision,
        requestId: req.requestId,
        deadlineSeconds: req.deadlineSeconds,
        now,
        scaling: plan.scaling ?? undefined,
        rollout: plan.rollout ?? undefined,
        message: plan.message,
      });
      await insertTask(trx, taskToRow(task, { requestHash: req.requestHash, enqueuedAt: now }));
      if (plan.revision) await insertRevision(trx, current.uid, { number: revision, ...plan.revision, taskId, createTime: now });
      committed = [await insertOutbox(trx, taskId, taskId, deps.callContext ?? null)];
      const event = await applyChange(trx, {
        deploymentUid: current.uid,
        type: "STATE_CHANGED",
        deployment: { state: plan.state, active_task_id: taskId, target_revision: revision, modifier: principal.name },
        taskId,
      });
      emit(event);
      return { deployment: event.deployment, task: event.task! };
    });
  } catch (err) {
    if (isUniqueViolation(err, "tasks_request_id")) {
      const again = await replayIfSeen(deps.db, principal.workspace, req.requestId, req.requestHash);
      if (again) return again;
    }
    throw err;
  }
  deps.wakeRelay(committed);
  return result;
}
