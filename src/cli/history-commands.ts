// Client commands that read a deployment's history and the hardware catalog.
import {
  ListAcceleratorTypesResponseSchema,
  ListDeploymentRevisionsResponseSchema,
  ListDeploymentTasksResponseSchema,
} from "../gen/modeldeploy/v1/deployment_service_pb.js";
import { TaskStatus } from "../gen/modeldeploy/v1/resources_pb.js";
import { enumValues, int, list, need, str } from "./args.js";
import type { ClientCommand, CommandContext } from "./client-command.js";
import { acceleratorLine, json, out, revisionLine, taskRowLine } from "./format.js";

/** Every revision, oldest first; `*` marks the one serving. */
async function revisions(ctx: CommandContext): Promise<number> {
  const name = need(str(ctx.args, "name"), "NAME");
  const res = await ctx.api.deployments.listDeploymentRevisions({ name });
  if (ctx.output === "json") {
    out(json(ListDeploymentRevisionsResponseSchema, res));
    return 0;
  }
  const serving = (await ctx.api.deployments.getDeployment({ name })).servingRevision;
  for (const r of res.revisions) out(revisionLine(r, serving));
  return 0;
}

/** Newest first, every page. */
async function tasks(ctx: CommandContext): Promise<number> {
  const name = need(str(ctx.args, "name"), "NAME");
  const statuses = enumValues(TaskStatus, "TASK_STATUS_", "--status", list(ctx.args, "status"));
  const size = str(ctx.args, "page-size");
  const pageSize = size !== undefined ? int(size, "--page-size") : 100;
  let pageToken = "";
  do {
    const page = await ctx.api.deployments.listDeploymentTasks({ name, statuses, pageSize, pageToken });
    if (ctx.output === "json") out(json(ListDeploymentTasksResponseSchema, page));
    else for (const t of page.tasks) out(taskRowLine(t));
    pageToken = page.nextPageToken;
  } while (pageToken);
  return 0;
}

async function catalog(ctx: CommandContext): Promise<number> {
  const res = await ctx.api.deployments.listAcceleratorTypes({});
  if (ctx.output === "json") out(json(ListAcceleratorTypesResponseSchema, res));
  else if (res.acceleratorTypes.length === 0) out("no accelerator types configured: CPU only");
  else for (const a of res.acceleratorTypes) out(acceleratorLine(a));
  return 0;
}

export const historyCommands: Record<string, ClientCommand> = { revisions, tasks, catalog };
