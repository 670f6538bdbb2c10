// What a command shows while it follows a deployment's events: on a terminal,
// one live block redrawn in place (phase, percent bar, bytes, replicas, the
// task's message, a canary's step and split, the autoscaler's last change);
// otherwise one plain line per event, for logs and scripts.
import { createLogUpdate } from "log-update";
import {
  DeploymentState,
  EventType,
  TaskKind,
  TaskPhase,
  TaskStatus,
  type Deployment,
  type DeploymentEvent,
  type Task,
} from "../gen/modeldeploy/v1/resources_pb.js";
import { canaryLabel, eventLine, fmtBytes, out, trafficLabel } from "./format.js";

export interface Progress {
  event(e: DeploymentEvent): void;
  /** Leaves the last frame on screen and stops redrawing. */
  stop(): void;
}

export interface ProgressMode {
  /** Draw the live block (on stderr, so stdout stays the command's result). */
  live: boolean;
  /** Plain mode prints nothing (stdout is JSON or a name). */
  quiet: boolean;
}

/** Live when stderr is a terminal with a size, unless asked not to (--no-progress) or in CI logs. */
export function progressMode(o: { progress: boolean; quiet: boolean }): ProgressMode {
  const e = process.stderr;
  // A pseudo-terminal without a size (rows 0) would show nothing of a redrawn block.
  const sized = e.isTTY === true && e.rows > 0 && e.columns > 0;
  const live = o.progress && sized && !process.env["CI"] && process.env["TERM"] !== "dumb";
  return { live, quiet: o.quiet };
}

export function createProgress(mode: ProgressMode): Progress {
  if (!mode.live) {
    return {
      event: (e) => {
        if (!mode.quiet) out(eventLine(e));
      },
      stop: () => {},
    };
  }
  const render = createLogUpdate(process.stderr, { showCursor: false });
  const frames = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
  let tick = 0;
  let deployment: Deployment | undefined;
  let task: Task | undefined;
  let scaled: string | undefined;
  const draw = () => {
    if (deployment || task) render(frame(deployment, task, frames[tick++ % frames.length]!, scaled));
  };
  // The spinner says the watch is alive between events.
  const timer = setInterval(draw, 120);
  timer.unref();
  return {
    event(e) {
      if (e.deployment) deployment = e.deployment;
      if (e.task) task = e.task;
      if (e.type === EventType.SCALED) scaled = e.message || "(no reason given)";
      draw();
    },
    stop() {
      clearInterval(timer);
      if (deployment || task) render(frame(deployment, task, "•", scaled));
      render.done();
    },
  };
}

const BAR = 24;

/** The live block; `scaled` is the autoscaler's last change (a SCALED event's message). */
export function frame(d: Deployment | undefined, t: Task | undefined, spinner: string, scaled?: string): string {
  const lines: string[] = [];
  if (d) {
    const rev = d.targetRevision !== d.servingRevision ? `rev ${d.servingRevision}→${d.targetRevision}` : `rev ${d.servingRevision}`;
    lines.push(`${spinner} ${d.name}  ${DeploymentState[d.state]}  ${rev}`);
  }
  if (t) {
    const p = t.progress;
    const pct = Math.max(0, Math.min(100, p?.percent ?? 0));
    const filled = Math.round((pct / 100) * BAR);
    const bar = `[${"█".repeat(filled)}${"░".repeat(BAR - filled)}]`;
    const bytes = p && p.bytesTotal > 0n ? `  ${fmtBytes(Number(p.bytesDone))}/${fmtBytes(Number(p.bytesTotal))}` : "";
    const status = t.status === TaskStatus.RUNNING || t.status === TaskStatus.PENDING ? "" : `  ${TaskStatus[t.status]}`;
    lines.push(`  ${TaskKind[t.kind]} ${TaskPhase[t.phase]}${status}  ${bar} ${String(pct).padStart(3)}%${bytes}`);
    const desired = p?.replicasDesired || d?.instances?.desired || 0;
    const ready = p && p.replicasDesired > 0 ? p.replicasReady : (d?.instances?.ready ?? 0);
    lines.push(`  replicas ${ready}/${desired} ready${p?.message ? `  ·  ${p.message}` : ""}`);
    const rollout = [canaryLabel(t), split(d)].filter(Boolean).join("  ·  ");
    if (rollout) lines.push(`  ${rollout}`);
    if (t.failure) lines.push(`  failure: ${t.failure.message}`);
  } else if (d) {
    const traffic = split(d);
    lines.push(`  replicas ${d.instances?.ready ?? 0}/${d.instances?.desired ?? 0} ready${traffic ? `  ·  ${traffic}` : ""}`);
  }
  if (scaled) lines.push(`  scaled: ${scaled}`);
  return lines.join("\n");
}

/** "traffic r1 90% · r2 10%" while a split is in force; "" otherwise. */
function split(d: Deployment | undefined): string {
  return d && d.traffic.length > 1 ? `traffic ${trafficLabel(d)}` : "";
}
