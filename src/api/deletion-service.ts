import type { ServiceImpl } from "@connectrpc/connect";
import { dbForCall } from "../db/connect.js";
import { deleteDeployment } from "../deployments/delete.js";
import { getTask, latestTask } from "../deployments/reads.js";
import type { DeletionService } from "../gen/modeldeploy/v1/deletion_service_pb.js";
import { directWriterOf } from "./direct-writer.js";
import { taskToPb } from "./convert.js";
import { depsForCall, type ApiDeps } from "./deps.js";
import { authenticated, noteCall, requireName, requireTaskId } from "./deployment-service.js";
import { openOnRead } from "./watch.js";
export function createDeletionService(deps: ApiDeps): ServiceImpl<typeof DeletionService> {
  return {
    async deleteDeployment(req, ctx) {
      const principal = await authenticated(deps, ctx, "deployments:write");
      const task = await deleteDeployment(depsForCall(deps, ctx), principal, requireName(req.name), req.requestId.trim());
      noteCall(ctx, task.deploymentName, task.id);
      return taskToPb(task);
    },

    async getDeletionTask(req, ctx) {
      const principal = await authenticated(deps, ctx, "deployments:read");
      return taskToPb(await getTask(dbForCall(deps.db, ctx), principal.workspace, requireTaskId(req.taskId), "DELETE"));
    },

    async getDeletionStatus(req, ctx) {
      const principal = await authenticated(deps, ctx, "deployments:read");
      return taskToPb(await latestTask(dbForCall(deps.db, ctx), principal.workspace, requireName(req.name), ["DELETE"], "delete"));
    },

    watchDeletion(req, ctx) {
      return openOnRead(async () => {
        const principal = await authenticated(deps, ctx, "deployments:read");
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
