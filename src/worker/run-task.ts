// Carries out one claimed task on the runtime, recording every phase. Steps
// are idempotent, so a redelivered task simply runs them again: the driver
// finds weights cached and replicas already started.
import type { Db } from "../db/connect.js";
import { findDeploymentByUid } from "../db/deployments.js";
import { toDeployment } from "../db/mappers.js";
import type { EventSink } from "../db/transact.js";
import { isAutoscaled, type Deployment, type DeploymentEvent, type Failure, type Instances, type Task } from "../domain/types.js";
import { initialReplicas } from "../domain/validation.js";
import type { Logger } from "../log.js";
import { RuntimeError, type PreparedWeights, type RevisionSpec, type RuntimeDriver } from "../runtime/driver.js";
import type { TokenSealer } from "../secrets/token-seal.js";
import type { RetryPolicy } from "./retry-schedule.js";
import { createAttemptWriter, failureOf, type AttemptChanges, type AttemptWriter } from "../deployments/attempt.js";
import * as phases from "../deployments/task-phases.js";
import { downloadWeights } from "./download-weights.js";
import { revisionSpec } from "./model-spec.js";
import { TaskFailure } from "./task-failure.js";
import { waitForReplicas } from "./wait-replicas.js";
import { runCanary } from "./canary.js";
import { loadRevision, toRevisionRecord, type RevisionRecord } from "../db/revisions.js";
import type { DeploymentRow, RevisionRow } from "../db/database.js";

export interface RunTaskDeps {
  db: Db;
  changes: AttemptChanges;
  sink: EventSink;
  driver: RuntimeDriver;
  logger: Logger;
  healthPollMs: number;
  /** How downloads that fail for a passing reason are retried in the task; default DOWNLOAD_RETRY. */
  downloadRetry?: RetryPolicy | undefined;
  /** Opens sealed model tokens; without it a model with a token fails with INVALID_SPEC. */
  tokens?: TokenSealer | undefined;
}

/** Rows the claim already read with the task (saves their round trips). */
export interface Preloaded {
  deployment: DeploymentRow | undefined;
  revision: RevisionRow | undefined;
  /** Set when the claim also started the task (a fresh deploy): its start is written. */
  started?: DeploymentEvent | undefined;
}

export async function runTask(deps: RunTaskDeps, task: Task, outer: AbortSignal, preloaded?: Preloaded): Promise<void> {
  const w = createAttemptWriter(deps.changes, deps.sink, task);
  const row = preloaded ? preloaded.deployment : await findDeploymentByUid(deps.db, task.deploymentUid);
  if (!row) throw new TaskFailure(failureOf("INTERNAL", `deployment ${task.deploymentUid} of task ${task.id} is missing`));
  const deployment = toDeployment(row);
  const expired = () =>
    new TaskFailure(
      failureOf(
        "PROGRESS_DEADLINE_EXCEEDED",
        `task ${task.id} made no progress for ${task.deadlineSeconds}s (phase ${w.current().phase}); check the weights URI and the runtime, then retry, or raise progressDeadlineSeconds`,
      ),
    );
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
        return await deploy(deps, w, deployment, ac.signal, preloaded?.revision, preloaded?.started !== undefined);
      case "UPDATE":
      case "ROLLBACK":
        return await rollout(deps, w, deployment, ac.signal, preloaded?.revision);
      case "SCALE":
        return await scale(deps, w, deployment, ac.signal, preloaded?.revision);
      case "DELETE":
        return await remove(deps, w, deployment);
    }
  } catch (err) {
    // The runtime is put back as the deployment says by the caller (settle-runtime.ts).
    // A step's own failure (the download's cause, say) says more than the watchdog's.
    throw err instanceof TaskFailure || !(ac.signal.reason instanceof TaskFailure) ? err : ac.signal.reason;
  } finally {
    clearInterval(watchdog);
    outer.removeEventListener("abort", forward);
  }
}

async function taskRevision(deps: RunTaskDeps, deployment: Deployment, number: number, preloaded: RevisionRow | undefined): Promise<RevisionRecord> {
  return preloaded && preloaded.number === number ? toRevisionRecord(preloaded) : loadRevision(deps.db, deployment.uid, number);
}

/** Starts the revision's replicas and waits until all pass their health checks; the instances they reached. */
async function startReplicas(
  deps: RunTaskDeps,
  w: AttemptWriter,
  spec: RevisionSpec,
  weights: PreparedWeights,
  signal: AbortSignal,
  serving: boolean,
): Promise<Instances> {
  const replicas = spec.replicas;
  const instances: Instances = { desired: replicas, ready: 0, pending: 0, restarts: 0 };
  await deps.driver.startRevision(spec, weights);
  // The first status records HEALTH_CHECKING with the replicas' count; the
  // one that ends the wait goes with the SWITCHING_TRAFFIC (or final) write.
  const waited = await waitForReplicas({
    driver: deps.driver,
    deploymentUid: spec.deploymentUid,
    revision: spec.revision,
    wanted: replicas,
    deadline: () => w.current().progressDeadline ?? undefined,
    pollMs: deps.healthPollMs,
    signal,
    async onReadyCount(status) {
      instances.ready = status.ready;
      instances.pending = status.pending;
      await phases.healthChecking(w, instances, replicas, serving);
    },
  });
  if (waited.outcome === "exited" && waited.status.exited) {
    const { exitCode: code, signal: killedBy, logTail } = waited.status.exited;
    throw new TaskFailure(
      failureOf(
        "SERVER_EXITED",
        `the model server exited while starting (${code !== null ? `exit code ${code}` : `signal ${killedBy}`}); see logTail, check that the weights are a valid model for runtime "${spec.model.runtime || "onnx"}"`,
        { exitCode: code ?? undefined, logTail },
      ),
    );
  }
  if (waited.outcome !== "ready") {
    throw new TaskFailure(
      failureOf(
        "HEALTH_CHECK_TIMEOUT",
        `only ${waited.status.ready}/${replicas} replicas passed health checks within ${w.task.deadlineSeconds}s; check the model server's logs or raise progressDeadlineSeconds`,
      ),
    );
  }
  instances.ready = waited.status.ready;
  instances.pending = waited.status.pending;
  return instances;
}

const weightsMessage = (weights: PreparedWeights) => `weights ready (sha256 ${weights.sha256.slice(0, 12)}…)`;
const downloadedOf = (weights: PreparedWeights) => ({ bytesDone: weights.bytes, bytesTotal: weights.bytes });

/** `started`: the claim wrote the start already (a fresh deploy, see db/tasks.ts). */
async function deploy(
  deps: RunTaskDeps,
  w: AttemptWriter,
  deployment: Deployment,
  signal: AbortSignal,
  revisionRow: RevisionRow | undefined,
  started: boolean,
): Promise<void> {
  const task = w.task;
  const replicas = initialReplicas(deployment.scaling);
  const spec = revisionSpec(
    deployment,
    task.revision,
    await taskRevision(deps, deployment, task.revision, revisionRow),
    replicas,
    deployment.scaling,
    deps.tokens,
  );
  const none: Instances = { desired: replicas, ready: 0, pending: 0, restarts: 0 };
  if (!started) await phases.deployStarted(w, none);
  const weights = await downloadWeights(deps, w, spec, signal, true);

  if (replicas === 0) {
    await phases.weightsReady(w, downloadedOf(weights), weightsMessage(weights));
    // Registered with no replicas: the route exists and answers 503 (stopped).
    await deps.driver.startRevision(spec, weights);
    await deps.driver.switchTraffic(spec);
    await phases.deployFinished(w, deployment, { state: "STOPPED", endpointUrl: "", instances: none });
    return;
  }
  // Nothing happens between the end of the download and the start of the
  // replicas: one write says both.
  await phases.startingReplicas(w, downloadedOf(weights), replicas, weightsMessage(weights));
  const instances = await startReplicas(deps, w, spec, weights, signal, true);
  const endpointUrl = await switchServingTraffic(deps, w, spec, instances);
  await phases.deployFinished(w, deployment, { state: "RUNNING", endpointUrl, instances });
}

/** Routes the deployment's traffic to its revision; SWITCHING_TRAFFIC is recorded first unless the switch is instant (the final write then says it). */
async function switchServingTraffic(deps: RunTaskDeps, w: AttemptWriter, spec: RevisionSpec, instances: Instances): Promise<string> {
  if (deps.driver.switchesAtOnce !== true) await phases.switchingTraffic(w, instances, spec.replicas);
  return deps.driver.switchTraffic(spec);
}

/**
 * UPDATE and ROLLBACK: a green rollout. The new revision starts beside the
 * serving one, which serves until the new one is healthy; a canary then
 * moves a growing share of requests to it (canary.ts); the route then
 * switches all of them and the old revision drains. Any failure before the
 * switch leaves the old revision serving (worker.ts settles the runtime).
 */
async function rollout(deps: RunTaskDeps, w: AttemptWriter, deployment: Deployment, signal: AbortSignal, revisionRow: RevisionRow | undefined): Promise<void> {
  const task = w.task;
  const previous = deployment.servingRevision;
  const revision = await taskRevision(deps, deployment, task.revision, revisionRow);
  const scaling = task.scaling ?? deployment.scaling;
  // Autoscaled: the new revision starts with as many replicas as the load has asked for, to take it over.
  const replicas = isAutoscaled(scaling)
    ? Math.max(initialReplicas(scaling), Math.min(deployment.instances.desired, scaling.maxReplicas))
    : initialReplicas(scaling);
  const spec = revisionSpec(deployment, task.revision, revision, replicas, scaling, deps.tokens);
  await phases.changeStarted(w, previous > 0 ? `rolling out revision ${task.revision} beside revision ${previous}` : `deploying revision ${task.revision}`);
  const weights = await downloadWeights(deps, w, spec, signal, false);
  let instances: Instances = { desired: 0, ready: 0, pending: 0, restarts: 0 };
  if (replicas === 0) {
    await phases.weightsReady(w, downloadedOf(weights), weightsMessage(weights));
    await deps.driver.startRevision(spec, weights);
  } else {
    await phases.startingReplicas(w, downloadedOf(weights), replicas, weightsMessage(weights), false);
    instances = await startReplicas(deps, w, spec, weights, signal, false);
    const plan = task.rollout;
    if (plan?.strategy === "CANARY" && previous > 0 && previous !== task.revision && deployment.state !== "STOPPED") {
      await runCanary(deps.driver, w, spec, previous, plan, signal);
    }
    await phases.switchingTraffic(w, instances, replicas, false);
  }
  const switched = await deps.driver.switchTraffic(spec);
  const endpointUrl = replicas === 0 ? "" : switched;
  await phases.trafficSwitched(w, revision, { instances, endpointUrl, previous });
  if (previous > 0 && previous !== task.revision) await deps.driver.stopRevision(deployment.uid, previous);
  await phases.deployFinished(w, deployment, { state: replicas === 0 ? "STOPPED" : "RUNNING", endpointUrl, instances });
}

/** SCALE: the serving revision's replicas to the new scaling; 0 stops it (the route stays and answers 503), more resumes it. */
async function scale(deps: RunTaskDeps, w: AttemptWriter, deployment: Deployment, signal: AbortSignal, revisionRow: RevisionRow | undefined): Promise<void> {
  const task = w.task;
  const scaling = task.scaling ?? deployment.scaling;
  const replicas = initialReplicas(scaling);
  await phases.changeStarted(w, replicas === 0 ? `stopping revision ${task.revision}` : `scaling revision ${task.revision} to ${replicas} replica(s)`);
  if (replicas === 0) {
    await deps.driver.stopRevision(deployment.uid, task.revision);
    await phases.deployFinished(w, deployment, { state: "STOPPED", endpointUrl: "", instances: { desired: 0, ready: 0, pending: 0, restarts: 0 } });
    return;
  }
  const spec = revisionSpec(deployment, task.revision, await taskRevision(deps, deployment, task.revision, revisionRow), replicas, scaling, deps.tokens);
  // The serving revision's weights are in the cache (a stop keeps them):
  // no download phase to show; were they evicted, the bytes still count.
  const weights = await deps.driver.prepareWeights(spec, () => {}, signal);
  await phases.startingReplicas(w, downloadedOf(weights), replicas, weightsMessage(weights), false);
  const instances = await startReplicas(deps, w, spec, weights, signal, true);
  const endpointUrl = await switchServingTraffic(deps, w, spec, instances);
  await phases.deployFinished(w, deployment, { state: "RUNNING", endpointUrl, instances });
}

async function remove(deps: RunTaskDeps, w: AttemptWriter, deployment: Deployment): Promise<void> {
  await phases.deleteStarted(w);
  await deps.driver.release(deployment.uid);
  await phases.replicasReleased(w);
  await phases.deleteFinished(w, deployment);
}

export { TaskFailure };

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
