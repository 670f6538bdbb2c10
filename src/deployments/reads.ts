// What a client may read of its workspace's deployments and tasks; a name or
// task of another workspace is simply not found.
import { findDeploymentByName, listDeployments as listDeploymentRows } from "../db/deployments.js";
import type { Executor } from "../db/executor.js";
import { toDeployment, toTask } from "../db/mappers.js";
import { listRevisions as listRevisionRows, type RevisionRecord } from "../db/revisions.js";
import { findTaskInWorkspace, latestTaskOfKinds, listTasksOfDeployment } from "../db/tasks.js";
import type { Db } from "../db/connect.js";
import type { CallScope } from "../db/call-scope.js";
import type { DeploymentsDeps } from "./deps.js";
import { deploymentNotFound, RefusedError } from "../domain/errors.js";
import type { Deployment, DeploymentState, Task, TaskKind, TaskStatus } from "../domain/types.js";

/**
 * The live deployment of that name, else the most recent deleted one. The
 * hottest read: concurrent ones share a statement (deploymentsByName); a
 * call that goes away stops waiting.
 */
export async function getDeployment(deps: Pick<DeploymentsDeps, "deploymentsByName">, workspace: string, name: string, call?: CallScope): Promise<Deployment> {
  const row = await deps.deploymentsByName.run({ workspace, name }, call);
  if (!row) throw deploymentNotFound(name);
  return toDeployment(row);
}

export interface DeploymentPageQuery {
  workspace: string;
  /** Empty: every state but DELETED. */
  states: DeploymentState[];
  labels: Record<string, string>;
  afterUid: string | undefined;
  pageSize: number;
}

/** One page in uid order, and the uid to continue after when there is more. */
export async function listDeployments(db: Db, q: DeploymentPageQuery): Promise<{ deployments: Deployment[]; nextAfterUid: string | undefined }> {
  const rows = await listDeploymentRows(db, { workspace: q.workspace, states: q.states, labels: q.labels, afterUid: q.afterUid, limit: q.pageSize + 1 });
  const page = rows.slice(0, q.pageSize).map(toDeployment);
  return { deployments: page, nextAfterUid: rows.length > q.pageSize ? page[page.length - 1]!.uid : undefined };
}

/** A task of the workspace; `kind`: only a task of that kind counts (GetDeletionTask). */
export async function getTask(db: Executor, workspace: string, id: string, kind?: TaskKind): Promise<Task> {
  const row = await findTaskInWorkspace(db, workspace, id);
  if (!row || (kind !== undefined && row.kind !== kind)) {
    throw new RefusedError("not_found", `${kind === "DELETE" ? "deletion task" : "task"} "${id}" not found`, "TASK_NOT_FOUND", { taskId: id });
  }
  return toTask(row);
}

/** The deployment's latest task of these kinds (GetDeploymentStatus, GetDeletionStatus). */
export async function latestTask(db: Executor, workspace: string, name: string, kinds: TaskKind[], what: string): Promise<Task> {
  const dep = await findDeploymentByName(db, workspace, name);
  if (!dep) throw deploymentNotFound(name);
  const row = await latestTaskOfKinds(db, dep.uid, kinds);
  if (!row) throw new RefusedError("not_found", `deployment "${name}" has no ${what} task`, "TASK_NOT_FOUND", { name });
  return toTask(row);
}

/** The deployment's revisions, oldest first, each with the task that made it. */
export async function listRevisions(db: Executor, workspace: string, name: string): Promise<RevisionRecord[]> {
  const dep = await findDeploymentByName(db, workspace, name);
  if (!dep) throw deploymentNotFound(name);
  return listRevisionRows(db, dep.uid);
}

export interface TaskPageQuery {
  workspace: string;
  name: string;
  /** Empty: any status. */
  statuses: TaskStatus[];
  beforeId: string | undefined;
  pageSize: number;
}

/** One page of the deployment's tasks, newest first, and the id to continue before when there is more. */
export async function listTasks(db: Executor, q: TaskPageQuery): Promise<{ tasks: Task[]; nextBeforeId: string | undefined }> {
  const dep = await findDeploymentByName(db, q.workspace, q.name);
  if (!dep) throw deploymentNotFound(q.name);
  const rows = await listTasksOfDeployment(db, { deploymentUid: dep.uid, statuses: q.statuses, beforeId: q.beforeId, limit: q.pageSize + 1 });
  const page = rows.slice(0, q.pageSize).map(toTask);
  return { tasks: page, nextBeforeId: rows.length > q.pageSize ? page[page.length - 1]!.id : undefined };
}
