// Client commands that change a running deployment: update (a new revision
// and/or scaling), scale, rollback, and cancel a task in flight.
import { parseArgs } from "node:util";
import { create } from "@bufbuild/protobuf";
import { DeploymentSchema, ScalingSchema, TaskSchema, type Deployment, type Task } from "../gen/modeldeploy/v1/resources_pb.js";
import {
  givesModel,
  givesResources,
  givesScaling,
  int,
  modelFrom,
  modelOptions,
  need,
  progressDeadline,
  resourceOptions,
  resourcesFrom,
  scalingFrom,
  scalingOptions,
} from "./args.js";
import type { ApiClients } from "./client.js";
import type { ClientCommand } from "./client-command.js";
import { followTask } from "./follow.js";
import { json, out, taskLine } from "./format.js";

const common = { "request-id": { type: "string" }, wait: { type: "boolean" }, json: { type: "boolean" } } as const;

/** Prints what was accepted, then follows the task with --wait. */
async function accepted(api: ApiClients, res: { deployment?: Deployment; task?: Task }, values: { wait?: boolean; json?: boolean }): Promise<number> {
  const d = res.deployment!;
  const t = res.task!;
  if (values.json) out(json(DeploymentSchema, d));
  else out(`accepted ${d.name}: ${t.progress?.message ?? ""} (task ${t.id})`);
  return values.wait ? followTask(api, d, t, values.json ?? false) : 0;
}

/**
 * Flags name only what changes; the rest of a model, resources or scaling is
 * the deployment's current one (read first), since the API replaces each whole.
 */
async function update(api: ApiClients, argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { ...modelOptions, ...resourceOptions, ...scalingOptions, "progress-deadline": { type: "string" }, ...common },
  });
  const name = need(positionals[0], "NAME");
  const partial = givesModel(values) || givesResources(values) || (givesScaling(values) && values.replicas === undefined);
  const current = partial ? await api.deployments.getDeployment({ name }) : undefined;
  const res = await api.deployments.updateDeployment({
    name,
    model: givesModel(values) ? modelFrom(values, current!.model!) : undefined,
    resources: givesResources(values) ? resourcesFrom(values, current!.resources!) : undefined,
    scaling: givesScaling(values) ? scalingFrom(values, current?.scaling ?? create(ScalingSchema)) : undefined,
    progressDeadlineSeconds: progressDeadline(values),
    requestId: values["request-id"] ?? "",
  });
  return accepted(api, res, values);
}

/** Scaling alone: no new revision. --replicas 0 stops the deployment; more resumes it. */
async function scale(api: ApiClients, argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { ...scalingOptions, ...common } });
  const name = need(positionals[0], "NAME");
  if (!givesScaling(values)) throw new Error("scale needs --replicas N, or --min N and/or --max N");
  const current = values.replicas === undefined ? await api.deployments.getDeployment({ name }) : undefined;
  const scaling = scalingFrom(values, current?.scaling ?? create(ScalingSchema));
  const res = await api.deployments.updateDeployment({ name, scaling, requestId: values["request-id"] ?? "" });
  return accepted(api, res, values);
}

async function rollback(api: ApiClients, argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { revision: { type: "string" }, ...common } });
  const res = await api.deployments.rollbackDeployment({
    name: need(positionals[0], "NAME"),
    revision: values.revision !== undefined ? int(values.revision, "--revision") : 0,
    requestId: values["request-id"] ?? "",
  });
  return accepted(api, res, values);
}

async function cancel(api: ApiClients, argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { json: { type: "boolean" } } });
  const t = await api.deployments.cancelDeploymentTask({ taskId: need(positionals[0], "TASK_ID") });
  out(values.json ? json(TaskSchema, t) : taskLine(t));
  return 0;
}

export const changeCommands: Record<string, ClientCommand> = { update, scale, rollback, cancel };
