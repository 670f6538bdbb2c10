// Fetches a revision's weights into the runtime's cache for a task, with
// throttled progress writes. A download that fails for a reason that may pass
// (the host is unreachable, it answers 503, the connection drops) is tried
// again inside the task with a growing delay, each failure shown in the task's
// progress, until the task's progress deadline: redelivering the whole task
// would only repeat its first steps and count deliveries that are not.
//
// DOWNLOADING is recorded once a download is under way (bytes still to come,
// a try failed, or no answer yet after SHOW_DOWNLOAD_AFTER_MS): weights found
// in the cache take no write here; the STARTING write reports their bytes.
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

/** A cache hit answers well within this; a download still going after it is shown. */
const SHOW_DOWNLOAD_AFTER_MS = 200;

/** `first`: a first deploy, whose deployment shows DOWNLOADING. */
export async function downloadWeights(o: DownloadOptions, w: AttemptWriter, spec: RevisionSpec, signal: AbortSignal, first: boolean): Promise<PreparedWeights> {
  const policy = o.downloadRetry ?? DOWNLOAD_RETRY;
  const started = Date.now();
  const progress = createProgressWriter(() => phases.downloadStarted(w, spec.model.uri, first), w);
  const timer = setTimeout(progress.show, SHOW_DOWNLOAD_AFTER_MS);
  try {
    return await downloadWithRetries(o, w, spec, signal, policy, progress, started);
  } finally {
    clearTimeout(timer);
  }
}

async function downloadWithRetries(
  o: DownloadOptions,
  w: AttemptWriter,
  spec: RevisionSpec,
  signal: AbortSignal,
  policy: RetryPolicy,
  progress: ProgressWriter,
  started: number,
): Promise<PreparedWeights> {
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
      // A failed download ends (or retries) in DOWNLOADING, where it failed.
      if (err instanceof RuntimeError && !signal.aborted) await progress.shown();
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

type ProgressWriter = ReturnType<typeof createProgressWriter>;

/**
 * The driver's byte counts as task progress: one write per 200 ms at most
 * (and always the last), in order, after `start` (DOWNLOADING), which is
 * written once, when a download shows to be under way. Only bytes beyond what
 * any try reached extend the deadline. A write's error (a fenced write, say)
 * is kept and surfaces once the try is over.
 */
function createProgressWriter(start: () => Promise<void>, w: AttemptWriter) {
  let lastWrite = 0;
  // downloadStarted already says nothing is downloaded yet: a report of 0 bytes would only repeat it.
  let lastDone = 0;
  let best = 0;
  let pending: Promise<void> = Promise.resolve();
  let error: unknown;
  let showing = false;
  const enqueue = (write: () => Promise<void>) => {
    pending = pending
      .then(() => (error === undefined ? write() : undefined))
      .catch((err: unknown) => {
        error ??= err;
      });
  };
  const show = () => {
    if (showing) return;
    showing = true;
    enqueue(start);
  };
  const report = (p: { bytesDone: number; bytesTotal: number }) => {
    // Bytes still to come: a download, not a cache hit (which reports all at once).
    if (p.bytesDone < p.bytesTotal || (p.bytesTotal === 0 && p.bytesDone > 0)) show();
    const now = Date.now();
    if (p.bytesDone === lastDone || (now - lastWrite < 200 && p.bytesDone !== p.bytesTotal)) return;
    lastWrite = now;
    lastDone = p.bytesDone;
    const progressed = p.bytesDone > best;
    best = Math.max(best, p.bytesDone);
    // All bytes at once from a cache hit: the STARTING write reports them.
    if (showing) enqueue(() => phases.downloadProgressed(w, p, progressed));
  };
  return {
    report,
    show,
    /** DOWNLOADING is written (or its write failed). */
    async shown(): Promise<void> {
      show();
      await pending;
    },
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
