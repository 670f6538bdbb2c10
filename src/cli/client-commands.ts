// CLI commands that talk to a running API over Connect.
import { writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { ConnectError } from "@connectrpc/connect";
import {
  DeploymentSchema, DeploymentState, ModelType, TaskSchema, TaskStatus,
} from "../gen/modeldeploy/v1/resources_pb.js";
import { ListDeploymentsResponseSchema } from "../gen/modeldeploy/v1/deployment_service_pb.js";
import { buildSampleModel } from "../onnx/sample-model.js";
import { createApiClients, type ApiClients } from "./client.js";
import { deploymentLine, eventLine, json, taskLine } from "./format.js";


function clients(): ApiClients {
  return createApiClients(process.env["MODELDEPLOY_URL"] ?? "http://127.0.0.1:8080", process.env["MODELDEPLOY_API_KEY"]);
}

const out = (line: string) => process.stdout.write(line + "\n");

export async function runClientCommand(command: string, argv: string[]): Promise<number> {
  const api = clients();
  switch (command) {
    case "deploy": {
      const { values } = parseArgs({
        args: argv,
        options: {
          model: { type: "string" }, uri: { type: "string" }, sha256: { type: "string" }, revision: { type: "string" },
          task: { type: "string" }, runtime: { type: "string" }, suffix: { type: "string" },
          replicas: { type: "string" }, min: { type: "string" }, max: { type: "string" },
          threads: { type: "string" }, "max-batch-size": { type: "string" }, cpu: { type: "string" }, memory: { type: "string" },
          "accelerator-type": { type: "string" }, "accelerator-count": { type: "string" },
          label: { type: "string", multiple: true }, "request-id": { type: "string" },
          wait: { type: "boolean" }, json: { type: "boolean" },
        },
      });
      const replicas = values.replicas !== undefined ? int(values.replicas, "--replicas") : undefined;
      const uri = values.uri ?? "";
      const res = await api.deployments.createDeployment({
        model: {
          name: values.model ?? "",
          uri: uri.startsWith("/") || uri.startsWith(".") ? pathToFileURL(resolve(uri)).href : uri,
          sha256: values.sha256 ?? "",
          revision: values.revision ?? "",
          task: values.task ?? "",
          runtime: values.runtime ?? "",
          type: ModelType.UNSPECIFIED,
        },
        resources: {
          threadCount: int(values.threads ?? "0", "--threads"),
          maxBatchSize: int(values["max-batch-size"] ?? "0", "--max-batch-size"),
          cpu: Number(values.cpu ?? "0"),
          memory: values.memory ?? "",
          acceleratorType: values["accelerator-type"] ?? "",
          acceleratorCount: int(values["accelerator-count"] ?? "0", "--accelerator-count"),
        },
        scaling: {
          minReplicas: replicas ?? int(values.min ?? "1", "--min"),
          maxReplicas: replicas ?? int(values.max ?? values.min ?? "1", "--max"),
        },
        suffix: values.suffix ?? "",
        labels: Object.fromEntries((values.label ?? []).map((l) => [l.split("=")[0] ?? l, l.split("=").slice(1).join("=")])),
        requestId: values["request-id"] ?? "",
      });
      if (values.json) out(json(DeploymentSchema, res.deployment!));
      else out(`accepted ${res.deployment!.name} (task ${res.task!.id})`);
      if (!values.wait) return 0;
      return followDeployment(api, res.deployment!.name, values.json ?? false);
    }
    case "get": {
      const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { json: { type: "boolean" } } });
      const d = await api.deployments.getDeployment({ name: need(positionals[0], "NAME") });
      out(values.json ? json(DeploymentSchema, d) : deploymentLine(d));
      return 0;
    }
    case "list": {
      const { values } = parseArgs({ args: argv, options: { state: { type: "string", multiple: true }, "label-selector": { type: "string" }, json: { type: "boolean" } } });
      const states = (values.state ?? []).map((s) => {
        const v = DeploymentState[s.toUpperCase().replace(/^DEPLOYMENT_STATE_/, "") as keyof typeof DeploymentState];
        if (v === undefined) throw new Error(`unknown state ${s}`);
        return v;
      });
      let pageToken = "";
      do {
        const page = await api.deployments.listDeployments({ states, labelSelector: values["label-selector"] ?? "", pageToken, pageSize: 200 });
        if (values.json) out(json(ListDeploymentsResponseSchema, page));
        else for (const d of page.deployments) out(deploymentLine(d));
        pageToken = page.nextPageToken;
      } while (pageToken);
      return 0;
    }
    case "status": {
      const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { json: { type: "boolean" } } });
      const t = await api.deployments.getDeploymentStatus({ name: need(positionals[0], "NAME") });
      out(values.json ? json(TaskSchema, t) : taskLine(t));
      return 0;
    }
    case "task": {
      const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { json: { type: "boolean" } } });
      const t = await api.deployments.getDeploymentTask({ taskId: need(positionals[0], "TASK_ID") });
      out(values.json ? json(TaskSchema, t) : taskLine(t));
      return 0;
    }
    case "watch": {
      const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { after: { type: "string" } } });
      const stream = api.deployments.watchDeployment({
        name: need(positionals[0], "NAME"),
        afterSequence: values.after !== undefined ? BigInt(int(values.after, "--after")) : undefined,
      });
      for await (const e of stream) out(eventLine(e));
      return 0;
    }
    case "delete": {
      const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { wait: { type: "boolean" }, json: { type: "boolean" }, "request-id": { type: "string" } } });
      const name = need(positionals[0], "NAME");
      const t = await api.deletions.deleteDeployment({ name, requestId: values["request-id"] ?? "" });
      out(values.json ? json(TaskSchema, t) : `deleting ${name} (task ${t.id})`);
      if (!values.wait) return 0;
      for await (const e of api.deletions.watchDeletion({ name })) if (!values.json) out(eventLine(e));
      const final = await api.deletions.getDeletionTask({ taskId: t.id });
      out(taskLine(final));
      return final.status === TaskStatus.COMPLETED ? 0 : 1;
    }
    case "sample-model": {
      const path = resolve(need(argv[0], "PATH"));
      writeFileSync(path, buildSampleModel());
      out(pathToFileURL(path).href);
      return 0;
    }
    default:
      return -1;
  }
}

/** Streams a deployment's events until its task ends; exit code 0 only when it serves (or is stopped). */
async function followDeployment(api: ApiClients, name: string, quiet: boolean): Promise<number> {
  const ac = new AbortController();
  try {
    for await (const e of api.deployments.watchDeployment({ name }, { signal: ac.signal })) {
      if (!quiet) out(eventLine(e));
      const d = e.deployment;
      if (!d || d.activeTaskId) continue;
      if (d.state === DeploymentState.RUNNING || d.state === DeploymentState.STOPPED) {
        out(deploymentLine(d));
        return 0;
      }
      if (d.state === DeploymentState.FAILED || d.state === DeploymentState.DELETED) {
        out(deploymentLine(d));
        if (d.failure?.logTail) out(d.failure.logTail);
        return 1;
      }
    }
    return 1;
  } finally {
    ac.abort();
  }
}

function int(v: string, flag: string): number {
  const n = Number(v);
  if (!Number.isInteger(n)) throw new Error(`${flag} takes a whole number, got "${v}"`);
  return n;
}

function need(v: string | undefined, what: string): string {
  if (!v) throw new Error(`missing ${what}`);
  return v;
}

export function describeClientError(err: unknown): string {
  if (err instanceof ConnectError) return `error: ${err.message}`;
  return `error: ${err instanceof Error ? err.message : String(err)}`;
}
