// Runs task messages from the durable consumer, pulled in batches with bounded
// concurrency (pull-loop.ts). Every
// message ends in exactly one outcome — ack, nak(delay) or term — chosen at the
// end of handle().
import type { JsMsg } from "@nats-io/jetstream";
import { hostname } from "node:os";
import type { Db } from "../db/connect.js";
import { createAttemptChangeWriter } from "../db/attempt-changes.js";
import { FencedError } from "../db/changes.js";
import { findDeploymentByUid } from "../db/deployments.js";
import { toDeployment, toTask } from "../db/mappers.js";
import { createTaskClaimer, findTask, releaseLease, renewLease } from "../db/tasks.js";
import type { EventSink } from "../db/transact.js";
import { newId } from "../domain/ids.js";
import type { Logger } from "../log.js";
import { isTerminalStatus, type DeploymentEvent, type Task } from "../domain/types.js";
import { parseTaskMessage, type TaskQueue } from "../queue/task-queue.js";
import { RuntimeError, type RuntimeDriver } from "../runtime/driver.js";
import type { TokenSealer } from "../secrets/token-seal.js";
import { createAttemptWriter, failureOf } from "../deployments/attempt.js";
import { taskFailed } from "../deployments/task-phases.js";
import { startPullLoop } from "./pull-loop.js";
import type { RetryPolicy } from "./retry-schedule.js";
import { failureFromError, runTask } from "./run-task.js";
import { settleRuntime } from "./settle-runtime.js";
import { contextFrom, otelContext, otelTrace, spanFailed, SpanKind, tracer, tracingEnabled, type Context, type Span } from "../telemetry/tracing.js";
import type { TaskOutcome, WorkerMetrics } from "./worker-metrics.js";
import { REQUEST_ID_HEADER } from "../telemetry/call-context.js";

export interface WorkerOptions {
  db: Db;
  queue: TaskQueue;
  sink: EventSink;
  driver: RuntimeDriver;
  logger: Logger;
  concurrency: number;
  leaseMs: number;
  ackWaitMs: number;
  maxDeliver: number;
  healthPollMs: number;
  /**
   * A deployment's live events, for a task that runs long: a cancel (or a
   * delete) of it then stops the attempt at once, not at the next lease
   * renewal. Optional: without it, the renewal notices.
   */
  followDeployment?: (deploymentUid: string, listener: (event: DeploymentEvent) => void) => () => void;
  /** How a task retries a download that fails for a passing reason; default DOWNLOAD_RETRY. */
  downloadRetry?: RetryPolicy;
  /** Opens the model tokens the api sealed (MODELDEPLOY_SECRET_KEY). */
  tokens?: TokenSealer;
  /** Each task run observed at its end (worker-metrics.ts). */
  metrics?: WorkerMetrics;
}

/** A task still running after this long follows its deployment's events (a quick task never pays for a subscription). */
const followAfterMs = 1000;

export interface Worker {
  readonly id: string;
  /** Stops pulling, waits for running tasks up to graceMs, then aborts them (they are redelivered). */
  stop(graceMs: number): Promise<void>;
}

type Outcome = { kind: "ack" } | { kind: "nak"; delayMs: number } | { kind: "term"; reason: string };

export async function startWorker(o: WorkerOptions): Promise<Worker> {
  const id = `${hostname()}-${process.pid}-${newId().slice(-6)}`;
  const log = o.logger.child({ worker: id });
  const running = new Set<AbortController>();
  const changes = createAttemptChangeWriter(o.db);
  // The messages of a pull arrive together: their claims go out as one statement.
  const claims = createTaskClaimer(o.db, id, o.leaseMs);

  /** A task cancelled under this attempt: the runtime goes back to what the deployment row says. */
  const settleIfCancelled = async (task: Task, tlog: Logger) => {
    const [now, row] = await Promise.all([findTask(o.db, task.id), findDeploymentByUid(o.db, task.deploymentUid)]).catch(() => [undefined, undefined] as const);
    if (now?.status === "CANCELLED" && row) await settleRuntime({ db: o.db, driver: o.driver, logger: tlog, tokens: o.tokens }, task, toDeployment(row));
  };

  const handle = async (msg: JsMsg): Promise<Outcome> => {
    const body = parseTaskMessage(msg);
    if (!body) return { kind: "term", reason: "malformed task message" };
    const claim = await claims.run(body.taskId);
    if (claim.kind === "missing") return { kind: "term", reason: `unknown task ${body.taskId}` };
    // Done already, or another live worker holds it: this copy is a duplicate.
    // If that worker dies, its lease expires and the sweeper re-enqueues the task.
    if (claim.kind === "terminal" || claim.kind === "leased") return { kind: "ack" };

    // A fresh deploy's start went with its claim: its event goes out now.
    if (claim.started) o.sink([claim.started]);
    const task = toTask(claim.task);
    // Every line about the task names it, its deployment and workspace, and the call that queued it.
    const tlog = log.child({
      taskId: task.id,
      attempt: task.attempt,
      kind: task.kind,
      workspace: task.workspace,
      deployment: task.deploymentName,
      deploymentUid: task.deploymentUid,
      // The x-request-id of the call that queued it (absent on a task the sweeper re-enqueued).
      ...requestIdOf(msg),
    });
    const started = performance.now();
    let outcome: TaskOutcome = "retried";
    // Tracing on: the task runs in a span, child of the call that queued it (the message's headers).
    const traced = tracingEnabled() ? startTaskSpan(msg, task) : undefined;
    /** Runs `f` in the task's span (its runtime calls are the span's children). */
    const inTask = <T>(f: () => Promise<T>): Promise<T> => (traced === undefined ? f() : otelContext.with(traced.context, f));
    const ac = new AbortController();
    running.add(ac);
    // Keep the lease and the message alive while a long step runs; a lease
    // this attempt no longer holds stops it.
    const renew = () =>
      renewLease(o.db, task.id, task.attempt, o.leaseMs).then(
        (held) => {
          if (!held) ac.abort(new FencedError(task.id, task.attempt));
        },
        () => {},
      );
    const beat = setInterval(
      () => {
        msg.working();
        void renew();
      },
      Math.max(200, Math.min(o.leaseMs, o.ackWaitMs) / 3),
    );
    // The task was cancelled, or taken by another attempt: stop now.
    let unfollow: (() => void) | undefined;
    const follow =
      o.followDeployment &&
      setTimeout(() => {
        unfollow = o.followDeployment!(task.deploymentUid, (event) => {
          const t = event.task;
          if (t?.id === task.id && (t.attempt !== task.attempt || isTerminalStatus(t.status))) ac.abort(new FencedError(task.id, task.attempt));
        });
        // A cancel committed before the subscription: the lease says so now.
        void renew();
      }, followAfterMs);
    try {
      tlog.info("task started");
      const run = () =>
        runTask(
          { db: o.db, changes, sink: o.sink, driver: o.driver, logger: tlog, healthPollMs: o.healthPollMs, downloadRetry: o.downloadRetry, tokens: o.tokens },
          task,
          ac.signal,
          claim,
        );
      await inTask(run);
      tlog.info("task finished");
      outcome = "succeeded";
      return { kind: "ack" };
    } catch (err) {
      if (traced !== undefined) spanFailed(traced.span, err);
      if (err instanceof FencedError || ac.signal.reason instanceof FencedError) {
        outcome = "stopped";
        tlog.info("task taken over or cancelled; stopping this attempt");
        await inTask(() => settleIfCancelled(task, tlog));
        return { kind: "ack" };
      }
      const failure = failureFromError(err);
      const lastChance = msg.info.deliveryCount >= o.maxDeliver;
      if (failure || lastChance) {
        outcome = "failed";
        const final = failure ?? failureOf("INTERNAL", `task failed after ${msg.info.deliveryCount} attempts: ${describe(err)}`, { retryable: true });
        tlog.warn("task failed", { reason: final.reason, message: final.message });
        const row = await findDeploymentByUid(o.db, task.deploymentUid);
        if (!row) return { kind: "ack" };
        const deployment = toDeployment(row);
        // A failed deploy leaves no replicas behind; a failed change leaves the serving revision serving.
        await inTask(() => settleRuntime({ db: o.db, driver: o.driver, logger: tlog, tokens: o.tokens }, task, deployment));
        // The failure keeps the progress the attempt reached (percent never goes down), not the claim's.
        const reached = await findTask(o.db, task.id);
        const latest = reached && reached.attempt === task.attempt ? toTask(reached) : task;
        try {
          await taskFailed(createAttemptWriter(changes, o.sink, latest), final, deployment);
        } catch (writeErr) {
          if (writeErr instanceof FencedError) return { kind: "ack" };
          throw writeErr;
        }
        return { kind: "ack" };
      }
      // Retryable: give the lease back and let the queue redeliver after a backoff.
      tlog.warn("task attempt failed; will retry", { err: describe(err) });
      await releaseLease(o.db, task.id, task.attempt).catch(() => {});
      return { kind: "nak", delayMs: backoff(msg.info.deliveryCount) };
    } finally {
      clearInterval(beat);
      clearTimeout(follow || undefined);
      unfollow?.();
      running.delete(ac);
      o.metrics?.taskEnded(task.kind, outcome, (performance.now() - started) / 1000);
      if (traced !== undefined) {
        traced.span.setAttribute("modeldeploy.task_outcome", outcome);
        traced.span.end();
      }
    }
  };

  const settle = async (msg: JsMsg) => {
    let outcome: Outcome;
    try {
      outcome = await handle(msg);
    } catch (err) {
      // The database or queue is unreachable: nothing was decided, try later.
      log.warn("task message not processed; will be redelivered", { taskId: parseTaskMessage(msg)?.taskId, err: describe(err) });
      outcome = { kind: "nak", delayMs: backoff(msg.info.deliveryCount) };
    }
    if (outcome.kind === "ack") msg.ack();
    else if (outcome.kind === "nak") msg.nak(outcome.delayMs);
    else {
      // A bare +TERM: nats-server 2.9 ignores "+TERM <reason>" and would
      // redeliver the message, so the reason goes to the log instead.
      log.warn("task message terminated", { taskId: parseTaskMessage(msg)?.taskId, reason: outcome.reason, seq: msg.seq });
      msg.term();
    }
  };

  const loop = startPullLoop({
    queue: o.queue,
    concurrency: o.concurrency,
    minPull: Math.max(1, Math.ceil(o.concurrency / 4)),
    gatherMs: 20,
    expiresMs: 2000,
    logger: log,
    run: settle,
    // Stopping: another worker takes it now rather than after the ack wait.
    refuse: (msg) => msg.nak(),
  });
  log.info("worker started", { concurrency: o.concurrency });

  return {
    id,
    async stop(graceMs) {
      const all = loop.stop();
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<"timeout">((r) => (timer = setTimeout(() => r("timeout"), graceMs)));
      if ((await Promise.race([all, timedOut])) === "timeout") {
        loop.abortPulls();
        for (const ac of running) ac.abort(new Error("worker shutting down"));
        await all;
      }
      clearTimeout(timer);
      log.info("worker stopped");
    },
  };
}

function requestIdOf(msg: JsMsg): { requestId?: string } {
  const id = msg.headers?.get(REQUEST_ID_HEADER);
  return id ? { requestId: id } : {};
}

const natsHeaders = {
  get: (carrier: JsMsg["headers"], key: string) => carrier?.get(key) || undefined,
  keys: (carrier: JsMsg["headers"]) => (carrier ? carrier.keys() : []),
};

/** The task's consumer span, child of the trace context its message carries. */
function startTaskSpan(msg: JsMsg, task: Task): { span: Span; context: Context } {
  const parent = contextFrom(msg.headers, natsHeaders);
  const span = tracer().startSpan(
    `task ${task.kind}`,
    {
      kind: SpanKind.CONSUMER,
      attributes: {
        "messaging.system": "nats",
        "modeldeploy.task_id": task.id,
        "modeldeploy.task_kind": task.kind,
        "modeldeploy.attempt": task.attempt,
        "modeldeploy.workspace": task.workspace,
        "modeldeploy.deployment": task.deploymentName,
      },
    },
    parent,
  );
  return { span, context: otelTrace.setSpan(parent, span) };
}

function backoff(deliveryCount: number): number {
  return Math.min(30_000, 500 * 2 ** Math.max(0, deliveryCount - 1));
}

function describe(err: unknown): string {
  if (err instanceof RuntimeError) return `${err.reason}: ${err.message}`;
  return err instanceof Error ? err.message : String(err);
}
