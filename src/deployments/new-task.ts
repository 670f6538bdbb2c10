import { emptyProgress, type Principal, type Rollout, type Scaling, type Task, type TaskKind } from "../domain/types.js";

/** A task as it is queued: PENDING, phase QUEUED, no attempt yet. */
export function newTask(t: {
  id: string;
  kind: TaskKind;
  principal: Principal;
  uid: string;
  name: string;
  revision: number;
  requestId: string;
  deadlineSeconds: number;
  now: Date;
  scaling?: Scaling;
  rollout?: Rollout;
  message?: string;
}): Task {
  return {
    id: t.id,
    workspace: t.principal.workspace,
    deploymentUid: t.uid,
    deploymentName: t.name,
    kind: t.kind,
    revision: t.revision,
    status: "PENDING",
    phase: "QUEUED",
    progress: { ...emptyProgress(), message: t.message ?? "queued" },
    result: null,
    failure: null,
    rolledBack: false,
    attempt: 0,
    requestId: t.requestId,
    creator: t.principal.name,
    createTime: t.now,
    startTime: null,
    endTime: null,
    // Set at creation too, so a task no worker ever picks up still ends.
    progressDeadline: new Date(t.now.getTime() + t.deadlineSeconds * 1000),
    deadlineSeconds: t.deadlineSeconds,
    scaling: t.scaling ?? null,
    rollout: t.rollout ?? null,
  };
}
