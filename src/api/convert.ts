// Domain ↔ protobuf, in one place.
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  AcceleratorTypeSchema,
  DeploymentEventSchema,
  DeploymentRevisionSchema,
  DeploymentSchema,
  DeploymentState as PbDeploymentState,
  EventType as PbEventType,
  FailureReason as PbFailureReason,
  FailureSchema,
  ModelType as PbModelType,
  TaskKind as PbTaskKind,
  TaskPhase as PbTaskPhase,
  TaskSchema,
  TaskStatus as PbTaskStatus,
  RolloutStrategy as PbRolloutStrategy,
  type AcceleratorType as PbAcceleratorType,
  type Rollout as PbRollout,
  type Scaling as PbScaling,
  type Deployment as PbDeployment,
  type DeploymentEvent as PbDeploymentEvent,
  type DeploymentRevision as PbDeploymentRevision,
  type Failure as PbFailure,
  type ModelSource as PbModelSource,
  type Resources as PbResources,
  type Task as PbTask,
} from "../gen/modeldeploy/v1/resources_pb.js";
import type { AcceleratorAvailability } from "../deployments/capacity.js";
import { invalidRequest, RefusedError } from "../domain/errors.js";
import { tokenProblems } from "../domain/validation.js";
import type { TokenSealer } from "../secrets/token-seal.js";
import type { RevisionRecord } from "../db/revisions.js";
import {
  withScalingDefaults,
  type Deployment,
  type DeploymentEvent,
  type DeploymentState,
  type Failure,
  type ModelSource,
  type ModelType,
  type Resources,
  type Rollout,
  type Scaling,
  type Task,
  type TaskStatus,
} from "../domain/types.js";
import type { RolloutInput } from "../domain/validation.js";

const ts = (d: Date | null | undefined) => (d ? timestampFromDate(d) : undefined);

export function deploymentStateToPb(s: DeploymentState): PbDeploymentState {
  return PbDeploymentState[s];
}

export function deploymentStateFromPb(s: PbDeploymentState): DeploymentState | undefined {
  const name = PbDeploymentState[s] as string | undefined;
  return name && name !== "UNSPECIFIED" ? (name as DeploymentState) : undefined;
}

export function taskStatusFromPb(s: PbTaskStatus): TaskStatus | undefined {
  const name = PbTaskStatus[s] as string | undefined;
  return name && name !== "UNSPECIFIED" ? (name as TaskStatus) : undefined;
}

export function failureToPb(f: Failure | null): PbFailure | undefined {
  if (!f) return undefined;
  return create(FailureSchema, {
    reason: PbFailureReason[f.reason],
    message: f.message,
    exitCode: f.exitCode,
    logTail: f.logTail ?? "",
    retryable: f.retryable,
    time: ts(new Date(f.time)),
  });
}

/** The token is write-only: a response says only whether one is set. */
export function modelToPb(m: ModelSource): MessageInitShape<typeof DeploymentSchema>["model"] {
  return {
    name: m.name,
    revision: m.revision,
    uri: m.uri,
    sha256: m.sha256,
    task: m.task,
    type: PbModelType[m.type],
    runtime: m.runtime,
    token: "",
    tokenSet: m.tokenSealed !== "",
  };
}

/**
 * The request's model, its token sealed here at the boundary: past this
 * point only the ciphertext exists. `tokenSet` of a request is output only
 * and ignored.
 */
export function modelFromPb(m: PbModelSource | undefined, tokens: TokenSealer | undefined): ModelSource {
  const type = (m ? PbModelType[m.type] : "UNSPECIFIED") as ModelType | undefined;
  const token = m?.token.trim() ?? "";
  const problems = tokenProblems(token);
  if (problems.length > 0) throw invalidRequest(problems);
  if (token && !tokens) {
    throw new RefusedError(
      "failed_precondition",
      "private weights (model.token) need MODELDEPLOY_SECRET_KEY (base64 of 32 random bytes, the same on every api and worker process); this server has none",
      "TOKENS_NOT_CONFIGURED",
      { field: "model.token" },
    );
  }
  const sealed = token && tokens ? { tokenSealed: tokens.seal(token), tokenDigest: tokens.digest(token) } : { tokenSealed: "", tokenDigest: "" };
  return {
    name: m?.name.trim() ?? "",
    revision: m?.revision.trim() ?? "",
    uri: m?.uri.trim() ?? "",
    sha256: m?.sha256.trim().toLowerCase() ?? "",
    task: m?.task.trim() ?? "",
    type: type ?? "UNSPECIFIED",
    runtime: m?.runtime.trim() ?? "",
    ...sealed,
  };
}

export function resourcesFromPb(r: PbResources | undefined): Resources {
  return {
    acceleratorType: r?.acceleratorType.trim() ?? "",
    acceleratorCount: r?.acceleratorCount ?? 0,
    cpu: r?.cpu ?? 0,
    memory: r?.memory.trim() ?? "",
    threadCount: r?.threadCount ?? 0,
    maxBatchSize: r?.maxBatchSize ?? 0,
  };
}

/** The request's scaling, the autoscaler's unset (0) fields given their defaults. */
export function scalingFromPb(s: PbScaling): Scaling {
  return withScalingDefaults(s);
}

/** The request's rollout as asked; validation (domain) fills in the defaults. */
export function rolloutFromPb(r: PbRollout | undefined): RolloutInput | undefined {
  if (!r) return undefined;
  return {
    strategy: r.strategy === PbRolloutStrategy.CANARY ? "CANARY" : r.strategy === PbRolloutStrategy.ALL_AT_ONCE ? "ALL_AT_ONCE" : "UNSPECIFIED",
    steps: r.steps.map((s) => ({ percent: s.percent, pauseSeconds: s.pauseSeconds })),
    maxErrorRate: r.maxErrorRate,
    minRequests: r.minRequests,
  };
}

function rolloutToPb(r: Rollout | null): MessageInitShape<typeof TaskSchema>["rollout"] {
  if (!r) return undefined;
  return { strategy: PbRolloutStrategy[r.strategy], steps: r.steps, maxErrorRate: r.maxErrorRate, minRequests: r.minRequests };
}

export function deploymentToPb(d: Deployment): PbDeployment {
  return create(DeploymentSchema, {
    name: d.name,
    uid: d.uid,
    workspace: d.workspace,
    model: modelToPb(d.model),
    resources: d.resources,
    scaling: d.scaling,
    state: deploymentStateToPb(d.state),
    failure: failureToPb(d.failure),
    instances: d.instances,
    endpointUrl: d.endpointUrl,
    servingRevision: d.servingRevision,
    targetRevision: d.targetRevision,
    activeTaskId: d.activeTaskId ?? "",
    createTime: ts(d.createTime),
    updateTime: ts(d.updateTime),
    creator: d.creator,
    modifier: d.modifier,
    labels: d.labels,
    sequence: BigInt(d.sequence),
    traffic: d.traffic,
  });
}

export function taskToPb(t: Task): PbTask {
  return create(TaskSchema, {
    id: t.id,
    kind: PbTaskKind[t.kind],
    deploymentName: t.deploymentName,
    deploymentUid: t.deploymentUid,
    workspace: t.workspace,
    revision: t.revision,
    status: PbTaskStatus[t.status],
    phase: PbTaskPhase[t.phase],
    progress: {
      percent: t.progress.percent,
      bytesDone: BigInt(t.progress.bytesDone),
      bytesTotal: BigInt(t.progress.bytesTotal),
      replicasReady: t.progress.replicasReady,
      replicasDesired: t.progress.replicasDesired,
      message: t.progress.message,
      rolloutStep: t.progress.rolloutStep,
      rolloutSteps: t.progress.rolloutSteps,
    },
    result: t.result ?? undefined,
    failure: failureToPb(t.failure),
    rolledBack: t.rolledBack,
    attempt: t.attempt,
    requestId: t.requestId,
    creator: t.creator,
    createTime: ts(t.createTime),
    startTime: ts(t.startTime),
    endTime: ts(t.endTime),
    progressDeadline: ts(t.progressDeadline),
    rollout: rolloutToPb(t.rollout),
  });
}

export function eventToPb(e: DeploymentEvent): PbDeploymentEvent {
  return create(DeploymentEventSchema, {
    sequence: BigInt(e.sequence),
    cursor: e.cursor,
    time: ts(e.time),
    type: PbEventType[e.type],
    deployment: deploymentToPb(e.deployment),
    task: e.task ? taskToPb(e.task) : undefined,
    message: e.message,
  });
}

export function revisionToPb(r: RevisionRecord): PbDeploymentRevision {
  return create(DeploymentRevisionSchema, {
    number: r.number,
    model: modelToPb(r.model),
    resources: r.resources,
    createTime: ts(r.createTime),
    taskId: r.taskId,
  });
}

export function acceleratorTypeToPb(a: AcceleratorAvailability): PbAcceleratorType {
  return create(AcceleratorTypeSchema, { name: a.name, memory: a.memory, maxPerReplica: a.maxPerReplica, available: a.available });
}
