// DeploymentService, written once against connect-es and served by both the
// grpc-js and the connect-node transports.
import { create } from "@bufbuild/protobuf";
import { Code, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { dbForCall } from "../db/connect.js";
import { findDeploymentByName, listDeployments } from "../db/deployments.js";
import { toDeployment, toTask } from "../db/mappers.js";
import { findTaskInWorkspace, latestTaskOfKinds } from "../db/tasks.js";
import type { DeploymentState } from "../domain/types.js";
import {
  CreateDeploymentResponseSchema, ListDeploymentsResponseSchema, type DeploymentService,
} from "../gen/modeldeploy/v1/deployment_service_pb.js";
import {
  deploymentStateFromPb, deploymentToPb, eventToPb, modelFromPb, resourcesFromPb, taskToPb,
} from "./convert.js";
import { directWriterOf } from "./direct-writer.js";
import { depsForCall, type ApiDeps } from "./deps.js";
import { apiError, notFound } from "./errors.js";
import { createDeployment, invalid } from "./mutations.js";
import { decodePageToken, encodePageToken, parseLabelSelector } from "./paging.js";
import { openOnRead } from "./watch.js";

function unimplemented(method: string): never {
  throw apiError(Code.Unimplemented, `${method} is not implemented in this release of modeldeploy yet`, { reason: "NOT_IMPLEMENTED", metadata: { method } });
}

export function requireName(name: string, field = "name"): string {
  const trimmed = name.trim();
  if (!trimmed) throw invalid([{ field, description: `${field} is required`, reason: "NAME_INVALID", metadata: {} }]);
  if (trimmed.length > 63) throw invalid([{ field, description: `${field} is longer than 63 characters`, reason: "NAME_INVALID", metadata: { name: trimmed.slice(0, 80) } }]);
  return trimmed;
}

export function requireTaskId(id: string): string {
  const trimmed = id.trim();
  if (!trimmed || trimmed.length > 64) throw invalid([{ field: "task_id", description: "taskId is required (at most 64 characters)", reason: "TASK_ID_INVALID", metadata: {} }]);
  return trimmed;
}

export function createDeploymentService(deps: ApiDeps): ServiceImpl<typeof DeploymentService> {
  // Every database wait of a call ends with the call (its ctx.signal): dbForCall.
  const read = (ctx: HandlerContext) => deps.auth.authenticate(ctx.requestHeader, "deployments:read", ctx);
  const write = (ctx: HandlerContext) => deps.auth.authenticate(ctx.requestHeader, "deployments:write", ctx);

  return {
    async createDeployment(req, ctx) {
      const principal = await write(ctx);
      const { deployment, task } = await createDeployment(depsForCall(deps, ctx), principal, {
        model: modelFromPb(req.model),
        resources: resourcesFromPb(req.resources),
        scaling: req.scaling ? { minReplicas: req.scaling.minReplicas, maxReplicas: req.scaling.maxReplicas } : { minReplicas: 1, maxReplicas: 1 },
        suffix: req.suffix.trim(),
        labels: { ...req.labels },
        requestId: req.requestId.trim(),
        progressDeadlineSeconds: req.progressDeadlineSeconds,
      }, ctx);
      return create(CreateDeploymentResponseSchema, { deployment: deploymentToPb(deployment), task: taskToPb(task) });
    },

    async getDeployment(req, ctx) {
      const principal = await read(ctx);
      const name = requireName(req.name);
      const row = await findDeploymentByName(dbForCall(deps.db, ctx), principal.workspace, name);
      if (!row) throw notFound(name);
      return deploymentToPb(toDeployment(row));
    },

    async listDeployments(req, ctx) {
      const principal = await read(ctx);
      const pageSize = req.pageSize === 0 ? 50 : req.pageSize;
      if (pageSize < 0 || pageSize > 500) throw invalid([{ field: "page_size", description: "pageSize must be from 1 to 500 (0 means 50)", reason: "PAGE_SIZE_INVALID", metadata: { pageSize: String(req.pageSize) } }]);
      const states: DeploymentState[] = [];
      for (const s of req.states) {
        const state = deploymentStateFromPb(s);
        if (!state) throw invalid([{ field: "states", description: `unknown deployment state ${s}`, reason: "STATE_INVALID", metadata: {} }]);
        states.push(state);
      }
      const labels = parseLabelSelector(req.labelSelector);
      const filter = JSON.stringify({ states: [...states].sort(), labels });
      const afterUid = req.pageToken ? decodePageToken(req.pageToken, filter) : undefined;
      const rows = await listDeployments(dbForCall(deps.db, ctx), { workspace: principal.workspace, states, labels, afterUid, limit: pageSize + 1 });
      const page = rows.slice(0, pageSize);
      const nextPageToken = rows.length > pageSize ? encodePageToken(page[page.length - 1]!.uid, filter) : "";
      return create(ListDeploymentsResponseSchema, { deployments: page.map((r) => deploymentToPb(toDeployment(r))), nextPageToken });
    },

    async getDeploymentTask(req, ctx) {
      const principal = await read(ctx);
      const id = requireTaskId(req.taskId);
      const row = await findTaskInWorkspace(dbForCall(deps.db, ctx), principal.workspace, id);
      if (!row) throw apiError(Code.NotFound, `task "${id}" not found`, { reason: "TASK_NOT_FOUND", metadata: { taskId: id } });
      return taskToPb(toTask(row));
    },

    async getDeploymentStatus(req, ctx) {
      const principal = await read(ctx);
      const name = requireName(req.name);
      const db = dbForCall(deps.db, ctx);
      const dep = await findDeploymentByName(db, principal.workspace, name);
      if (!dep) throw notFound(name);
      const row = await latestTaskOfKinds(db, dep.uid, ["DEPLOY", "UPDATE", "SCALE", "ROLLBACK"]);
      if (!row) throw apiError(Code.NotFound, `deployment "${name}" has no deploy task`, { reason: "TASK_NOT_FOUND", metadata: { name } });
      return taskToPb(toTask(row));
    },

    watchDeployment(req, ctx) {
      return openOnRead(async () => {
        const principal = await read(ctx);
        return deps.watches.open({
          workspace: principal.workspace,
          name: requireName(req.name),
          afterSequence: req.afterSequence === undefined ? undefined : Number(req.afterSequence),
          untilDeleted: false,
          writer: directWriterOf(ctx),
        });
      });
    },

    // Not implemented yet, but authenticated first like every other call: without
    // a valid key (and the scope the method will need) a caller learns nothing.
    async updateDeployment(_req, ctx) {
      await write(ctx);
      unimplemented("UpdateDeployment");
    },
    async rollbackDeployment(_req, ctx) {
      await write(ctx);
      unimplemented("RollbackDeployment");
    },
    async listDeploymentRevisions(_req, ctx) {
      await read(ctx);
      unimplemented("ListDeploymentRevisions");
    },
    async listDeploymentTasks(_req, ctx) {
      await read(ctx);
      unimplemented("ListDeploymentTasks");
    },
    async cancelDeploymentTask(_req, ctx) {
      await write(ctx);
      unimplemented("CancelDeploymentTask");
    },
    // eslint-disable-next-line require-yield
    async *watchDeployments(_req, ctx) {
      await read(ctx);
      unimplemented("WatchDeployments");
    },
    async listAcceleratorTypes(_req, ctx) {
      await read(ctx);
      unimplemented("ListAcceleratorTypes");
    },
  };
}
