// Client commands that create, read, watch and delete deployments.
import { writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { create } from "@bufbuild/protobuf";
import {
  DeploymentEventSchema,
  DeploymentSchema,
  DeploymentState,
  EventType,
  ModelSourceSchema,
  ResourcesSchema,
  ScalingSchema,
  TaskSchema,
} from "../gen/modeldeploy/v1/resources_pb.js";
import { ListDeploymentsResponseSchema } from "../gen/modeldeploy/v1/deployment_service_pb.js";
import { buildFlakyModel } from "../onnx/flaky-model.js";
import { buildSampleModel } from "../onnx/sample-model.js";
import { UsageError, enumValues, int, list, modelFrom, need, progressDeadline, resourcesFrom, scalingFrom, str } from "./args.js";
import { err, printAccepted, printFollowed, progressFor, type ClientCommand, type CommandContext } from "./client-command.js";
import { followDeletion, followDeployment } from "./follow.js";
import { deploymentLine, deploymentView, json, jsonLine, out, taskLine, taskOutcomeLine } from "./format.js";

async function deploy(ctx: CommandContext): Promise<number> {
  const { api, args } = ctx;
  // One replica unless told; --min alone sets --max too.
  const min = str(args, "min");
  const scaling = scalingFrom(args, create(ScalingSchema, { minReplicas: 1, maxReplicas: min !== undefined ? int(min, "--min") : 1 }));
  const res = await api.deployments.createDeployment({
    model: modelFrom(args, create(ModelSourceSchema)),
    resources: resourcesFrom(args, create(ResourcesSchema)),
    scaling,
    suffix: str(args, "suffix") ?? "",
    labels: Object.fromEntries(list(args, "label").map((l) => [l.split("=")[0] ?? l, l.split("=").slice(1).join("=")])),
    requestId: str(args, "request-id") ?? "",
    progressDeadlineSeconds: progressDeadline(args),
  });
  const d = res.deployment!;
  const t = res.task!;
  if (!args["wait"]) {
    printAccepted(ctx, d, t, `accepted ${d.name} (task ${t.id})`);
    return 0;
  }
  if (ctx.output === "text") out(`accepted ${d.name} (task ${t.id})`);
  return printFollowed(ctx, await followDeployment(api, d, t, progressFor(ctx)), t.id);
}

async function get(ctx: CommandContext): Promise<number> {
  const d = await ctx.api.deployments.getDeployment({ name: need(str(ctx.args, "name"), "NAME") });
  out(ctx.output === "json" ? json(DeploymentSchema, d) : ctx.output === "name" ? d.name : deploymentView(d));
  return 0;
}

async function listDeployments(ctx: CommandContext): Promise<number> {
  const { api, args } = ctx;
  const states = enumValues(DeploymentState, "DEPLOYMENT_STATE_", "--state", list(args, "state"));
  let pageToken = "";
  do {
    const page = await api.deployments.listDeployments({ states, labelSelector: str(args, "label-selector") ?? "", pageToken, pageSize: 200 });
    if (ctx.output === "json") out(json(ListDeploymentsResponseSchema, page));
    else for (const d of page.deployments) out(ctx.output === "name" ? d.name : deploymentLine(d));
    pageToken = page.nextPageToken;
  } while (pageToken);
  return 0;
}

async function status(ctx: CommandContext): Promise<number> {
  const t = await ctx.api.deployments.getDeploymentStatus({ name: need(str(ctx.args, "name"), "NAME") });
  out(ctx.output === "json" ? json(TaskSchema, t) : taskLine(t));
  return 0;
}

async function task(ctx: CommandContext): Promise<number> {
  const t = await ctx.api.deployments.getDeploymentTask({ taskId: need(str(ctx.args, "task-id"), "TASK_ID") });
  out(ctx.output === "json" ? json(TaskSchema, t) : taskLine(t));
  return 0;
}

/** Until interrupted, or the deployment is deleted; -o json prints one event a line. */
async function watch(ctx: CommandContext): Promise<number> {
  const after = str(ctx.args, "after");
  const stream = ctx.api.deployments.watchDeployment({
    name: need(str(ctx.args, "name"), "NAME"),
    afterSequence: after !== undefined ? BigInt(int(after, "--after")) : undefined,
  });
  const progress = progressFor(ctx);
  const stop = () => {
    progress.stop();
    process.exit(0);
  };
  process.once("SIGINT", stop);
  try {
    for await (const e of stream) {
      if (ctx.output === "json") out(jsonLine(DeploymentEventSchema, e));
      progress.event(e);
      // The stream stays open after a deletion; there is nothing more to see.
      if (e.type === EventType.DELETED) break;
    }
  } finally {
    process.off("SIGINT", stop);
    progress.stop();
  }
  return 0;
}

async function remove(ctx: CommandContext): Promise<number> {
  const { api, args } = ctx;
  const name = need(str(args, "name"), "NAME");
  const t = await api.deletions.deleteDeployment({ name, requestId: str(args, "request-id") ?? "" });
  if (!args["wait"]) {
    out(ctx.output === "json" ? json(TaskSchema, t) : ctx.output === "name" ? name : `deleting ${name} (task ${t.id})`);
    return 0;
  }
  if (ctx.output === "text") out(`deleting ${name} (task ${t.id})`);
  const f = await followDeletion(api, name, t, progressFor(ctx));
  const final = f.task!;
  out(ctx.output === "json" ? json(TaskSchema, final) : ctx.output === "name" ? name : taskLine(final));
  if (!f.ok && ctx.output !== "text") err(`error: ${taskOutcomeLine(final)}`);
  return f.ok ? 0 : 1;
}

/** The sample model; with --fail-above T, one whose runs fail when a row's x[…, 0] is above T (for canary trials). */
function sampleModel(ctx: CommandContext): number {
  const path = resolve(need(str(ctx.args, "path"), "PATH"));
  const failAbove = str(ctx.args, "fail-above");
  const threshold = Number(failAbove);
  if (failAbove !== undefined && (failAbove.trim() === "" || !Number.isFinite(threshold))) {
    throw new UsageError(`--fail-above takes a number, e.g. 0.5, got "${failAbove}"`);
  }
  writeFileSync(path, failAbove === undefined ? buildSampleModel() : buildFlakyModel({ failAbove: threshold }));
  out(pathToFileURL(path).href);
  return 0;
}

export const deploymentCommands: Record<string, ClientCommand> = {
  deploy,
  get,
  list: listDeployments,
  status,
  task,
  watch,
  delete: remove,
  "sample-model": (ctx) => Promise.resolve(sampleModel(ctx)),
};
