// Rows ↔ domain objects. jsonb columns hold the domain's own shapes.
import type {
  Deployment, DeploymentEvent, DeploymentState, EventType, Failure, Instances, ModelSource,
  Resources, Scaling, Task, TaskKind, TaskPhase, TaskProgress, TaskResult, TaskStatus,
} from "../domain/types.js";
import type { DeploymentRow, EventRow, TaskRow } from "./database.js";

const asDate = (v: Date | string): Date => (v instanceof Date ? v : new Date(v));
const asDateOrNull = (v: Date | string | null | undefined): Date | null => (v == null ? null : asDate(v));

export function toDeployment(row: DeploymentRow): Deployment {
  return {
    uid: row.uid,
    workspace: row.workspace,
    name: row.name,
    state: row.state as DeploymentState,
    model: row.model as unknown as ModelSource,
    resources: row.resources as unknown as Resources,
    scaling: row.scaling as unknown as Scaling,
    failure: (row.failure as unknown as Failure | null) ?? null,
    instances: row.instances as unknown as Instances,
    endpointUrl: row.endpoint_url,
    servingRevision: row.serving_revision,
    targetRevision: row.target_revision,
    activeTaskId: row.active_task_id,
    labels: row.labels,
    creator: row.creator,
    modifier: row.modifier,
    createTime: asDate(row.create_time),
    updateTime: asDate(row.update_time),
    sequence: row.sequence,
  };
}

export function toTask(row: TaskRow): Task {
  return {
    id: row.id,
    workspace: row.workspace,
    deploymentUid: row.deployment_uid,
    deploymentName: row.deployment_name,
    kind: row.kind as TaskKind,
    revision: row.revision,
    status: row.status as TaskStatus,
    phase: row.phase as TaskPhase,
    progress: row.progress as unknown as TaskProgress,
    result: (row.result as unknown as TaskResult | null) ?? null,
    failure: (row.failure as unknown as Failure | null) ?? null,
    rolledBack: row.rolled_back,
    attempt: row.attempt,
    requestId: row.request_id,
    creator: row.creator,
    createTime: asDate(row.create_time),
    startTime: asDateOrNull(row.start_time),
    endTime: asDateOrNull(row.end_time),
    progressDeadline: asDateOrNull(row.progress_deadline),
    deadlineSeconds: row.deadline_seconds,
  };
}

/** Snapshots in events are JSON: dates travel as strings and come back as Dates. */
export function reviveDeployment(json: Record<string, unknown>): Deployment {
  const d = json as unknown as Deployment & { createTime: string; updateTime: string };
  return { ...d, createTime: asDate(d.createTime), updateTime: asDate(d.updateTime) };
}

export function reviveTask(json: Record<string, unknown>): Task {
  const t = json as unknown as Task;
  return {
    ...t,
    createTime: asDate(t.createTime),
    startTime: asDateOrNull(t.startTime),
    endTime: asDateOrNull(t.endTime),
    progressDeadline: asDateOrNull(t.progressDeadline),
  };
}

export function toEvent(row: EventRow): DeploymentEvent {
  return {
    deploymentUid: row.deployment_uid,
    workspace: row.workspace,
    sequence: row.sequence,
    cursor: String(row.cursor),
    time: asDate(row.time),
    type: row.type as EventType,
    deployment: reviveDeployment(row.deployment),
    task: row.task ? reviveTask(row.task) : null,
  };
}

/** An event as it travels on the live feed (JSON) and back. */
export function eventToJson(event: DeploymentEvent): string {
  return JSON.stringify(event);
}

export function eventFromJson(text: string): DeploymentEvent {
  const raw = JSON.parse(text) as Record<string, unknown> & { deployment: Record<string, unknown>; task: Record<string, unknown> | null; time: string };
  return {
    ...(raw as unknown as DeploymentEvent),
    time: asDate(raw.time),
    deployment: reviveDeployment(raw.deployment),
    task: raw.task ? reviveTask(raw.task) : null,
  };
}
