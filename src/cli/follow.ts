// `--wait`: streams a deployment's events and prints them until the change
// it waits for has ended.
import { DeploymentState, TaskStatus, type Deployment, type Task } from "../gen/modeldeploy/v1/resources_pb.js";
import type { ApiClients } from "./client.js";
import { deploymentLine, eventLine, out, taskOutcomeLine } from "./format.js";

const terminal = (t: Task) => t.status === TaskStatus.COMPLETED || t.status === TaskStatus.FAILED || t.status === TaskStatus.CANCELLED;

/** Until a new deployment's first task ends; exit code 0 only when it serves (or is stopped). */
export async function followDeployment(api: ApiClients, name: string, quiet: boolean): Promise<number> {
  const ac = new AbortController();
  try {
    for await (const e of api.deployments.watchDeployment({ name }, { signal: ac.signal })) {
      if (!quiet) out(eventLine(e));
      const d = e.deployment;
      if (!d || d.activeTaskId) continue;
      if (d.state === DeploymentState.RUNNING || d.state === DeploymentState.STOPPED) {
        out(deploymentLine(d));
        return 0;
      }
      if (d.state === DeploymentState.FAILED || d.state === DeploymentState.DELETED) {
        out(deploymentLine(d));
        if (d.failure?.logTail) out(d.failure.logTail);
        return 1;
      }
    }
    return 1;
  } finally {
    ac.abort();
  }
}

/**
 * Until `task` ends: exit code 0 when it COMPLETED, 1 otherwise (a failed
 * update whose previous revision keeps serving is still a failure). The watch
 * starts at the event that queued the task, so none of its events is missed.
 */
export async function followTask(api: ApiClients, queued: Deployment, task: Task, quiet: boolean): Promise<number> {
  let final = terminal(task) ? task : undefined;
  let latest = queued;
  const ac = new AbortController();
  try {
    if (!final) {
      const afterSequence = queued.sequence > 0n ? queued.sequence - 1n : undefined;
      for await (const e of api.deployments.watchDeployment({ name: queued.name, afterSequence }, { signal: ac.signal })) {
        if (!quiet) out(eventLine(e));
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
  }
  if (!final) {
    out(`task ${task.id}: the watch ended before the task did; see \`modeldeploy task ${task.id}\``);
    return 1;
  }
  out(deploymentLine(latest));
  out(taskOutcomeLine(final));
  if (final.failure?.logTail) out(final.failure.logTail);
  return final.status === TaskStatus.COMPLETED ? 0 : 1;
}
