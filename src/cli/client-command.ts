// What every client command gets (its parsed arguments, the API, how to print)
// and how the mutating ones print what they were accepted for or how it ended.
import { create } from "@bufbuild/protobuf";
import { CreateDeploymentResponseSchema } from "../gen/modeldeploy/v1/deployment_service_pb.js";
import { TaskKind, TaskStatus, type Deployment, type Task } from "../gen/modeldeploy/v1/resources_pb.js";
import type { ApiClients } from "./client.js";
import type { Followed } from "./follow.js";
import { deploymentLine, json, out, taskOutcomeLine } from "./format.js";
import { createProgress, progressMode, type Progress } from "./progress.js";

/** The parsed flags and positionals (strings as given; repeated flags as arrays). */
export type Flags = Record<string, string | boolean | string[] | undefined>;

/** text: lines for people; json: the API's JSON; name: the deployment's name alone (for NAME=$(…)). */
export type Output = "text" | "json" | "name";

export interface CommandContext {
  api: ApiClients;
  args: Flags;
  output: Output;
  /** --no-progress turns the live display off. */
  progress: boolean;
}

/** A client command: its exit code out (errors are thrown). */
export type ClientCommand = (ctx: CommandContext) => Promise<number>;

export const err = (line: string): void => {
  process.stderr.write(line + "\n");
};

export function progressFor(ctx: CommandContext): Progress {
  return createProgress(progressMode({ progress: ctx.progress, quiet: ctx.output !== "text" }));
}

/** Prints an accepted change: the API's response (json), the name, or a line. */
export function printAccepted(ctx: CommandContext, d: Deployment, t: Task, line: string): void {
  if (ctx.output === "json") out(json(CreateDeploymentResponseSchema, create(CreateDeploymentResponseSchema, { deployment: d, task: t })));
  else if (ctx.output === "name") out(d.name);
  else out(line);
}

/**
 * How a followed change ended; the exit code. Text prints the deployment's
 * line, the task's outcome and the model server's last lines; json the final
 * deployment and task (the shape of the API's response); name the name alone,
 * with a failure on stderr.
 */
export function printFollowed(ctx: CommandContext, f: Followed, taskId: string): number {
  const t = f.task;
  const d = f.deployment;
  if (!t) {
    const why = `task ${taskId}: the watch ended before the task did; see \`modeldeploy task ${taskId}\``;
    if (ctx.output === "text") out(why);
    else err(`error: ${why}`);
    return 1;
  }
  const tail = t.failure?.logTail || (f.ok ? "" : (d?.failure?.logTail ?? ""));
  if (ctx.output === "json") out(json(CreateDeploymentResponseSchema, create(CreateDeploymentResponseSchema, { deployment: d, task: t })));
  else if (ctx.output === "name") out(d?.name ?? t.deploymentName);
  else {
    if (d) out(deploymentLine(d));
    if (t.kind !== TaskKind.DEPLOY || t.status !== TaskStatus.COMPLETED) out(taskOutcomeLine(t));
    if (tail) out(tail);
  }
  if (!f.ok && ctx.output !== "text") {
    err(`error: ${taskOutcomeLine(t)}`);
    if (tail) err(tail);
  }
  return f.ok ? 0 : 1;
}
