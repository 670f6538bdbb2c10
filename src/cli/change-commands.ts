// Client commands that change a running deployment: update (a new revision
// and/or scaling), scale, rollback, and cancel a task in flight.
import { create } from "@bufbuild/protobuf";
import { ResourcesSchema, ScalingSchema, TaskSchema, type Deployment, type Task } from "../gen/modeldeploy/v1/resources_pb.js";
import {
  UsageError,
  givesModel,
  givesResources,
  givesScaling,
  int,
  modelFrom,
  need,
  progressDeadline,
  resourcesFrom,
  rolloutFrom,
  scalingFrom,
  str,
} from "./args.js";
import { printAccepted, printFollowed, progressFor, type ClientCommand, type CommandContext } from "./client-command.js";
import { followTask } from "./follow.js";
import { json, out, taskLine } from "./format.js";

/** Prints what was accepted, then follows the task with --wait. */
async function accepted(ctx: CommandContext, res: { deployment?: Deployment; task?: Task }): Promise<number> {
  const d = res.deployment!;
  const t = res.task!;
  const line = `accepted ${d.name}: ${t.progress?.message ?? ""} (task ${t.id})`;
  if (!ctx.args["wait"]) {
    printAccepted(ctx, d, t, line);
    return 0;
  }
  if (ctx.output === "text") out(line);
  return printFollowed(ctx, await followTask(ctx.api, d, t, progressFor(ctx)), t.id);
}

const requestId = (ctx: CommandContext) => str(ctx.args, "request-id") ?? "";

/**
 * Flags name only what changes; the rest of a model, resources or scaling is
 * the deployment's current one (read first), since the API replaces each whole
 * (--replicas alone still keeps the autoscaler's settings).
 */
async function update(ctx: CommandContext): Promise<number> {
  const { api, args } = ctx;
  const name = need(str(args, "name"), "NAME");
  // Flags are checked before any call.
  const rollout = rolloutFrom(args);
  if (rollout && !givesModel(args) && !givesResources(args)) {
    throw new UsageError("--canary rolls out a new revision: give the new model or resources too (e.g. --uri), or scale with `modeldeploy scale`");
  }
  const deadline = progressDeadline(args);
  scalingFrom(args, create(ScalingSchema));
  resourcesFrom(args, create(ResourcesSchema));
  const current = givesModel(args) || givesResources(args) || givesScaling(args) ? await api.deployments.getDeployment({ name }) : undefined;
  const res = await api.deployments.updateDeployment({
    name,
    model: givesModel(args) ? modelFrom(args, current!.model!) : undefined,
    resources: givesResources(args) ? resourcesFrom(args, current!.resources!) : undefined,
    scaling: givesScaling(args) ? scalingFrom(args, current?.scaling ?? create(ScalingSchema)) : undefined,
    rollout,
    progressDeadlineSeconds: deadline,
    requestId: requestId(ctx),
  });
  return accepted(ctx, res);
}

/** Scaling alone: no new revision. --replicas 0 stops the deployment; more resumes it. */
async function scale(ctx: CommandContext): Promise<number> {
  const { api, args } = ctx;
  const name = need(str(args, "name"), "NAME");
  if (!givesScaling(args)) {
    throw new UsageError("scale needs --replicas N, or --min N and/or --max N, or the autoscaler's --target-in-flight, --scale-down-delay, --wake-timeout");
  }
  scalingFrom(args, create(ScalingSchema));
  const current = await api.deployments.getDeployment({ name });
  const scaling = scalingFrom(args, current.scaling ?? create(ScalingSchema));
  return accepted(ctx, await api.deployments.updateDeployment({ name, scaling, requestId: requestId(ctx) }));
}

async function rollback(ctx: CommandContext): Promise<number> {
  const revision = str(ctx.args, "revision");
  const res = await ctx.api.deployments.rollbackDeployment({
    name: need(str(ctx.args, "name"), "NAME"),
    revision: revision !== undefined ? int(revision, "--revision") : 0,
    rollout: rolloutFrom(ctx.args),
    progressDeadlineSeconds: progressDeadline(ctx.args),
    requestId: requestId(ctx),
  });
  return accepted(ctx, res);
}

async function cancel(ctx: CommandContext): Promise<number> {
  const t = await ctx.api.deployments.cancelDeploymentTask({ taskId: need(str(ctx.args, "task-id"), "TASK_ID") });
  out(ctx.output === "json" ? json(TaskSchema, t) : taskLine(t));
  return 0;
}

export const changeCommands: Record<string, ClientCommand> = { update, scale, rollback, cancel };
