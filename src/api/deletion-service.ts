import { Code, type ServiceImpl } from "@connectrpc/connect";
import { dbForCall } from "../db/connect.js";
import { findDeploymentByName } from "../db/deployments.js";
import { toTask } from "../db/mappers.js";
import { findTaskInWorkspace, latestTaskOfKinds } from "../db/tasks.js";
import type { DeletionService } from "../gen/modeldeploy/v1/deletion_service_pb.js";
import { directWriterOf } from "./direct-writer.js";
import { taskToPb } from "./convert.js";
import { depsForCall, type ApiDeps } from "./deps.js";
import { requireName, requireTaskId } from "./deployment-service.js";
import { apiError, notFound } from "./errors.js";
import { deleteDeployment } from "./mutations.js";
import { openOnRead } from "./watch.js";

export function createDeletionService(deps: ApiDeps): ServiceImpl<typeof DeletionService> {
  return {
    async deleteDeployment(req, ctx) {
      const principal = await deps.auth.authenticate(ctx.requestHeader, "deployments:write", ctx);
      const task = await deleteDeployment(depsForCall(deps, ctx), principal, requireName(req.name), req.requestId.trim());
      return taskToPb(task);
    },

    async getDeletionTask(req, ctx) {
      const principal = await deps.auth.authenticate(ctx.requestHeader, "deployments:read", ctx);
      const id = requireTaskId(req.taskId);
      const row = await findTaskInWorkspace(dbForCall(deps.db, ctx), principal.workspace, id);
      if (!row || row.kind !== "DELETE") throw apiError(Code.NotFound, `deletion task "${id}" not found`, { reason: "TASK_NOT_FOUND", metadata: { taskId: id } });
      return taskToPb(toTask(row));
    },

    async getDeletionStatus(req, ctx) {
      const principal = await deps.auth.authenticate(ctx.requestHeader, "deployments:read", ctx);
      const name = requireName(req.name);
      const db = dbForCall(deps.db, ctx);
      const dep = await findDeploymentByName(db, principal.workspace, name);
      if (!dep) throw notFound(name);
      const row = await latestTaskOfKinds(db, dep.uid, ["DELETE"]);
      if (!row) throw apiError(Code.NotFound, `deployment "${name}" has no delete task`, { reason: "TASK_NOT_FOUND", metadata: { name } });
      return taskToPb(toTask(row));
    },

    watchDeletion(req, ctx) {
      return openOnRead(async () => {
        const principal = await deps.auth.authenticate(ctx.requestHeader, "deployments:read", ctx);
        return deps.watches.open({
          workspace: principal.workspace,
          name: requireName(req.name),
          afterSequence: req.afterSequence === undefined ? undefined : Number(req.afterSequence),
          untilDeleted: true,
          writer: directWriterOf(ctx),
        });
      });
    },
  };
}
