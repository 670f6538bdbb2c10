// Carries out one claimed task on the runtime, recording every phase. Steps
// are idempotent, so a redelivered task simply runs them again: the driver
// finds weights cached and replicas already started.
import type { Db } from "../db/connect.js";
import { findDeploymentByUid } from "../db/deployments.js";
import { toDeployment } from "../db/mappers.js";
import type { EventSink } from "../db/transact.js";
import { parseMemory } from "../domain/quantities.js";
import type { Deployment, Failure, Task } from "../domain/types.js";
import { initialReplicas } from "../domain/validation.js";
import type { Logger } from "../log.js";
import { RuntimeError, type RevisionSpec, type RuntimeDriver } from "../runtime/driver.js";
import { createAttemptWriter, failureOf, type AttemptChanges, type AttemptWriter } from "../deployments/attempt.js";
import * as phases from "../deployments/task-phases.js";
import { waitForReplicas } from "./wait-replicas.js";
import { loadRevision, toRevisionRecord } from "../db/revisions.js";
import type { DeploymentRow, RevisionRow } from "../db/database.js";

export interface RunTaskDeps {
  db: Db;
  changes: AttemptChanges;
  sink: EventSink;
  driver: RuntimeDriver;
  logger: Logger;
  healthPollMs: number;
}

/** A failure that ends the task (as opposed to a retryable hiccup). */
export class TaskFailure extends Error {
  override readonly name = "TaskFailure";
  constructor(readonly failure: Failure) {
    super(failure.message);
  }
}

/** Rows the claim already read with the task (saves their round trips). */
export interface Preloaded {
  deployment: DeploymentRow | undefined;
  revision: RevisionRow | undefined;
}

export async function runTask(deps: RunTaskDeps, task: Task, outer: AbortSignal, preloaded?: Preloaded): Promise<void> {
  const w = createAttemptWriter(deps.changes, deps.sink, task);
  const row = preloaded ? preloaded.deployment : await findDeploymentByUid(deps.db, task.deploymentUid);
  if (!row) throw new TaskFailure(failureOf("INTERNAL", `deployment ${task.deploymentUid} of task ${task.id} is missing`));
  const deployment = toDeployment(row);
  const expired = () =>
    new TaskFailure(failureOf("PROGRESS_DEADLINE_EXCEEDED", `task ${task.id} made no progress for ${task.deadlineSeconds}s (phase ${w.current().phase}); check the weights URI and the runtime, then retry, or raise progressDeadlineSeconds`));
  // A delete always runs to the end: its steps are idempotent and retried.
  if (task.kind !== "DELETE" && task.progressDeadline && task.progressDeadline.getTime() < Date.now()) throw expired();

  // Any step that stalls (a download that hangs, say) is cut off at the deadline.
  const ac = new AbortController();
  const forward = () => ac.abort(outer.reason);
  outer.addEventListener("abort", forward, { once: true });
  const watchdog = setInterval(() => {
    const deadline = w.current().progressDeadline;
    if (task.kind !== "DELETE" && deadline && deadline.getTime() < Date.now()) ac.abort(expired());
  }, 1000);
  try {
    switch (task.kind) {
      case "DEPLOY":
        return await deploy(deps, w, deployment, ac.signal, preloaded?.revision);
      case "DELETE":
        return await remove(deps, w, deployment);
      default:
        throw new TaskFailure(failureOf("INTERNAL", `task kind ${task.kind} is not supported by this worker yet`));
    }
  } catch (err) {
    const final = ac.signal.reason instanceof TaskFailure ? ac.signal.reason : err;
    // A deploy that ends in failure leaves no replicas behind.
    if (task.kind === "DEPLOY" && failureFromError(final)) await deps.driver.stopRevision(deployment.uid, task.revision).catch(() => {});
    throw final;
  } finally {
    clearInterval(watchdog);
    outer.removeEventListener("abort", forward);
  }
}

async function deploy(deps: RunTaskDeps, w: AttemptWriter, deployment: Deployment, signal: AbortSignal, revisionRow: RevisionRow | undefined): Promise<void> {
  const task = w.task;
  const revision = revisionRow && revisionRow.number === task.revision ? toRevisionRecord(revisionRow) : await loadRevision(deps.db, deployment.uid, task.revision);
  const replicas = initialReplicas(deployment.scaling);
  const spec: RevisionSpec = {
    deploymentUid: deployment.uid,
    workspace: deployment.workspace,
    deploymentName: deployment.name,
    revision: task.revision,
    model: revision.model,
    resources: { ...revision.resources, memoryBytes: parseMemory(revision.resources.memory) ?? 0 },
    replicas,
  };
  const instances = { desired: replicas, ready: 0, pending: 0, restarts: 0 };

  await phases.deployStarted(w, instances);
  await phases.downloadStarted(w, spec.model.uri);
  let lastWrite = 0;
  // The write above already says nothing is downloaded yet: a report of 0
  // bytes would only repeat it.
  let lastDone = 0;
  // Progress writes are chained so they land in order; their first error
  // (a fenced write, say) is kept and surfaces after the download.
  let pending: Promise<void> = Promise.resolve();
  let progressError: unknown;
  const onProgress = (p: { bytesDone: number; bytesTotal: number }) => {
    const now = Date.now();
    // Throttled: one row and event per 200 ms at most, and always the last one.
    if (p.bytesDone === lastDone || (now - lastWrite < 200 && p.bytesDone !== p.bytesTotal)) return;
    lastWrite = now;
    lastDone = p.bytesDone;
    pending = pending
      .then(() => (progressError === undefined ? phases.downloadProgressed(w, p) : undefined))
      .catch((err: unknown) => {
        progressError ??= err;
      });
  };
  let weights;
  try {
    weights = await deps.driver.prepareWeights(spec, onProgress, signal);
  } finally {
    await pending;
  }
  if (progressError !== undefined) throw progressError;
  const weightsReady = `weights ready (sha256 ${weights.sha256.slice(0, 12)}…)`;
  const downloaded = { bytesDone: weights.bytes, bytesTotal: weights.bytes };

  if (replicas === 0) {
    await phases.weightsReady(w, downloaded, weightsReady);
    // Registered with no replicas: the route exists and answers 503 (stopped).
    await deps.driver.startRevision(spec, weights);
    await deps.driver.switchTraffic(spec);
    await phases.deployFinished(w, deployment, { state: "STOPPED", endpointUrl: "", instances });
    return;
  }

  await phases.startingReplicas(w, downloaded, replicas, weightsReady);
  await deps.driver.startRevision(spec, weights);

  // The first status records HEALTH_CHECKING with the replicas' count; the
  // one that ends the wait goes with the SWITCHING_TRAFFIC write.
  const waited = await waitForReplicas({
    driver: deps.driver,
    deploymentUid: deployment.uid,
    revision: task.revision,
    wanted: replicas,
    deadline: () => w.current().progressDeadline ?? undefined,
    pollMs: deps.healthPollMs,
    signal,
    async onReadyCount(status) {
      instances.ready = status.ready;
      instances.pending = status.pending;
      await phases.healthChecking(w, instances, replicas);
    },
  });
  if (waited.outcome === "exited" && waited.status.exited) {
    const { exitCode: code, signal: killedBy, logTail } = waited.status.exited;
    throw new TaskFailure(failureOf("SERVER_EXITED",
      `the model server exited while starting (${code !== null ? `exit code ${code}` : `signal ${killedBy}`}); see logTail, check that the weights are a valid model for runtime "${spec.model.runtime || "onnx"}"`,
      { exitCode: code ?? undefined, logTail }));
  }
  if (waited.outcome !== "ready") {
    throw new TaskFailure(failureOf("HEALTH_CHECK_TIMEOUT",
      `only ${waited.status.ready}/${replicas} replicas passed health checks within ${task.deadlineSeconds}s; check the model server's logs or raise progressDeadlineSeconds`));
  }

  instances.ready = waited.status.ready;
  instances.pending = waited.status.pending;
  await phases.switchingTraffic(w, instances, replicas);
  const endpointUrl = await deps.driver.switchTraffic(spec);
  await phases.deployFinished(w, deployment, { state: "RUNNING", endpointUrl, instances });
}

async function remove(deps: RunTaskDeps, w: AttemptWriter, deployment: Deployment): Promise<void> {
  await phases.deleteStarted(w);
  await deps.driver.release(deployment.uid);
  await phases.replicasReleased(w);
  await phases.deleteFinished(w, deployment);
}

export function failureFromError(err: unknown): Failure | undefined {
  if (err instanceof TaskFailure) return err.failure;
  if (err instanceof RuntimeError && !err.retryable) {
    return failureOf(err.reason === "INVALID_SPEC" ? "INVALID_SPEC" : err.reason, err.message, {
      exitCode: err.options.exitCode,
      logTail: err.options.logTail,
    });
  }
  return undefined;
}
