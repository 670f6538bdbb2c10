// DeploymentService, written once against connect-es and served by both the
// grpc-js and the connect-node transports.
import { create } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { dbForCall } from "../db/connect.js";
import { cancelTask } from "../deployments/cancel.js";
import { createDeployment } from "../deployments/create.js";
import { rollbackDeployment } from "../deployments/rollback.js";
import { updateDeployment } from "../deployments/update.js";
import { acceleratorCatalog } from "../deployments/capacity.js";
import { getDeployment, getTask, latestTask, listDeployments, listRevisions, listTasks } from "../deployments/reads.js";
import { invalidRequest } from "../domain/errors.js";
import { withScalingDefaults, type DeploymentState, type Principal, type Scope, type TaskStatus } from "../domain/types.js";
import {
  CreateDeploymentResponseSchema,
  ListAcceleratorTypesResponseSchema,
  ListDeploymentRevisionsResponseSchema,
  ListDeploymentsResponseSchema,
  ListDeploymentTasksResponseSchema,
  RollbackDeploymentResponseSchema,
  UpdateDeploymentResponseSchema,
  type DeploymentService,
} from "../gen/modeldeploy/v1/deployment_service_pb.js";
import type { DeploymentState as PbDeploymentState } from "../gen/modeldeploy/v1/resources_pb.js";
import {
  acceleratorTypeToPb,
  deploymentStateFromPb,
  deploymentToPb,
  modelFromPb,
  resourcesFromPb,
  rolloutFromPb,
  scalingFromPb,
  revisionToPb,
  taskStatusFromPb,
  taskToPb,
} from "./convert.js";
import { callDeploymentKey, callTaskKey, callWorkspaceKey } from "./call-wrapper.js";
import { directWriterOf } from "./direct-writer.js";
import { depsForCall, type ApiDeps } from "./deps.js";
import { decodePageToken, encodePageToken, parseLabelSelector } from "./paging.js";
import { openOnRead } from "./watch.js";
import { openWorkspaceWatch } from "./workspace-watch.js";

export function requireName(name: string, field = "name"): string {
  const trimmed = name.trim();
  if (!trimmed) throw invalidRequest([{ field, description: `${field} is required`, reason: "NAME_INVALID", metadata: {} }]);
  if (trimmed.length > 63)
    throw invalidRequest([{ field, description: `${field} is longer than 63 characters`, reason: "NAME_INVALID", metadata: { name: trimmed.slice(0, 80) } }]);
  return trimmed;
}

export function requireTaskId(id: string): string {
  const trimmed = id.trim();
  if (!trimmed || trimmed.length > 64)
    throw invalidRequest([{ field: "task_id", description: "taskId is required (at most 64 characters)", reason: "TASK_ID_INVALID", metadata: {} }]);
  return trimmed;
}

function requireStates(requested: readonly PbDeploymentState[]): DeploymentState[] {
  return requested.map((s) => {
    const state = deploymentStateFromPb(s);
    if (!state) throw invalidRequest([{ field: "states", description: `unknown deployment state ${s}`, reason: "STATE_INVALID", metadata: {} }]);
    return state;
  });
}

function requirePageSize(requested: number): number {
  const pageSize = requested === 0 ? 50 : requested;
  if (pageSize < 0 || pageSize > 500)
    throw invalidRequest([
      {
        field: "page_size",
        description: "pageSize must be from 1 to 500 (0 means 50)",
        reason: "PAGE_SIZE_INVALID",
        metadata: { pageSize: String(requested) },
      },
    ]);
  return pageSize;
}

/** The caller's principal; its workspace goes on the call's log line. */
export async function authenticated(deps: ApiDeps, ctx: HandlerContext, scope: Scope): Promise<Principal> {
  const principal = await deps.auth.authenticate(ctx.requestHeader, scope, ctx);
  ctx.values.set(callWorkspaceKey, principal.workspace);
  return principal;
}

/** The deployment and task a call made, for its log line (the request names neither). */
export function noteCall(ctx: HandlerContext, deployment: string, taskId: string): void {
  ctx.values.set(callDeploymentKey, deployment);
  ctx.values.set(callTaskKey, taskId);
}

export function createDeploymentService(deps: ApiDeps): ServiceImpl<typeof DeploymentService> {
  // Every database wait of a call ends with the call (its ctx.signal): dbForCall.
  const read = (ctx: HandlerContext) => authenticated(deps, ctx, "deployments:read");
  const write = (ctx: HandlerContext) => authenticated(deps, ctx, "deployments:write");

  return {
    async createDeployment(req, ctx) {
      const principal = await write(ctx);
      const { deployment, task } = await createDeployment(
        depsForCall(deps, ctx),
        principal,
        {
          model: modelFromPb(req.model, deps.tokens),
          resources: resourcesFromPb(req.resources),
          scaling: req.scaling ? scalingFromPb(req.scaling) : withScalingDefaults({ minReplicas: 1, maxReplicas: 1 }),
          suffix: req.suffix.trim(),
          labels: { ...req.labels },
          requestId: req.requestId.trim(),
          progressDeadlineSeconds: req.progressDeadlineSeconds,
        },
        ctx,
      );
      noteCall(ctx, deployment.name, task.id);
      return create(CreateDeploymentResponseSchema, { deployment: deploymentToPb(deployment), task: taskToPb(task) });
    },

    async getDeployment(req, ctx) {
      const principal = await read(ctx);
      return deploymentToPb(await getDeployment(deps, principal.workspace, requireName(req.name), ctx));
    },

    async listDeployments(req, ctx) {
      const principal = await read(ctx);
      const pageSize = requirePageSize(req.pageSize);
      const states = requireStates(req.states);
      const labels = parseLabelSelector(req.labelSelector);
      const filter = JSON.stringify({ states: [...states].sort(), labels });
      const afterUid = req.pageToken ? decodePageToken(req.pageToken, filter) : undefined;
      const page = await listDeployments(dbForCall(deps.db, ctx), { workspace: principal.workspace, states, labels, afterUid, pageSize });
      const nextPageToken = page.nextAfterUid === undefined ? "" : encodePageToken(page.nextAfterUid, filter);
      return create(ListDeploymentsResponseSchema, { deployments: page.deployments.map(deploymentToPb), nextPageToken });
    },

    async getDeploymentTask(req, ctx) {
      const principal = await read(ctx);
      return taskToPb(await getTask(dbForCall(deps.db, ctx), principal.workspace, requireTaskId(req.taskId)));
    },

    async getDeploymentStatus(req, ctx) {
      const principal = await read(ctx);
      return taskToPb(
        await latestTask(dbForCall(deps.db, ctx), principal.workspace, requireName(req.name), ["DEPLOY", "UPDATE", "SCALE", "ROLLBACK"], "deploy"),
      );
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

    async updateDeployment(req, ctx) {
      const principal = await write(ctx);
      const { deployment, task } = await updateDeployment(depsForCall(deps, ctx), principal, {
        name: requireName(req.name),
        model: req.model ? modelFromPb(req.model, deps.tokens) : undefined,
        resources: req.resources ? resourcesFromPb(req.resources) : undefined,
        scaling: req.scaling ? scalingFromPb(req.scaling) : undefined,
        rollout: rolloutFromPb(req.rollout),
        progressDeadlineSeconds: req.progressDeadlineSeconds,
        requestId: req.requestId.trim(),
      });
      noteCall(ctx, deployment.name, task.id);
      return create(UpdateDeploymentResponseSchema, { deployment: deploymentToPb(deployment), task: taskToPb(task) });
    },
    async rollbackDeployment(req, ctx) {
      const principal = await write(ctx);
      const { deployment, task } = await rollbackDeployment(depsForCall(deps, ctx), principal, {
        name: requireName(req.name),
        revision: req.revision,
        rollout: rolloutFromPb(req.rollout),
        progressDeadlineSeconds: req.progressDeadlineSeconds,
        requestId: req.requestId.trim(),
      });
      noteCall(ctx, deployment.name, task.id);
      return create(RollbackDeploymentResponseSchema, { deployment: deploymentToPb(deployment), task: taskToPb(task) });
    },
    async listDeploymentRevisions(req, ctx) {
      const principal = await read(ctx);
      const revisions = await listRevisions(dbForCall(deps.db, ctx), principal.workspace, requireName(req.name));
      return create(ListDeploymentRevisionsResponseSchema, { revisions: revisions.map(revisionToPb) });
    },
    async listDeploymentTasks(req, ctx) {
      const principal = await read(ctx);
      const name = requireName(req.name);
      const pageSize = requirePageSize(req.pageSize);
      const statuses: TaskStatus[] = [];
      for (const s of req.statuses) {
        const status = taskStatusFromPb(s);
        if (!status) throw invalidRequest([{ field: "statuses", description: `unknown task status ${s}`, reason: "STATUS_INVALID", metadata: {} }]);
        statuses.push(status);
      }
      const filter = JSON.stringify({ name, statuses: [...statuses].sort() });
      const beforeId = req.pageToken ? decodePageToken(req.pageToken, filter) : undefined;
      const page = await listTasks(dbForCall(deps.db, ctx), { workspace: principal.workspace, name, statuses, beforeId, pageSize });
      const nextPageToken = page.nextBeforeId === undefined ? "" : encodePageToken(page.nextBeforeId, filter);
      return create(ListDeploymentTasksResponseSchema, { tasks: page.tasks.map(taskToPb), nextPageToken });
    },
    async cancelDeploymentTask(req, ctx) {
      const principal = await write(ctx);
      const task = await cancelTask(depsForCall(deps, ctx), principal, requireTaskId(req.taskId));
      noteCall(ctx, task.deploymentName, task.id);
      return taskToPb(task);
    },
    watchDeployments(req, ctx) {
      return openOnRead(async () => {
        const principal = await read(ctx);
        return openWorkspaceWatch(
          { db: deps.db, bus: deps.bus },
          { workspace: principal.workspace, states: requireStates(req.states), afterCursor: req.afterCursor.trim() },
        );
      });
    },
    async listAcceleratorTypes(_req, ctx) {
      await read(ctx);
      const catalog = await acceleratorCatalog({ db: dbForCall(deps.db, ctx), catalog: deps.catalog });
      return create(ListAcceleratorTypesResponseSchema, { acceleratorTypes: catalog.map(acceleratorTypeToPb) });
    },
  };
}
