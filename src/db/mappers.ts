// Rows ↔ domain objects. jsonb columns hold the domain's own shapes.
import {
  emptyProgress,
  withScalingDefaults,
  withTokenDefaults,
  type Deployment,
  type DeploymentEvent,
  type DeploymentState,
  type Task,
  type TrafficTarget,
} from "../domain/types.js";
import type { DeploymentRow, EventRow, NewDeploymentRow, NewTaskRow, TaskRow } from "./database.js";

const asDate = (v: Date | string): Date => (v instanceof Date ? v : new Date(v));
const asDateOrNull = (v: Date | string | null | undefined): Date | null => (v == null ? null : asDate(v));

export function toDeployment(row: DeploymentRow): Deployment {
  return {
    uid: row.uid,
    workspace: row.workspace,
    name: row.name,
    state: row.state,
    model: withTokenDefaults(row.model),
    resources: row.resources,
    scaling: withScalingDefaults(row.scaling),
    failure: row.failure ?? null,
    instances: row.instances,
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
    traffic: row.traffic ?? trafficOf(row.state, row.serving_revision),
  };
}

/** States in which the serving revision takes requests (IDLE: a request wakes it). */
const SERVING_STATES: ReadonlySet<DeploymentState> = new Set(["RUNNING", "UPDATING", "ROLLING_BACK", "IDLE"]);

/** Outside a canary (no split stored), all traffic goes to the serving revision while it serves. */
function trafficOf(state: DeploymentState, servingRevision: number): TrafficTarget[] {
  return servingRevision > 0 && SERVING_STATES.has(state) ? [{ revision: servingRevision, percent: 100 }] : [];
}

export function toTask(row: TaskRow): Task {
  return {
    id: row.id,
    workspace: row.workspace,
    deploymentUid: row.deployment_uid,
    deploymentName: row.deployment_name,
    kind: row.kind,
    revision: row.revision,
    status: row.status,
    phase: row.phase,
    // Rows from before canaries have no step fields.
    progress: { ...emptyProgress(), ...row.progress },
    result: row.result ?? null,
    failure: row.failure ?? null,
    rolledBack: row.rolled_back,
    attempt: row.attempt,
    requestId: row.request_id,
    creator: row.creator,
    createTime: asDate(row.create_time),
    startTime: asDateOrNull(row.start_time),
    endTime: asDateOrNull(row.end_time),
    progressDeadline: asDateOrNull(row.progress_deadline),
    deadlineSeconds: row.deadline_seconds,
    scaling: row.scaling ? withScalingDefaults(row.scaling) : null,
    rollout: row.rollout ?? null,
  };
}

/** Events store the deployment and task rows (to_jsonb) as they were after the change. */
export function toEvent(row: EventRow): DeploymentEvent {
  return {
    deploymentUid: row.deployment_uid,
    workspace: row.workspace,
    sequence: row.sequence,
    cursor: String(row.cursor),
    time: asDate(row.time),
    type: row.type,
    deployment: toDeployment(row.deployment as unknown as DeploymentRow),
    task: row.task ? toTask(row.task as unknown as TaskRow) : null,
    message: row.message ?? "",
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
    deployment: reviveDates(raw.deployment as unknown as Deployment, ["createTime", "updateTime"]),
    task: raw.task ? reviveDates(raw.task as unknown as Task, ["createTime", "startTime", "endTime", "progressDeadline"]) : null,
  };
}

// jsonb values go to pg as objects (pg serializes them), and to
// jsonb_populate_recordset as JSON values, never as JSON text.

export function deploymentToRow(d: Deployment): NewDeploymentRow {
  return {
    uid: d.uid,
    workspace: d.workspace,
    name: d.name,
    state: d.state,
    model: d.model,
    resources: d.resources,
    scaling: d.scaling,
    failure: d.failure ? d.failure : null,
    instances: d.instances,
    endpoint_url: d.endpointUrl,
    serving_revision: d.servingRevision,
    target_revision: d.targetRevision,
    active_task_id: d.activeTaskId,
    labels: d.labels,
    creator: d.creator,
    modifier: d.modifier,
    create_time: d.createTime,
    update_time: d.updateTime,
    sequence: d.sequence,
  };
}

export function taskToRow(t: Task, extra: { requestHash: string; enqueuedAt: Date }): NewTaskRow {
  return {
    id: t.id,
    workspace: t.workspace,
    deployment_uid: t.deploymentUid,
    deployment_name: t.deploymentName,
    kind: t.kind,
    revision: t.revision,
    status: t.status,
    phase: t.phase,
    progress: t.progress,
    result: t.result ? t.result : null,
    failure: t.failure ? t.failure : null,
    rolled_back: t.rolledBack,
    attempt: t.attempt,
    lease_owner: null,
    lease_expires_at: null,
    request_id: t.requestId,
    request_hash: extra.requestHash,
    creator: t.creator,
    create_time: t.createTime,
    start_time: t.startTime,
    end_time: t.endTime,
    deadline_seconds: t.deadlineSeconds,
    progress_deadline: t.progressDeadline,
    enqueue_count: 0,
    enqueued_at: extra.enqueuedAt,
    scaling: t.scaling,
    rollout: t.rollout,
  };
}

function reviveDates<T extends object>(value: T, keys: Array<keyof T>): T {
  const out = { ...value };
  for (const k of keys) {
    const v = out[k] as unknown;
    if (typeof v === "string") (out as Record<keyof T, unknown>)[k] = new Date(v);
  }
  return out;
}
