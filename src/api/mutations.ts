// The two mutations of this release: create and delete. Each writes the
// deployment change, its task, its event and an outbox row in one transaction.
import { createHash } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { sql } from "kysely";
import type { CallScope } from "../db/call-scope.js";
import { applyChange } from "../db/changes.js";
import { findDeploymentByName, findDeploymentByUid, lockDeployment } from "../db/deployments.js";
import { taskToRow, toDeployment, toTask } from "../db/mappers.js";
import { insertOutbox } from "../db/outbox.js";
import { findTask, findTaskByRequestId, insertTask } from "../db/tasks.js";
import { transact } from "../db/transact.js";
import { newId, newSuffix } from "../domain/ids.js";
import { emptyProgress, type Deployment, type ModelSource, type Principal, type Resources, type Scaling, type Task, type TaskKind } from "../domain/types.js";
import { resolveName, validateLabels, validateSpec, type Violation } from "../domain/validation.js";
import type { ApiDeps } from "./deps.js";
import { apiError, notFound } from "./errors.js";

export interface CreateInput {
  model: ModelSource;
  resources: Resources;
  scaling: Scaling;
  suffix: string;
  labels: Record<string, string>;
  requestId: string;
  progressDeadlineSeconds: number;
}

export function invalid(violations: Violation[]): Error {
  const first = violations[0]!;
  return apiError(Code.InvalidArgument, violations.map((v) => v.description).join("; "), {
    reason: first.reason,
    metadata: first.metadata,
    fieldViolations: violations.map((v) => ({ field: v.field, description: v.description, reason: v.reason })),
  });
}

/** Compared only on a repeated requestId, so computed only when there is one. */
function requestHash(kind: string, requestId: string, body: unknown): string {
  if (!requestId) return "";
  const canonical = JSON.stringify(body, (_k, v: unknown) =>
    v && typeof v === "object" && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => a.localeCompare(b))) : v);
  return createHash("sha256").update(kind).update(canonical).digest("hex");
}

/** Same requestId: the original result, or REQUEST_ID_REUSED when the body differs. */
async function replayIfSeen(deps: ApiDeps, principal: Principal, requestId: string, hash: string): Promise<{ deployment: Deployment; task: Task } | undefined> {
  if (!requestId) return undefined;
  const row = await findTaskByRequestId(deps.db, principal.workspace, requestId);
  if (!row) return undefined;
  if (row.request_hash !== hash) {
    throw apiError(Code.InvalidArgument, `requestId "${requestId}" was already used with a different request; use a new requestId`, {
      reason: "REQUEST_ID_REUSED",
      metadata: { requestId, taskId: row.id },
    });
  }
  const dep = await findDeploymentByUid(deps.db, row.deployment_uid);
  return { deployment: toDeployment(dep!), task: toTask(row) };
}

function isUniqueViolation(err: unknown, constraint: string): boolean {
  const e = err as { code?: string; constraint?: string };
  return e?.code === "23505" && e.constraint === constraint;
}

/** `deps` as depsForCall gives them; `call`: whose abort takes a waiting write out of the batch queue. */
export async function createDeployment(deps: ApiDeps, principal: Principal, input: CreateInput, call?: CallScope): Promise<{ deployment: Deployment; task: Task }> {
  const violations = [...validateSpec(input, deps.catalog, deps.limits), ...validateLabels(input.labels, deps.limits)];
  if (input.requestId.length > 128) violations.push({ field: "request_id", description: "requestId is longer than 128 characters", reason: "REQUEST_ID_INVALID", metadata: {} });
  if (input.progressDeadlineSeconds < 0 || input.progressDeadlineSeconds > 86_400) {
    violations.push({ field: "progress_deadline_seconds", description: "progressDeadlineSeconds must be from 0 (default) to 86400", reason: "PROGRESS_DEADLINE_INVALID", metadata: {} });
  }
  const named = resolveName(input.model.name, input.suffix || "x");
  if ("violation" in named && input.model.name) violations.push(named.violation);
  if (violations.length > 0) throw invalid(violations);

  const hash = requestHash("create", input.requestId, { ...input, requestId: "" });
  const seen = await replayIfSeen(deps, principal, input.requestId, hash);
  if (seen) return seen;
  await checkCapacity(deps, input.resources, input.scaling);

  // A generated suffix that collides is drawn again; a chosen one is the caller's to change.
  for (let tries = 0; ; tries++) {
    const suffix = input.suffix || newSuffix();
    const resolved = resolveName(input.model.name, suffix);
    if ("violation" in resolved) throw invalid([resolved.violation]);
    try {
      const created = await insertCreate(deps, principal, input, resolved.name, hash, call);
      if (created) return created;
      // The name may be this very request's: a retry that raced its first try
      // (a conflicting insert waits for the other to commit, so it is visible now).
      const again = await replayIfSeen(deps, principal, input.requestId, hash);
      if (again) return again;
      if (!input.suffix && tries < 3) continue;
      throw apiError(Code.AlreadyExists, `a deployment named "${resolved.name}" already exists in workspace "${principal.workspace}": specify another suffix`, {
        reason: "NAME_TAKEN",
        metadata: { name: resolved.name },
      });
    } catch (err) {
      if (isUniqueViolation(err, "tasks_request_id")) {
        const again = await replayIfSeen(deps, principal, input.requestId, hash);
        if (again) return again;
      }
      throw err;
    }
  }
}

/** The new deployment and its task; undefined when the name is taken. */
async function insertCreate(deps: ApiDeps, principal: Principal, input: CreateInput, name: string, hash: string, call: CallScope | undefined) {
  const now = new Date();
  const uid = newId();
  const taskId = newId();
  const deadlineSeconds = input.progressDeadlineSeconds || deps.defaultProgressDeadlineSeconds;
  const deployment: Deployment = {
    uid,
    workspace: principal.workspace,
    name,
    state: "PENDING",
    model: input.model,
    resources: input.resources,
    scaling: input.scaling,
    failure: null,
    instances: { desired: 0, ready: 0, pending: 0, restarts: 0 },
    endpointUrl: "",
    servingRevision: 0,
    targetRevision: 1,
    activeTaskId: taskId,
    labels: input.labels,
    creator: principal.name,
    modifier: principal.name,
    createTime: now,
    updateTime: now,
    sequence: 1,
  };
  const task = newTask({ id: taskId, kind: "DEPLOY", principal, uid, name, revision: 1, requestId: input.requestId, deadlineSeconds, now });
  const event = await deps.newDeployments.write({
    deployment,
    revision: { number: 1, model: input.model, resources: input.resources, taskId, createTime: now },
    task,
    requestHash: hash,
  }, call);
  if (event === "NAME_TAKEN") return undefined;
  deps.sink([event]);
  deps.wakeRelay();
  return { deployment: event.deployment, task: event.task! };
}

function newTask(t: { id: string; kind: TaskKind; principal: Principal; uid: string; name: string; revision: number; requestId: string; deadlineSeconds: number; now: Date }): Task {
  return {
    id: t.id,
    workspace: t.principal.workspace,
    deploymentUid: t.uid,
    deploymentName: t.name,
    kind: t.kind,
    revision: t.revision,
    status: "PENDING",
    phase: "QUEUED",
    progress: { ...emptyProgress(), message: "queued" },
    result: null,
    failure: null,
    rolledBack: false,
    attempt: 0,
    requestId: t.requestId,
    creator: t.principal.name,
    createTime: t.now,
    startTime: null,
    endTime: null,
    // Set at creation too, so a task no worker ever picks up still ends.
    progressDeadline: new Date(t.now.getTime() + t.deadlineSeconds * 1000),
    deadlineSeconds: t.deadlineSeconds,
  };
}

/** RESOURCE_EXHAUSTED when the catalog has too few accelerators of the type left. */
async function checkCapacity(deps: ApiDeps, resources: Resources, scaling: Scaling): Promise<void> {
  if (!resources.acceleratorType) return;
  const entry = deps.catalog.find((c) => c.name === resources.acceleratorType);
  if (!entry) return;
  const row = await deps.db
    .selectFrom("deployments")
    .select(sql<string>`coalesce(sum((resources->>'acceleratorCount')::int * greatest((scaling->>'maxReplicas')::int, 1)), 0)`.as("used"))
    .where("state", "not in", ["DELETED", "FAILED"])
    .where(sql<boolean>`resources->>'acceleratorType' = ${entry.name}`)
    .executeTakeFirst();
  const used = Number(row?.used ?? 0);
  const wanted = resources.acceleratorCount * Math.max(scaling.maxReplicas, 1);
  if (used + wanted > entry.total) {
    throw apiError(Code.ResourceExhausted, `not enough ${entry.name} accelerators: ${wanted} requested, ${Math.max(entry.total - used, 0)} of ${entry.total} available; lower the count or replicas, or try later`, {
      reason: "ACCELERATOR_CAPACITY_EXHAUSTED",
      metadata: { requestedAcceleratorType: entry.name, requestedAcceleratorCount: String(wanted), availableAcceleratorCount: String(Math.max(entry.total - used, 0)) },
    });
  }
}

export async function deleteDeployment(deps: ApiDeps, principal: Principal, name: string, requestId: string): Promise<Task> {
  if (requestId.length > 128) throw invalid([{ field: "request_id", description: "requestId is longer than 128 characters", reason: "REQUEST_ID_INVALID", metadata: {} }]);
  const hash = requestHash("delete", requestId, { name });
  const seen = await replayIfSeen(deps, principal, requestId, hash);
  if (seen) return seen.task;
  const found = await findDeploymentByName(deps.db, principal.workspace, name);
  if (!found || found.state === "DELETED") throw notFound(name);
  const taskId = newId();
  const now = new Date();
  let result: Task;
  try {
    result = await transact(deps.db, deps.sink, async (trx, emit) => {
      const locked = await lockDeployment(trx, found.uid);
      if (!locked || locked.state === "DELETED") throw notFound(name);
      if (locked.active_task_id) {
        const active = await findTask(trx, locked.active_task_id);
        // Deleting twice returns the delete already under way.
        if (active?.kind === "DELETE" && ["PENDING", "RUNNING"].includes(active.status)) return toTask(active);
        if (active && ["PENDING", "RUNNING"].includes(active.status)) {
          // Cancel first; bumping the attempt fences the worker that runs it.
          emit(await applyChange(trx, {
            deploymentUid: locked.uid,
            type: "TASK_FINISHED",
            task: {
              id: active.id,
              patch: {
                status: "CANCELLED",
                end_time: now,
                attempt: sql<number>`attempt + 1`,
                lease_owner: null,
                lease_expires_at: null,
                failure: JSON.stringify({ reason: "CANCELLED", message: "cancelled because the deployment is being deleted", retryable: false, time: now.toISOString() }),
              },
            },
          }));
        }
      }
      const task = newTask({
        id: taskId, kind: "DELETE", principal, uid: locked.uid, name: locked.name, revision: locked.serving_revision,
        requestId, deadlineSeconds: deps.defaultProgressDeadlineSeconds, now,
      });
      await insertTask(trx, taskToRow(task, { requestHash: hash, enqueuedAt: now }));
      await insertOutbox(trx, taskId, taskId);
      const event = await applyChange(trx, {
        deploymentUid: locked.uid,
        type: "STATE_CHANGED",
        deployment: { state: "DELETING", active_task_id: taskId, modifier: principal.name },
        taskId,
      });
      emit(event);
      return event.task!;
    });
  } catch (err) {
    if (isUniqueViolation(err, "tasks_request_id")) {
      const again = await replayIfSeen(deps, principal, requestId, hash);
      if (again) return again.task;
    }
    throw err;
  }
  deps.wakeRelay();
  return result;
}
