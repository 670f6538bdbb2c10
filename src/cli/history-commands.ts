// Client commands that read a deployment's history and the hardware catalog.
import { parseArgs } from "node:util";
import {
  ListAcceleratorTypesResponseSchema,
  ListDeploymentRevisionsResponseSchema,
  ListDeploymentTasksResponseSchema,
} from "../gen/modeldeploy/v1/deployment_service_pb.js";
import { TaskStatus } from "../gen/modeldeploy/v1/resources_pb.js";
import { enumValues, int, need } from "./args.js";
import type { ApiClients } from "./client.js";
import type { ClientCommand } from "./client-command.js";
import { acceleratorLine, json, out, revisionLine, taskRowLine } from "./format.js";

/** Every revision, oldest first; `*` marks the one serving. */
async function revisions(api: ApiClients, argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { json: { type: "boolean" } } });
  const name = need(positionals[0], "NAME");
  const res = await api.deployments.listDeploymentRevisions({ name });
  if (values.json) {
    out(json(ListDeploymentRevisionsResponseSchema, res));
    return 0;
  }
  const serving = (await api.deployments.getDeployment({ name })).servingRevision;
  for (const r of res.revisions) out(revisionLine(r, serving));
  return 0;
}

/** Newest first, every page. */
async function tasks(api: ApiClients, argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { status: { type: "string", multiple: true }, "page-size": { type: "string" }, json: { type: "boolean" } },
  });
  const name = need(positionals[0], "NAME");
  const statuses = enumValues(TaskStatus, "TASK_STATUS_", "--status", values.status);
  const pageSize = values["page-size"] !== undefined ? int(values["page-size"], "--page-size") : 100;
  let pageToken = "";
  do {
    const page = await api.deployments.listDeploymentTasks({ name, statuses, pageSize, pageToken });
    if (values.json) out(json(ListDeploymentTasksResponseSchema, page));
    else for (const t of page.tasks) out(taskRowLine(t));
    pageToken = page.nextPageToken;
  } while (pageToken);
  return 0;
}

async function catalog(api: ApiClients, argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { json: { type: "boolean" } } });
  const res = await api.deployments.listAcceleratorTypes({});
  if (values.json) out(json(ListAcceleratorTypesResponseSchema, res));
  else if (res.acceleratorTypes.length === 0) out("no accelerator types configured: CPU only");
  else for (const a of res.acceleratorTypes) out(acceleratorLine(a));
  return 0;
}

export const historyCommands: Record<string, ClientCommand> = { revisions, tasks, catalog };
