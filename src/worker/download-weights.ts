// Fetches a revision's weights into the runtime's cache for a task, with
// throttled progress writes. A download that fails for a reason that may pass
// (the host is unreachable, it answers 503, the connection drops) is tried
// again inside the task with a growing delay, each failure shown in the task's
// progress, until the task's progress deadline: redelivering the whole task
// would only repeat its first steps and count deliveries that are not.
import { setTimeout as sleep } from "node:timers/promises";
import type { AttemptWriter } from "../deployments/attempt.js";
import { failureOf } from "../deployments/attempt.js";
import * as phases from "../deployments/task-phases.js";
import { RuntimeError, type PreparedWeights, type RevisionSpec, type RuntimeDriver } from "../runtime/driver.js";
import { DOWNLOAD_RETRY, retryDelayMs, type RetryPolicy } from "./retry-schedule.js";
import { TaskFailure } from "./task-failure.js";

export interface DownloadOptions {
  driver: RuntimeDriver;
  /** Default DOWNLOAD_RETRY. */
  downloadRetry?: RetryPolicy | undefined;
}

/** `first`: a first deploy, whose deployment shows DOWNLOADING. */
export async function downloadWeights(o: DownloadOptions, w: AttemptWriter, spec: RevisionSpec, signal: AbortSignal, first: boolean): Promise<PreparedWeights> {
  const policy = o.downloadRetry ?? DOWNLOAD_RETRY;
  await phases.downloadStarted(w, spec.model.uri, first);
  const started = Date.now();
  const progress = createProgressWriter(w);
  let lastFailure: RuntimeError | undefined;
  let bestAtFailure = 0;
  // The watchdog ended the task at its deadline after a failure and with no
  // byte gained since: that failure is the cause (else a stall is, as the watchdog says).
  const cutOff = (err: unknown, tries: number) =>
    lastFailure && signal.aborted && signal.reason instanceof TaskFailure && progress.best() === bestAtFailure ? gaveUp(lastFailure, tries, started) : err;
  for (let tries = 1; ; tries++) {
    try {
      return await progress.during(o.driver.prepareWeights(spec, progress.report, signal));
    } catch (err) {
      if (signal.aborted || !retriedInTask(err)) throw cutOff(err, tries);
      lastFailure = err;
      bestAtFailure = progress.best();
    }
    const delayMs = retryDelayMs(tries, policy);
    const deadline = w.current().progressDeadline;
    // The next try would start past the deadline: stop now, with the cause.
    const exhausted = deadline ? Date.now() + delayMs >= deadline.getTime() : tries >= policy.maxTries;
    if (exhausted) throw gaveUp(lastFailure, tries, started);
    await phases.downloadRetrying(w, { cause: lastFailure.message, tries, delayMs });
    await pause(delayMs, signal).catch((err: unknown) => {
      throw cutOff(err, tries);
    });
  }
}

/** Failures that may pass on their own; INTERNAL ones (the runtime itself is down) go back to the queue. */
function retriedInTask(err: unknown): err is RuntimeError {
  return err instanceof RuntimeError && err.retryable && err.reason !== "INTERNAL";
}

function gaveUp(err: RuntimeError, tries: number, started: number): TaskFailure {
  const seconds = Math.round((Date.now() - started) / 1000);
  const what = `${tries} ${tries === 1 ? "try" : "tries"} in ${seconds} s`;
  const advice =
    err.reason === "WEIGHTS_DOWNLOAD_FAILED"
      ? "check that the model uri is right and reachable from the runtime host (network, proxy, TLS), and that any token or signature in it is valid and not expired; then retry, or raise progressDeadlineSeconds to keep trying longer"
      : "retry, or raise progressDeadlineSeconds to keep trying longer";
  return new TaskFailure(failureOf(err.reason, `weights download failed after ${what}: ${err.message}; ${advice}`, { retryable: true }));
}

async function pause(ms: number, signal: AbortSignal): Promise<void> {
  try {
    await sleep(ms, undefined, { signal });
  } catch (err) {
    throw signal.aborted ? signal.reason : err;
  }
}

/**
 * The driver's byte counts as task progress: one write per 200 ms at most
 * (and always the last), in order. Only bytes beyond what any try reached
 * extend the deadline. A write's error (a fenced write, say) is kept and
 * surfaces once the try is over.
 */
function createProgressWriter(w: AttemptWriter) {
  let lastWrite = 0;
  // downloadStarted already says nothing is downloaded yet: a report of 0 bytes would only repeat it.
  let lastDone = 0;
  let best = 0;
  let pending: Promise<void> = Promise.resolve();
  let error: unknown;
  const report = (p: { bytesDone: number; bytesTotal: number }) => {
    const now = Date.now();
    if (p.bytesDone === lastDone || (now - lastWrite < 200 && p.bytesDone !== p.bytesTotal)) return;
    lastWrite = now;
    lastDone = p.bytesDone;
    const progressed = p.bytesDone > best;
    best = Math.max(best, p.bytesDone);
    pending = pending
      .then(() => (error === undefined ? phases.downloadProgressed(w, p, progressed) : undefined))
      .catch((err: unknown) => {
        error ??= err;
      });
  };
  return {
    report,
    /** The most bytes any try reached. */
    best: () => best,
    async during<T>(step: Promise<T>): Promise<T> {
      let result: T;
      try {
        result = await step;
      } finally {
        await pending;
      }
      if (error !== undefined) throw error;
      return result;
    },
  };
}
