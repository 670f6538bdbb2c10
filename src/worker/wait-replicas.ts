// A deploy's wait for its started replicas to pass their health checks. With
// a driver that long-polls (waitRevisionStatus), a change of the revision's
// status is seen when it happens, not at the next poll; other drivers are
// polled every pollMs.
import { setTimeout as sleep } from "node:timers/promises";
import type { RevisionStatus, RuntimeDriver } from "../runtime/driver.js";

/** How long one long-poll may stay unanswered when nothing changes. */
const LONG_POLL_MS = 5_000;

export interface ReplicaWait {
  driver: RuntimeDriver;
  deploymentUid: string;
  revision: number;
  /** Ready replicas that end the wait. */
  wanted: number;
  /**
   * Called with the first status and with each one whose ready count differs
   * from the last reported, while fewer than `wanted` are ready: the status
   * that ends the wait is returned instead, for the caller's next write.
   */
  onReadyCount(status: RevisionStatus): Promise<void>;
  /** The task's progress deadline now (each progress write moves it). */
  deadline(): Date | undefined;
  /** Poll period for a driver that cannot long-poll. */
  pollMs: number;
  signal: AbortSignal;
}

export type ReplicaWaitResult =
  | { outcome: "ready"; status: RevisionStatus }
  /** A replica exited before it was ever ready (status.exited is set). */
  | { outcome: "exited"; status: RevisionStatus }
  | { outcome: "deadline"; status: RevisionStatus };

export async function waitForReplicas(o: ReplicaWait): Promise<ReplicaWaitResult> {
  o.signal.throwIfAborted();
  let status = await o.driver.revisionStatus(o.deploymentUid, o.revision);
  let reportedReady: number | undefined;
  for (;;) {
    if (status.exited) return { outcome: "exited", status };
    if (status.ready >= o.wanted) return { outcome: "ready", status };
    if (status.ready !== reportedReady) {
      reportedReady = status.ready;
      await o.onReadyCount(status);
    }
    const deadline = o.deadline();
    const leftMs = deadline ? deadline.getTime() - Date.now() : Infinity;
    if (leftMs < 0) return { outcome: "deadline", status };
    // Wake at the deadline at the latest, so it is reported as a health-check timeout.
    status = await nextStatus(o, status, Math.max(1, Math.min(LONG_POLL_MS, leftMs + 1)));
  }
}

async function nextStatus(o: ReplicaWait, previous: RevisionStatus, timeoutMs: number): Promise<RevisionStatus> {
  o.signal.throwIfAborted();
  if (!o.driver.waitRevisionStatus) {
    await pause(o.pollMs, o.signal);
    return o.driver.revisionStatus(o.deploymentUid, o.revision);
  }
  const started = Date.now();
  let next: RevisionStatus;
  try {
    next = await o.driver.waitRevisionStatus(o.deploymentUid, o.revision, previous, { timeoutMs, signal: o.signal });
  } catch (err) {
    if (o.signal.aborted) throw o.signal.reason;
    throw err;
  }
  // Unchanged well before the timeout: this runtime answered without waiting
  // (an older agent, say). Poll it rather than spin.
  if (sameStatus(next, previous) && Date.now() - started < timeoutMs / 2) await pause(o.pollMs, o.signal);
  return next;
}

function sameStatus(a: RevisionStatus, b: RevisionStatus): boolean {
  return (
    a.desired === b.desired &&
    a.ready === b.ready &&
    a.pending === b.pending &&
    a.restarts === b.restarts &&
    (a.exited === undefined) === (b.exited === undefined)
  );
}

async function pause(ms: number, signal: AbortSignal): Promise<void> {
  try {
    await sleep(ms, undefined, { signal });
  } catch (err) {
    if (signal.aborted) throw signal.reason;
    throw err;
  }
}
