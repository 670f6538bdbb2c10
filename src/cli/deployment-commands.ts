// Client commands that create, read, watch and delete deployments.
import { writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { create } from "@bufbuild/protobuf";
import { DeploymentSchema, DeploymentState, ModelSourceSchema, ResourcesSchema, TaskSchema, TaskStatus } from "../gen/modeldeploy/v1/resources_pb.js";
import { ListDeploymentsResponseSchema } from "../gen/modeldeploy/v1/deployment_service_pb.js";
import { buildSampleModel } from "../onnx/sample-model.js";
import { enumValues, int, modelFrom, modelOptions, need, progressDeadline, resourceOptions, resourcesFrom, scalingOptions } from "./args.js";
import type { ApiClients } from "./client.js";
import type { ClientCommand } from "./client-command.js";
import { followDeployment } from "./follow.js";
import { deploymentLine, eventLine, json, out, taskLine } from "./format.js";

async function deploy(api: ApiClients, argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...modelOptions,
      ...resourceOptions,
      ...scalingOptions,
      suffix: { type: "string" },
      label: { type: "string", multiple: true },
      "request-id": { type: "string" },
      "progress-deadline": { type: "string" },
      wait: { type: "boolean" },
      json: { type: "boolean" },
    },
  });
  const replicas = values.replicas !== undefined ? int(values.replicas, "--replicas") : undefined;
  const res = await api.deployments.createDeployment({
    model: modelFrom(values, create(ModelSourceSchema)),
    resources: resourcesFrom(values, create(ResourcesSchema)),
    scaling: {
      minReplicas: replicas ?? int(values.min ?? "1", "--min"),
      maxReplicas: replicas ?? int(values.max ?? values.min ?? "1", "--max"),
    },
    suffix: values.suffix ?? "",
    labels: Object.fromEntries((values.label ?? []).map((l) => [l.split("=")[0] ?? l, l.split("=").slice(1).join("=")])),
    requestId: values["request-id"] ?? "",
    progressDeadlineSeconds: progressDeadline(values),
  });
  if (values.json) out(json(DeploymentSchema, res.deployment!));
  else out(`accepted ${res.deployment!.name} (task ${res.task!.id})`);
  if (!values.wait) return 0;
  return followDeployment(api, res.deployment!.name, values.json ?? false);
}

async function get(api: ApiClients, argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { json: { type: "boolean" } } });
  const d = await api.deployments.getDeployment({ name: need(positionals[0], "NAME") });
  out(values.json ? json(DeploymentSchema, d) : deploymentLine(d));
  return 0;
}

async function list(api: ApiClients, argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { state: { type: "string", multiple: true }, "label-selector": { type: "string" }, json: { type: "boolean" } },
  });
  const states = enumValues(DeploymentState, "DEPLOYMENT_STATE_", "--state", values.state);
  let pageToken = "";
  do {
    const page = await api.deployments.listDeployments({ states, labelSelector: values["label-selector"] ?? "", pageToken, pageSize: 200 });
    if (values.json) out(json(ListDeploymentsResponseSchema, page));
    else for (const d of page.deployments) out(deploymentLine(d));
    pageToken = page.nextPageToken;
  } while (pageToken);
  return 0;
}

async function status(api: ApiClients, argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { json: { type: "boolean" } } });
  const t = await api.deployments.getDeploymentStatus({ name: need(positionals[0], "NAME") });
  out(values.json ? json(TaskSchema, t) : taskLine(t));
  return 0;
}

async function task(api: ApiClients, argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { json: { type: "boolean" } } });
  const t = await api.deployments.getDeploymentTask({ taskId: need(positionals[0], "TASK_ID") });
  out(values.json ? json(TaskSchema, t) : taskLine(t));
  return 0;
}

async function watch(api: ApiClients, argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { after: { type: "string" } } });
  const stream = api.deployments.watchDeployment({
    name: need(positionals[0], "NAME"),
    afterSequence: values.after !== undefined ? BigInt(int(values.after, "--after")) : undefined,
  });
  for await (const e of stream) out(eventLine(e));
  return 0;
}

async function remove(api: ApiClients, argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { wait: { type: "boolean" }, json: { type: "boolean" }, "request-id": { type: "string" } },
  });
  const name = need(positionals[0], "NAME");
  const t = await api.deletions.deleteDeployment({ name, requestId: values["request-id"] ?? "" });
  out(values.json ? json(TaskSchema, t) : `deleting ${name} (task ${t.id})`);
  if (!values.wait) return 0;
  for await (const e of api.deletions.watchDeletion({ name })) if (!values.json) out(eventLine(e));
  const final = await api.deletions.getDeletionTask({ taskId: t.id });
  out(taskLine(final));
  return final.status === TaskStatus.COMPLETED ? 0 : 1;
}

function sampleModel(argv: string[]): number {
  const path = resolve(need(argv[0], "PATH"));
  writeFileSync(path, buildSampleModel());
  out(pathToFileURL(path).href);
  return 0;
}

export const deploymentCommands: Record<string, ClientCommand> = {
  deploy,
  get,
  list,
  status,
  task,
  watch,
  delete: remove,
  "sample-model": (_api, argv) => Promise.resolve(sampleModel(argv)),
};
