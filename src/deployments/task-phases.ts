// What each phase of a task writes: the task's status, phase and progress and
// the deployment's state, together with their event (one fenced statement
// each, see attempt.ts). The worker runs the runtime's steps and names the
// phase it reached; only this module decides what that means for the rows.
import type { Deployment, Failure, ModelSource, Resources, Task, TaskPhase, TaskProgress, TrafficTarget } from "../domain/types.js";
import { sql, type UpdateObject } from "kysely";
import type { Database, DeploymentPatch, TaskPatch } from "../db/database.js";
import type { AttemptWriter } from "./attempt.js";

type Instances = Deployment["instances"];
type Downloaded = Pick<TaskProgress, "bytesDone" | "bytesTotal">;

/** A jsonb column's value: the object itself (pg and jsonb_populate_record take it as JSON). */
function json<T extends object>(value: T): T {
  return { ...value };
}

function deadlineFrom(task: Task): Date {
  return new Date(Date.now() + task.deadlineSeconds * 1000);
}

const noInstances: Instances = { desired: 0, ready: 0, pending: 0, restarts: 0 };

/** A task picked up by an attempt: RUNNING in its first phase, its deadline counted from now. */
function runningPatch(task: Task, phase: TaskPhase, progress: Partial<TaskProgress>): TaskPatch {
  return {
    status: "RUNNING",
    phase,
    start_time: task.startTime ?? new Date(),
    progress_deadline: deadlineFrom(task),
    progress: json({ ...task.progress, ...progress }),
  };
}

/**
 * DEPLOY picked up: task RUNNING (VALIDATING), deployment INITIALIZING toward
 * the task's revision. A fresh deploy's claim writes the same change
 * (db/tasks.ts CLAIM_TASKS); this is for one resumed by a later attempt.
 */
export async function deployStarted(w: AttemptWriter, instances: Instances): Promise<void> {
  const task = w.task;
  await w.write("STATE_CHANGED", {
    task: runningPatch(task, "VALIDATING", { message: `validating (attempt ${task.attempt})` }),
    deployment: { state: "INITIALIZING", target_revision: task.revision, instances: json(instances) },
  });
}

/** An UPDATE, ROLLBACK or SCALE picked up: the task runs; the deployment keeps its state (UPDATING, ROLLING_BACK) and serves meanwhile. */
export async function changeStarted(w: AttemptWriter, message: string): Promise<void> {
  const task = w.task;
  await w.write("STATE_CHANGED", { task: runningPatch(task, "VALIDATING", { message: `${message} (attempt ${task.attempt})` }) });
}

/** `first`: a first deploy, whose deployment shows DOWNLOADING; a change keeps its state. */
export async function downloadStarted(w: AttemptWriter, uri: string, first = true): Promise<void> {
  await w.progress("DOWNLOADING", { percent: 5, message: `fetching ${uri}` }, first ? { state: "DOWNLOADING" } : undefined);
}

/**
 * Download progress: 5 % to 50 % of the task. `progressed`: more bytes than
 * any try of this attempt had before, which is what extends the progress
 * deadline (a retry downloading the same bytes again does not).
 */
export async function downloadProgressed(w: AttemptWriter, p: { bytesDone: number; bytesTotal: number }, progressed = true): Promise<void> {
  const percent = p.bytesTotal > 0 ? 5 + (45 * p.bytesDone) / p.bytesTotal : 5;
  await w.progress("DOWNLOADING", { percent, bytesDone: p.bytesDone, bytesTotal: p.bytesTotal, message: "downloading weights" }, undefined, progressed);
}

/**
 * A try of the download failed and another follows after `delayMs`: the cause
 * and the next try are shown; no state changes, and the progress deadline is
 * not extended (a failure is not progress), so the retries end by it.
 */
export async function downloadRetrying(w: AttemptWriter, r: { cause: string; tries: number; delayMs: number }): Promise<void> {
  const seconds = Math.max(1, Math.round(r.delayMs / 1000));
  await w.progress("DOWNLOADING", { message: `download failed (try ${r.tries}): ${r.cause}; retrying in ${seconds} s` }, undefined, false);
}

/** Weights in place and nothing to start (0 replicas). */
export async function weightsReady(w: AttemptWriter, downloaded: Downloaded, message: string): Promise<void> {
  await w.progress("DOWNLOADING", { percent: 50, ...downloaded, message });
}

/** Nothing happens between the end of the download and the start of the replicas: one write says both. */
export async function startingReplicas(w: AttemptWriter, downloaded: Downloaded, replicas: number, weightsMessage: string, first = true): Promise<void> {
  await w.progress(
    "STARTING",
    { percent: 55, ...downloaded, replicasDesired: replicas, message: `${weightsMessage}; starting ${replicas} replica(s)` },
    first ? { state: "DEPLOYING" } : undefined,
  );
}

/**
 * Replicas passing health checks: 60 % to 90 %. `serving`: they are the
 * serving revision's (a deploy, a scale), so the deployment's instances
 * follow; a new revision beside the serving one shows in the task only.
 */
export async function healthChecking(w: AttemptWriter, instances: Instances, replicas: number, serving = true): Promise<void> {
  const ready = instances.ready;
  await w.progress(
    "HEALTH_CHECKING",
    {
      percent: 60 + (30 * Math.min(ready, replicas)) / Math.max(replicas, 1),
      replicasReady: ready,
      replicasDesired: replicas,
      message: `${ready}/${replicas} replicas ready`,
    },
    serving ? { instances: json(instances) } : undefined,
  );
}

export async function switchingTraffic(w: AttemptWriter, instances: Instances, replicas: number, serving = true): Promise<void> {
  await w.progress(
    "SWITCHING_TRAFFIC",
    {
      percent: 95,
      replicasReady: instances.ready,
      replicasDesired: replicas,
      message: `${instances.ready}/${replicas} replicas ready; routing traffic to revision ${w.task.revision}`,
    },
    serving ? { instances: json(instances) } : undefined,
  );
}

/**
 * A canary step in force: the split shows on the deployment (its watch sees
 * the canary advance) and the step in the task's progress, where a later
 * attempt resumes it. 90 % to 96 % of the task.
 */
export async function canaryStep(w: AttemptWriter, step: { index: number; of: number; traffic: TrafficTarget[]; pauseSeconds: number }): Promise<void> {
  const share = step.traffic.find((t) => t.revision === w.task.revision)?.percent ?? 0;
  await w.progress(
    "SWITCHING_TRAFFIC",
    {
      percent: 90 + (6 * step.index) / step.of,
      rolloutStep: step.index,
      rolloutSteps: step.of,
      // The step itself is in rolloutStep/rolloutSteps (clients show it beside the message).
      message: `${share}% of requests to revision ${w.task.revision} for ${step.pauseSeconds}s`,
    },
    { traffic: step.traffic.map((t) => ({ ...t })) },
  );
}

/** A canary step held past its pause: too few requests reached the new revision to judge it (not progress: the deadline still runs). */
export async function canaryWaiting(w: AttemptWriter, message: string): Promise<void> {
  await w.progress("SWITCHING_TRAFFIC", { message }, undefined, false);
}

/** The route now sends every request to the new revision: it is the serving one; the old one drains. */
export async function trafficSwitched(
  w: AttemptWriter,
  revision: { model: ModelSource; resources: Resources },
  end: { instances: Instances; endpointUrl: string; previous: number },
): Promise<void> {
  await w.progress(
    "DRAINING",
    {
      percent: 97,
      message: end.previous > 0 ? `revision ${w.task.revision} serves; draining revision ${end.previous}` : `revision ${w.task.revision} serves`,
    },
    {
      serving_revision: w.task.revision,
      model: json(revision.model),
      resources: json(revision.resources),
      instances: json(end.instances),
      endpoint_url: end.endpointUrl,
    },
  );
}

/** The revision serves (RUNNING) or is registered with no replicas (STOPPED); the task COMPLETED. */
export async function deployFinished(
  w: AttemptWriter,
  deployment: Deployment,
  end: { state: "RUNNING" | "STOPPED"; endpointUrl: string; instances: Instances },
): Promise<void> {
  const task = w.current();
  const messages = {
    DEPLOY: "serving",
    UPDATE: `revision ${task.revision} serving`,
    ROLLBACK: `revision ${task.revision} serving`,
    SCALE: "scaled",
    DELETE: "",
  };
  await w.write("TASK_FINISHED", {
    task: {
      status: "COMPLETED",
      phase: "DONE",
      end_time: new Date(),
      progress: json({ ...task.progress, percent: 100, message: end.state === "RUNNING" ? messages[task.kind] : "stopped (0 replicas)" }),
      result: json({ deploymentId: deployment.uid, endpointUrl: end.endpointUrl, revision: task.revision }),
    },
    deployment: {
      state: end.state,
      serving_revision: task.revision,
      target_revision: task.revision,
      endpoint_url: end.endpointUrl,
      instances: json(end.instances),
      active_task_id: null,
      failure: null,
      // All traffic to the serving revision (a canary's split ends here).
      traffic: null,
      // The scaling the task asked for is in force from now on.
      ...(task.scaling ? { scaling: json(task.scaling) } : {}),
    },
  });
}

/** DELETE picked up: in-flight requests drain. */
export async function deleteStarted(w: AttemptWriter): Promise<void> {
  const task = w.task;
  await w.write("STATE_CHANGED", {
    task: runningPatch(task, "DRAINING", { percent: Math.max(task.progress.percent, 10), message: "draining in-flight requests" }),
    deployment: { state: "DELETING" },
  });
}

export async function replicasReleased(w: AttemptWriter): Promise<void> {
  await w.progress("RELEASING", { percent: 80, message: "replicas stopped, route removed" });
}

export async function deleteFinished(w: AttemptWriter, deployment: Deployment): Promise<void> {
  const current = w.current();
  await w.write("DELETED", {
    task: {
      status: "COMPLETED",
      phase: "DONE",
      end_time: new Date(),
      progress: json({ ...current.progress, percent: 100, message: "deleted" }),
      result: json({ deploymentId: deployment.uid, endpointUrl: "", revision: deployment.servingRevision }),
    },
    deployment: {
      state: "DELETED",
      endpoint_url: "",
      instances: json(noInstances),
      active_task_id: null,
    },
  });
}

/**
 * A task ended by a cancel (CancelDeploymentTask, or a delete cancelling it
 * first): its attempt is bumped, which fences the worker running it.
 */
export function cancelledTaskPatch(now: Date, failure: Failure, extra: TaskPatch = {}): UpdateObject<Database, "tasks"> {
  return {
    status: "CANCELLED",
    end_time: now,
    attempt: sql<number>`attempt + 1`,
    lease_owner: null,
    lease_expires_at: null,
    failure: json(failure),
    ...extra,
  };
}

/**
 * What a deployment goes back to when the task changing it fails or is
 * cancelled: the serving revision keeps serving (RUNNING, or STOPPED when its
 * scaling is 0), or, when nothing served yet, FAILED.
 */
export function revertedDeployment(d: Pick<Deployment, "servingRevision" | "scaling">, failure: Failure): { patch: DeploymentPatch; rolledBack: boolean } {
  if (d.servingRevision > 0) {
    return {
      // A canary's split, if any, ends: all traffic back to the serving revision.
      patch: { state: d.scaling.maxReplicas === 0 ? "STOPPED" : "RUNNING", target_revision: d.servingRevision, active_task_id: null, traffic: null },
      rolledBack: true,
    };
  }
  return { patch: { state: "FAILED", failure: json(failure), active_task_id: null, endpoint_url: "", instances: json(noInstances) }, rolledBack: false };
}

/**
 * Ends a task as FAILED. A failed first deploy or delete leaves nothing
 * serving (FAILED; the user can delete, again); a failed update, scale or
 * rollback leaves the serving revision serving.
 */
export async function taskFailed(w: AttemptWriter, failure: Failure, deployment: Pick<Deployment, "servingRevision" | "scaling">): Promise<void> {
  const task = w.current();
  const back =
    task.kind === "DELETE" || task.kind === "DEPLOY"
      ? revertedDeployment({ ...deployment, servingRevision: 0 }, failure)
      : revertedDeployment(deployment, failure);
  await w.write("TASK_FINISHED", {
    // The last progress message may promise a retry that will not come.
    task: {
      status: "FAILED",
      end_time: new Date(),
      failure: json(failure),
      rolled_back: back.rolledBack,
      progress: json({ ...task.progress, message: `failed (${failure.reason}); see the task's failure` }),
    },
    deployment: back.patch,
  });
}
