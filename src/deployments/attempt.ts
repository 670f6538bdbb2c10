// Writes of one attempt of one task: each is fenced on (task id, attempt), so
// once another attempt (or a cancellation) takes the task, this one stops.
import type { AttemptChange, AttemptChangeResult } from "../db/attempt-changes.js";
import type { DeploymentPatch, TaskPatch } from "../db/database.js";
import type { Coalescer } from "../db/coalescer.js";
import type { EventSink } from "../db/transact.js";
import type { DeploymentEvent, EventType, Failure, Task, TaskPhase, TaskProgress } from "../domain/types.js";

export interface AttemptWriter {
  readonly task: Task;
  /** The task as last written by this attempt. */
  current(): Task;
  write(type: EventType, change: { task?: TaskPatch; deployment?: DeploymentPatch }): Promise<DeploymentEvent>;
  /** Phase and progress; percent never goes down within a task. */
  progress(phase: TaskPhase, progress: Partial<TaskProgress>, deployment?: DeploymentPatch, extendDeadline?: boolean): Promise<void>;
}

export type AttemptChanges = Coalescer<AttemptChange, AttemptChangeResult>;

export function createAttemptWriter(changes: AttemptChanges, sink: EventSink, task: Task): AttemptWriter {
  let latest = task;
  const write: AttemptWriter["write"] = async (type, change) => {
    // One statement, atomic on its own: no explicit transaction needed.
    const event = await changes.run({
      deploymentUid: task.deploymentUid,
      type,
      taskId: task.id,
      attempt: task.attempt,
      task: change.task ?? {},
      deployment: change.deployment ?? {},
    });
    if (event instanceof Error) throw event;
    sink([event]);
    if (event.task) latest = event.task;
    return event;
  };
  return {
    task,
    current: () => latest,
    write,
    async progress(phase, progress, deployment, extendDeadline = true) {
      const merged: TaskProgress = { ...latest.progress, ...progress };
      merged.percent = Math.max(latest.progress.percent, Math.min(100, Math.round(merged.percent)));
      const patch: TaskPatch = { phase, progress: { ...merged } };
      if (extendDeadline) patch.progress_deadline = new Date(Date.now() + latest.deadlineSeconds * 1000);
      const type: EventType = deployment?.state !== undefined ? "STATE_CHANGED" : "PROGRESS";
      await write(type, { task: patch, deployment });
    },
  };
}

export function failureOf(reason: Failure["reason"], message: string, extra: Partial<Failure> = {}): Failure {
  return { reason, message, retryable: false, time: new Date().toISOString(), ...extra };
}
