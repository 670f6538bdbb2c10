// `--wait`: streams a deployment's events into the progress display until the
// change it waits for has ended, and says how it ended.
import { DeploymentState, TaskStatus, type Deployment, type Task } from "../gen/modeldeploy/v1/resources_pb.js";
import type { ApiClients } from "./client.js";
import type { Progress } from "./progress.js";

const terminal = (t: Task) => t.status === TaskStatus.COMPLETED || t.status === TaskStatus.FAILED || t.status === TaskStatus.CANCELLED;

export interface Followed {
  ok: boolean;
  deployment: Deployment | undefined;
  /** The task as it ended (absent when the watch ended first). */
  task: Task | undefined;
}

/** Until a new deployment's first task ends; ok only when it serves (or is stopped, or idle: serving on demand). */
export async function followDeployment(api: ApiClients, created: Deployment, task: Task, progress: Progress): Promise<Followed> {
  const ac = new AbortController();
  let latest = created;
  let last: Task | undefined = task;
  try {
    for await (const e of api.deployments.watchDeployment({ name: created.name }, { signal: ac.signal })) {
      progress.event(e);
      if (e.task?.id === task.id) last = e.task;
      const d = e.deployment;
      if (!d) continue;
      latest = d;
      if (d.activeTaskId) continue;
      const ok = d.state === DeploymentState.RUNNING || d.state === DeploymentState.STOPPED || d.state === DeploymentState.IDLE;
      if (ok || d.state === DeploymentState.FAILED || d.state === DeploymentState.DELETED) {
        if (!last || !terminal(last)) last = await api.deployments.getDeploymentTask({ taskId: task.id });
        return { ok, deployment: d, task: last };
      }
    }
    return { ok: false, deployment: latest, task: undefined };
  } finally {
    ac.abort();
    progress.stop();
  }
}

/**
 * Until `task` ends: ok when it COMPLETED (a failed update whose previous
 * revision keeps serving is still a failure). The watch starts at the event
 * that queued the task, so none of its events is missed.
 */
export async function followTask(api: ApiClients, queued: Deployment, task: Task, progress: Progress): Promise<Followed> {
  let final = terminal(task) ? task : undefined;
  let latest = queued;
  const ac = new AbortController();
  try {
    if (!final) {
      const afterSequence = queued.sequence > 0n ? queued.sequence - 1n : undefined;
      for await (const e of api.deployments.watchDeployment({ name: queued.name, afterSequence }, { signal: ac.signal })) {
        progress.event(e);
        if (e.deployment) latest = e.deployment;
        if (e.task?.id === task.id && terminal(e.task)) final = e.task;
        // A replayed request's task may have ended before the events watched here.
        else if (e.deployment && e.deployment.activeTaskId !== task.id) {
          const now = await api.deployments.getDeploymentTask({ taskId: task.id });
          if (terminal(now)) final = now;
        }
        if (final) break;
      }
    }
  } finally {
    ac.abort();
    progress.stop();
  }
  return { ok: final?.status === TaskStatus.COMPLETED, deployment: latest, task: final };
}

/** Until the deletion task ends (the stream ends with the DELETED event). */
export async function followDeletion(api: ApiClients, name: string, task: Task, progress: Progress): Promise<Followed> {
  let latest: Deployment | undefined;
  try {
    for await (const e of api.deletions.watchDeletion({ name })) {
      progress.event(e);
      if (e.deployment) latest = e.deployment;
    }
  } finally {
    progress.stop();
  }
  const final = await api.deletions.getDeletionTask({ taskId: task.id });
  return { ok: final.status === TaskStatus.COMPLETED, deployment: latest, task: final };
}
