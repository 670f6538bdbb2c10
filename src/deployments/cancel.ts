// CancelDeploymentTask: a PENDING or RUNNING task ends CANCELLED at once (a
// cancelled one is answered as it is), and
// its deployment returns to what it was before the task: the serving
// revision keeps serving (rolledBack), or, when nothing served yet, FAILED
// with reason CANCELLED. Bumping the attempt fences the worker running it,
// which then puts the runtime back as the deployment says (run-task).
import { applyChange } from "../db/changes.js";
import { lockDeployment } from "../db/deployments.js";
import { toDeployment, toTask } from "../db/mappers.js";
import { findTask, findTaskInWorkspace } from "../db/tasks.js";
import { transact } from "../db/transact.js";
import { RefusedError } from "../domain/errors.js";
import type { Failure, Principal, Task } from "../domain/types.js";
import type { DeploymentsDeps } from "./deps.js";
import { cancelledTaskPatch, revertedDeployment } from "./task-phases.js";

export async function cancelTask(deps: DeploymentsDeps, principal: Principal, taskId: string): Promise<Task> {
  const found = await findTaskInWorkspace(deps.db, principal.workspace, taskId);
  if (!found) throw new RefusedError("not_found", `task "${taskId}" not found`, "TASK_NOT_FOUND", { taskId });
  return transact(deps.db, deps.sink, async (trx, emit) => {
    // Lock order: the deployment, then its task.
    const dep = await lockDeployment(trx, found.deployment_uid);
    const task = await findTask(trx, taskId);
    if (!dep || !task) throw new RefusedError("not_found", `task "${taskId}" not found`, "TASK_NOT_FOUND", { taskId });
    // Cancelling twice answers the cancellation (a retried call must not fail).
    if (task.status === "CANCELLED") return toTask(task);
    if (task.status !== "PENDING" && task.status !== "RUNNING") {
      throw new RefusedError(
        "failed_precondition",
        `task ${taskId} is already ${task.status}: only a PENDING or RUNNING task can be cancelled`,
        "TASK_NOT_CANCELLABLE",
        { taskId, status: task.status },
      );
    }
    if (task.kind === "DELETE") {
      throw new RefusedError(
        "failed_precondition",
        `task ${taskId} deletes "${task.deployment_name}": a deletion cannot be cancelled`,
        "TASK_NOT_CANCELLABLE",
        { taskId, kind: task.kind },
      );
    }
    if ((task.kind === "UPDATE" || task.kind === "ROLLBACK") && dep.serving_revision === task.revision) {
      // Past the switch the rollout has happened; what is left is draining the old revision.
      throw new RefusedError(
        "failed_precondition",
        `task ${taskId} already switched traffic to revision ${task.revision} and is finishing; roll back to go to the previous revision`,
        "TASK_NOT_CANCELLABLE",
        { taskId, revision: String(task.revision) },
      );
    }
    const now = new Date();
    const failure: Failure = { reason: "CANCELLED", message: `cancelled by ${principal.name}`, retryable: false, time: now.toISOString() };
    const back = revertedDeployment(task.kind === "DEPLOY" ? { ...toDeployment(dep), servingRevision: 0 } : toDeployment(dep), failure);
    const event = await applyChange(trx, {
      deploymentUid: dep.uid,
      type: "TASK_FINISHED",
      task: {
        id: task.id,
        patch: cancelledTaskPatch(now, failure, {
          rolled_back: back.rolledBack,
          progress: { ...task.progress, message: back.rolledBack ? `cancelled; revision ${dep.serving_revision} keeps serving` : "cancelled" },
        }),
      },
      deployment: { ...back.patch, modifier: principal.name },
    });
    emit(event);
    return event.task!;
  });
}
