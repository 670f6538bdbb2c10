// Idempotent mutations: a repeated requestId returns the first result; the
// same requestId with a different body is refused.
import { createHash } from "node:crypto";
import type { Executor } from "../db/executor.js";
import { findDeploymentByUid } from "../db/deployments.js";
import { toDeployment, toTask } from "../db/mappers.js";
import { findTaskByRequestId } from "../db/tasks.js";
import { RefusedError, type FieldProblem } from "../domain/errors.js";
import type { Deployment, Task } from "../domain/types.js";

const MAX_REQUEST_ID_LENGTH = 128;

export function requestIdProblems(requestId: string): FieldProblem[] {
  if (requestId.length <= MAX_REQUEST_ID_LENGTH) return [];
  return [{ field: "request_id", description: `requestId is longer than ${MAX_REQUEST_ID_LENGTH} characters`, reason: "REQUEST_ID_INVALID", metadata: {} }];
}

const MAX_PROGRESS_DEADLINE_SECONDS = 86_400;

export function progressDeadlineProblems(seconds: number): FieldProblem[] {
  if (seconds >= 0 && seconds <= MAX_PROGRESS_DEADLINE_SECONDS) return [];
  return [
    {
      field: "progress_deadline_seconds",
      description: `progressDeadlineSeconds must be from 0 (default) to ${MAX_PROGRESS_DEADLINE_SECONDS}`,
      reason: "PROGRESS_DEADLINE_INVALID",
      metadata: {},
    },
  ];
}

/** Compared only on a repeated requestId, so computed only when there is one. */
export function requestHash(kind: string, requestId: string, body: unknown): string {
  if (!requestId) return "";
  const canonical = JSON.stringify(body, (_k, v: unknown) =>
    v && typeof v === "object" && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => a.localeCompare(b))) : v,
  );
  return createHash("sha256").update(kind).update(canonical).digest("hex");
}

/** Same requestId: the original result, or REQUEST_ID_REUSED when the body differs. */
export async function replayIfSeen(
  db: Executor,
  workspace: string,
  requestId: string,
  hash: string,
): Promise<{ deployment: Deployment; task: Task } | undefined> {
  if (!requestId) return undefined;
  const row = await findTaskByRequestId(db, workspace, requestId);
  if (!row) return undefined;
  if (row.request_hash !== hash) {
    throw new RefusedError("invalid", `requestId "${requestId}" was already used with a different request; use a new requestId`, "REQUEST_ID_REUSED", {
      requestId,
      taskId: row.id,
    });
  }
  const dep = await findDeploymentByUid(db, row.deployment_uid);
  return { deployment: toDeployment(dep!), task: toTask(row) };
}
