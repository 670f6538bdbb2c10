import { toJsonString } from "@bufbuild/protobuf";
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import {
  DeploymentState, TaskPhase, TaskStatus, type Deployment, type DeploymentEvent, type Task,
} from "../gen/modeldeploy/v1/resources_pb.js";

export function json<Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>): string {
  return toJsonString(schema, message, { prettySpaces: 2 });
}

export function deploymentLine(d: Deployment): string {
  const i = d.instances;
  const parts = [
    d.name,
    DeploymentState[d.state],
    `rev ${d.servingRevision}${d.targetRevision !== d.servingRevision ? `→${d.targetRevision}` : ""}`,
    `replicas ${i?.ready ?? 0}/${i?.desired ?? 0} ready`,
  ];
  if (d.endpointUrl) parts.push(d.endpointUrl);
  if (d.failure) parts.push(`failure: ${d.failure.message}`);
  return parts.join("  ");
}

export function taskLine(t: Task): string {
  const p = t.progress;
  const bytes = p && p.bytesTotal > 0n ? ` ${fmtBytes(Number(p.bytesDone))}/${fmtBytes(Number(p.bytesTotal))}` : "";
  const failure = t.failure ? `  failure: ${t.failure.message}` : "";
  return `${t.id}  ${TaskStatus[t.status]}  ${TaskPhase[t.phase]}  ${p?.percent ?? 0}%${bytes}  ${p?.message ?? ""}${failure}`;
}

export function eventLine(e: DeploymentEvent): string {
  const state = e.deployment ? DeploymentState[e.deployment.state] : "";
  const task = e.task ? `  ${TaskPhase[e.task.phase]} ${e.task.progress?.percent ?? 0}% ${e.task.progress?.message ?? ""}` : "";
  return `#${e.sequence} ${state}${task}`;
}

function fmtBytes(n: number): string {
  if (n < 1024) return `${n}B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)}KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)}MiB`;
  return `${(n / 1024 ** 3).toFixed(2)}GiB`;
}
