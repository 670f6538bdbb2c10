// DeleteDeployment: a DELETE task, queued behind nothing. A task still in
// flight for the deployment is cancelled first (its attempt is bumped, which
// fences the worker that runs it).
import { applyChange } from "../db/changes.js";
import { isUniqueViolation } from "../db/db-errors.js";
import { findDeploymentByName, lockDeployment } from "../db/deployments.js";
import { taskToRow, toTask } from "../db/mappers.js";
import { insertOutbox, type OutboxEntry } from "../db/outbox.js";
import { findTask, insertTask } from "../db/tasks.js";
import { transact } from "../db/transact.js";
import { deploymentNotFound, invalidRequest } from "../domain/errors.js";
import { newId } from "../domain/ids.js";
import type { Principal, Task } from "../domain/types.js";
import type { DeploymentsDeps } from "./deps.js";
import { newTask } from "./new-task.js";
import { cancelledTaskPatch } from "./task-phases.js";
import { replayIfSeen, requestHash, requestIdProblems } from "./requests.js";

const inFlight = (status: string) => status === "PENDING" || status === "RUNNING";

export async function deleteDeployment(deps: DeploymentsDeps, principal: Principal, name: string, requestId: string): Promise<Task> {
  const problems = requestIdProblems(requestId);
  if (problems.length > 0) throw invalidRequest(problems);
  const hash = requestHash("delete", requestId, { name });
  const seen = await replayIfSeen(deps.db, principal.workspace, requestId, hash);
  if (seen) return seen.task;
  const found = await findDeploymentByName(deps.db, principal.workspace, name);
  if (!found || found.state === "DELETED") throw deploymentNotFound(name);
  const taskId = newId();
  const now = new Date();
  let result: Task;
  // The outbox row the committed transaction wrote, if any (a retried transaction sets it again).
  let committed: OutboxEntry[] = [];
  try {
    result = await transact(deps.db, deps.sink, async (trx, emit) => {
      committed = [];
      // Lock order everywhere: the deployment, then its task.
      const locked = await lockDeployment(trx, found.uid);
      if (!locked || locked.state === "DELETED") throw deploymentNotFound(name);
      if (locked.active_task_id) {
        const active = await findTask(trx, locked.active_task_id);
        // Deleting twice returns the delete already under way.
        if (active?.kind === "DELETE" && inFlight(active.status)) return toTask(active);
        if (active && inFlight(active.status)) {
          emit(
            await applyChange(trx, {
              deploymentUid: locked.uid,
              type: "TASK_FINISHED",
              task: {
                id: active.id,
                patch: cancelledTaskPatch(now, {
                  reason: "CANCELLED",
                  message: "cancelled because the deployment is being deleted",
                  retryable: false,
                  time: now.toISOString(),
                }),
              },
            }),
          );
        }
      }
      const task = newTask({
        id: taskId,
        kind: "DELETE",
        principal,
        uid: locked.uid,
        name: locked.name,
        revision: locked.serving_revision,
        requestId,
        deadlineSeconds: deps.defaultProgressDeadlineSeconds,
        now,
      });
      await insertTask(trx, taskToRow(task, { requestHash: hash, enqueuedAt: now }));
      committed = [await insertOutbox(trx, taskId, taskId, deps.callContext ?? null)];
      const event = await applyChange(trx, {
        deploymentUid: locked.uid,
        type: "STATE_CHANGED",
        // A cancelled change's target goes with it.
        deployment: { state: "DELETING", active_task_id: taskId, target_revision: locked.serving_revision, modifier: principal.name },
        taskId,
      });
      emit(event);
      return event.task!;
    });
  } catch (err) {
    if (isUniqueViolation(err, "tasks_request_id")) {
      const again = await replayIfSeen(deps.db, principal.workspace, requestId, hash);
      if (again) return again.task;
    }
    throw err;
  }
  deps.wakeRelay(committed);
  return result;
}
