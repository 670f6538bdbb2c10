import { toJsonString } from "@bufbuild/protobuf";
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import {
  DeploymentState,
  EventType,
  FailureReason,
  TaskKind,
  TaskPhase,
  TaskStatus,
  type AcceleratorType,
  type Deployment,
  type DeploymentEvent,
  type DeploymentRevision,
  type Scaling,
  type Task,
} from "../gen/modeldeploy/v1/resources_pb.js";

/** One line on stdout. */
export const out = (line: string): void => {
  process.stdout.write(line + "\n");
};

export function json<Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>): string {
  return toJsonString(schema, message, { prettySpaces: 2 });
}

/** One message per line (a stream's events, as `-o json` prints them). */
export function jsonLine<Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>): string {
  return toJsonString(schema, message);
}

export function deploymentLine(d: Deployment): string {
  const i = d.instances;
  const parts = [
    d.name,
    DeploymentState[d.state],
    `rev ${d.servingRevision}${d.targetRevision !== d.servingRevision ? `→${d.targetRevision}` : ""}`,
    `replicas ${i?.ready ?? 0}/${i?.desired ?? 0} ready`,
  ];
  if (d.traffic.length > 1) parts.push(`traffic: ${trafficLabel(d)}`);
  if (d.endpointUrl) parts.push(d.endpointUrl);
  if (d.failure) parts.push(`failure: ${d.failure.message}`);
  return parts.join("  ");
}

/** The split in force: "r1 90% · r2 10%"; "" when nothing serves. */
export function trafficLabel(d: Deployment): string {
  return d.traffic.map((t) => `r${t.revision} ${t.percent}%`).join(" · ");
}

/** A canary's place: "canary step 2/3 (50%)"; "" outside a canary. */
export function canaryLabel(t: Task): string {
  const p = t.progress;
  if (!p || p.rolloutSteps <= 0) return "";
  const percent = t.rollout?.steps[p.rolloutStep - 1]?.percent;
  return `canary step ${p.rolloutStep}/${p.rolloutSteps}${percent !== undefined ? ` (${percent}%)` : ""}`;
}

/** Scaling, with the autoscaler's settings where it moves the replica count. */
export function scalingLabel(s: Scaling | undefined): string {
  const base = `min ${s?.minReplicas ?? 0}, max ${s?.maxReplicas ?? 0}`;
  if (!s || s.maxReplicas === 0 || s.minReplicas >= s.maxReplicas) return base;
  const settings = [
    s.targetInFlight ? `target in-flight ${s.targetInFlight}` : "",
    s.scaleDownDelaySeconds ? `scale down after ${s.scaleDownDelaySeconds}s` : "",
    s.wakeTimeoutSeconds && s.minReplicas === 0 ? `wake timeout ${s.wakeTimeoutSeconds}s` : "",
  ].filter(Boolean);
  return settings.length ? `${base}; ${settings.join(", ")}` : base;
}

/** `get`: the whole deployment, one field a line. */
export function deploymentView(d: Deployment): string {
  const m = d.model;
  const r = d.resources;
  const i = d.instances;
  const rows: [string, string][] = [
    ["Name", d.name],
    ["Workspace", d.workspace],
    ["State", d.state === DeploymentState.IDLE ? "IDLE (scaled to zero: the next request wakes it)" : DeploymentState[d.state]],
    ["Revision", d.targetRevision !== d.servingRevision ? `${d.servingRevision} serving, ${d.targetRevision} rolling out` : `${d.servingRevision}`],
    ["Endpoint", d.endpointUrl || "(none: no replica serves)"],
    ["Model", `${m?.name ?? ""}${m?.revision ? `@${m.revision}` : ""}`],
    ["  URI", m?.uri ?? ""],
  ];
  if (m?.sha256) rows.push(["  sha256", m.sha256]);
  if (m?.task) rows.push(["  task", m.task]);
  if (m?.runtime) rows.push(["  runtime", m.runtime]);
  if (m?.tokenSet) rows.push(["  token", "set (never shown)"]);
  const hw = [
    r?.cpu ? `cpu ${r.cpu}` : "",
    r?.memory ? `memory ${r.memory}` : "",
    r?.acceleratorType ? `${r.acceleratorCount}× ${r.acceleratorType}` : "",
    r?.threadCount ? `threads ${r.threadCount}` : "",
    r?.maxBatchSize ? `max batch ${r.maxBatchSize}` : "",
  ].filter(Boolean);
  rows.push(["Resources", hw.join(", ") || "defaults"]);
  rows.push(["Scaling", scalingLabel(d.scaling)]);
  if (d.traffic.length > 0) rows.push(["Traffic", trafficLabel(d)]);
  rows.push(["Replicas", `${i?.ready ?? 0}/${i?.desired ?? 0} ready, ${i?.pending ?? 0} pending, ${i?.restarts ?? 0} restarts`]);
  const labels = Object.entries(d.labels).map(([k, v]) => `${k}=${v}`);
  if (labels.length) rows.push(["Labels", labels.join(", ")]);
  rows.push(["Active task", d.activeTaskId || "(none)"]);
  if (d.failure) {
    rows.push(["Failure", `${FailureReason[d.failure.reason]}: ${d.failure.message}`]);
    if (d.failure.exitCode !== undefined) rows.push(["  exit code", String(d.failure.exitCode)]);
  }
  rows.push(["Created", `${time(d.createTime)}${d.creator ? ` by ${d.creator}` : ""}`]);
  rows.push(["Updated", `${time(d.updateTime)}${d.modifier ? ` by ${d.modifier}` : ""}`]);
  rows.push(["Uid", d.uid]);
  const width = Math.max(...rows.map(([k]) => k.length)) + 2;
  const lines = rows.map(([k, v]) => `${(k + ":").padEnd(width)}${v}`);
  if (d.failure?.logTail) lines.push("Last output:", ...d.failure.logTail.split("\n").map((l) => `  ${l}`));
  return lines.join("\n");
}

export function taskLine(t: Task): string {
  const p = t.progress;
  const bytes = p && p.bytesTotal > 0n ? ` ${fmtBytes(Number(p.bytesDone))}/${fmtBytes(Number(p.bytesTotal))}` : "";
  const canary = canaryLabel(t);
  const failure = t.failure ? `  failure: ${t.failure.message}` : "";
  return `${t.id}  ${TaskStatus[t.status]}  ${TaskPhase[t.phase]}  ${p?.percent ?? 0}%${bytes}${canary ? `  ${canary}` : ""}  ${p?.message ?? ""}${failure}`;
}

export function eventLine(e: DeploymentEvent): string {
  const d = e.deployment;
  const state = d ? DeploymentState[d.state] : "";
  if (e.type === EventType.SCALED) {
    const replicas = d ? `  replicas ${d.instances?.ready ?? 0}/${d.instances?.desired ?? 0} ready` : "";
    return `#${e.sequence} ${state}  scaled: ${e.message || "(no reason given)"}${replicas}`;
  }
  const t = e.task;
  const canary = t ? canaryLabel(t) : "";
  const split = d && d.traffic.length > 1 ? `  traffic: ${trafficLabel(d)}` : "";
  const task = t ? `  ${TaskPhase[t.phase]} ${t.progress?.percent ?? 0}%${canary ? ` ${canary}` : ""} ${t.progress?.message ?? ""}` : "";
  const message = e.message && !t ? `  ${e.message}` : "";
  return `#${e.sequence} ${state}${task}${split}${message}`;
}

/** How a task ended, for `--wait`: the failure's reason and whether the previous revision kept serving. */
export function taskOutcomeLine(t: Task): string {
  const f = t.failure;
  const failure = f ? `: ${FailureReason[f.reason]}: ${f.message}` : "";
  const back = t.rolledBack ? " (rolled back: the previous revision keeps serving)" : "";
  return `task ${t.id} ${TaskKind[t.kind]} ${TaskStatus[t.status]}${failure}${back}`;
}

/** A task in a list: which kind, of which revision, how it stands. */
export function taskRowLine(t: Task): string {
  const parts = [t.id, TaskKind[t.kind], `rev ${t.revision}`, TaskStatus[t.status], TaskPhase[t.phase], `${t.progress?.percent ?? 0}%`, time(t.createTime)];
  if (t.rollout?.steps.length) parts.push(`canary ${t.rollout.steps.map((s) => `${s.percent}%:${s.pauseSeconds}s`).join(",")}`);
  if (t.failure) parts.push(`failure: ${FailureReason[t.failure.reason]}: ${t.failure.message}`);
  if (t.rolledBack) parts.push("rolled back");
  return parts.join("  ");
}

export function revisionLine(r: DeploymentRevision, serving: number): string {
  const m = r.model;
  const res = r.resources;
  const hw = [
    res?.cpu ? `cpu ${res.cpu}` : "",
    res?.memory ? `memory ${res.memory}` : "",
    res?.acceleratorType ? `${res.acceleratorCount}× ${res.acceleratorType}` : "",
  ]
    .filter(Boolean)
    .join(" ");
  return [
    `${r.number === serving ? "*" : " "} rev ${r.number}`,
    `${m?.name ?? ""}${m?.revision ? `@${m.revision}` : ""}`,
    m?.uri ?? "",
    hw || "default resources",
    time(r.createTime),
    `task ${r.taskId}`,
  ].join("  ");
}

export function acceleratorLine(a: AcceleratorType): string {
  return `${a.name}  memory ${a.memory}  max ${a.maxPerReplica}/replica  ${a.available} available`;
}

function time(t: Timestamp | undefined): string {
  return t ? new Date(Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6)).toISOString() : "";
}

export function fmtBytes(n: number): string {
  if (n < 1024) return `${n}B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)}KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)}MiB`;
  return `${(n / 1024 ** 3).toFixed(2)}GiB`;
}
