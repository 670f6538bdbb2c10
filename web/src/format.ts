// How values read on the page: enum names without their prefix, sizes, times.
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import {
  DeploymentState,
  FailureReason,
  TaskKind,
  TaskPhase,
  TaskStatus,
  type Deployment,
  type ModelSource,
  type Resources,
  type Scaling,
  type Task,
} from "../../src/gen/modeldeploy/v1/resources_pb.js";

export const stateName = (s: DeploymentState) => DeploymentState[s] ?? String(s);
export const phaseName = (p: TaskPhase) => TaskPhase[p] ?? String(p);
export const statusName = (s: TaskStatus) => TaskStatus[s] ?? String(s);
export const kindName = (k: TaskKind) => TaskKind[k] ?? String(k);
export const reasonName = (r: FailureReason) => FailureReason[r] ?? String(r);

export function bytes(n: bigint): string {
  const v = Number(n);
  if (v < 1024) return `${v} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let x = v / 1024;
  let i = 0;
  while (x >= 1024 && i < units.length - 1) {
    x /= 1024;
    i++;
  }
  return `${x.toFixed(x < 10 ? 1 : 0)} ${units[i]}`;
}

export function time(t: Timestamp | undefined): string {
  return t === undefined ? "" : timestampDate(t).toLocaleString();
}

export function modelLabel(m: ModelSource | undefined): string {
  if (m === undefined) return "";
  return m.revision ? `${m.name}@${m.revision}` : m.name;
}

export function resourcesLabel(r: Resources | undefined): string {
  if (r === undefined) return "default resources";
  const parts = [
    r.acceleratorType ? `${r.acceleratorCount || 1}× ${r.acceleratorType}` : "",
    r.cpu ? `${r.cpu} CPU` : "",
    r.memory ? r.memory : "",
    r.threadCount ? `${r.threadCount} threads` : "",
    r.maxBatchSize ? `batch ${r.maxBatchSize}` : "",
  ].filter(Boolean);
  return parts.length ? parts.join(" · ") : "default resources";
}

/** CSS class of a state's badge: settled, moving or failed. */
export function stateTone(s: DeploymentState): string {
  switch (s) {
    case DeploymentState.RUNNING:
      return "ok";
    case DeploymentState.FAILED:
      return "bad";
    // Scaled to zero on purpose, and serving on demand: settled, not stopped.
    case DeploymentState.IDLE:
      return "idle";
    case DeploymentState.STOPPED:
    case DeploymentState.DELETED:
      return "off";
    default:
      return "busy";
  }
}

export function statusTone(s: TaskStatus): string {
  switch (s) {
    case TaskStatus.COMPLETED:
      return "ok";
    case TaskStatus.FAILED:
      return "bad";
    case TaskStatus.CANCELLED:
      return "off";
    default:
      return "busy";
  }
}

export interface TrafficShare {
  revision: number;
  percent: number;
}

/**
 * The split now in force: Deployment.traffic. A server from before it sends
 * none; there, all traffic switches at once, so the serving revision takes
 * every request while anything serves.
 */
export function trafficOf(d: Deployment): TrafficShare[] {
  if (d.traffic.length > 0) return d.traffic.map((t) => ({ revision: t.revision, percent: t.percent }));
  const serves = d.servingRevision > 0 && (d.instances?.ready ?? 0) > 0;
  return serves ? [{ revision: d.servingRevision, percent: 100 }] : [];
}

/** A canary's place from a task's progress: "canary step 2/3 (50%)"; "" outside a canary. */
export function canaryStep(t: Task): string {
  const p = t.progress;
  if (!p || p.rolloutSteps <= 0) return "";
  const percent = t.rollout?.steps[p.rolloutStep - 1]?.percent;
  return `canary step ${p.rolloutStep}/${p.rolloutSteps}${percent !== undefined ? ` (${percent}%)` : ""}`;
}

/** Replica bounds, and the autoscaler's settings where it moves the count between them. */
export function scalingLabel(s: Scaling | undefined): string {
  const bounds = `${s?.minReplicas ?? 0}–${s?.maxReplicas ?? 0} replicas`;
  if (!s || s.maxReplicas === 0 || s.minReplicas >= s.maxReplicas) return bounds;
  const settings = [
    s.targetInFlight ? `${s.targetInFlight} in flight per replica` : "",
    s.scaleDownDelaySeconds ? `scale down after ${s.scaleDownDelaySeconds} s` : "",
    s.minReplicas === 0 && s.wakeTimeoutSeconds ? `wake within ${s.wakeTimeoutSeconds} s` : "",
  ].filter(Boolean);
  return settings.length ? `${bounds} · ${settings.join(" · ")}` : bounds;
}
