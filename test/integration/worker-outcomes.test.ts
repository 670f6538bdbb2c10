// Every task message ends in exactly one outcome (DESIGN.md): ack, nak(delay)
// or term. A real worker consumes a real JetStream work queue (max_deliver 3)
// and writes a real Postgres; only the runtime driver is a test double (the
// no-op driver with faults injected per deployment). Each test gets its own
// stream, consumer and worker, so consumer counters belong to that test alone.
//
// The outcome of each delivery is observed on the wire: a spy connection
// subscribes to the consumer's ack subjects ($JS.ACK.<stream>.workers.…),
// whose tokens carry the delivery count and stream sequence and whose body is
// "+ACK", "-NAK {delay}" or "+TERM reason". Consumer and stream state and the
// tasks table are checked as well.
import { jetstream, jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { ApiDeps } from "../../src/api/deps.js";
import { cancelTask } from "../../src/deployments/cancel.js";
import { createDeployment } from "../../src/deployments/create.js";
import { findDeploymentByUid } from "../../src/db/deployments.js";
import { eventsAfter } from "../../src/db/events.js";
import { toDeployment, toTask } from "../../src/db/mappers.js";
import { findTask } from "../../src/db/tasks.js";
import type { Principal } from "../../src/domain/types.js";
import { createInput, testApiDeps } from "../helpers/api-deps.js";
import { createLogger, silentLogger, type Logger } from "../../src/log.js";
import { createEventBus, type EventBus } from "../../src/queue/event-bus.js";
import { connectNats, type NatsConnection } from "../../src/queue/nats.js";
import { CONSUMER_NAME, taskSubject } from "../../src/queue/task-queue.js";
import { RuntimeError, type RuntimeDriver } from "../../src/runtime/driver.js";
import { createNoopDriver } from "../../src/runtime/noop-driver.js";
import { startWorker, type Worker } from "../../src/worker/worker.js";
import { createTestDatabase, createTestQueue, NATS_URL, waitFor, type TestDatabase, type TestQueue } from "../helpers/services.js";

const MAX_DELIVER = 3;

let tdb: TestDatabase;
let spy: NatsConnection;
let deps: ApiDeps;
// Per test:
let tq: TestQueue;
let jsm: JetStreamManager;
let bus: EventBus | undefined;
let worker: Worker | undefined;

const alice: Principal = { workspace: "acme", name: "alice", scopes: ["deployments:read", "deployments:write"] };

// ---------------------------------------------------------------------------
// What the worker answered to each delivery, read off the ack subjects.

interface Outcome {
  stream: string;
  streamSeq: number;
  /** JetStream's delivery count of this delivery (1 = first). */
  delivered: number;
  kind: "ACK" | "NAK" | "TERM";
  /** NAK only: the requested redelivery delay. */
  delayMs?: number;
  /** TERM only. */
  reason?: string;
}

const outcomes: Outcome[] = [];

function recordOutcome(subject: string, body: string): void {
  // v1: $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<tm>.<pending>
  // v2: $JS.ACK.<domain>.<acc hash>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<tm>.<pending>.<token>
  const t = subject.split(".");
  const at = t.length === 9 ? 2 : 4;
  const stream = t[at] ?? "";
  if (!stream.startsWith("MDTEST_") || t[at + 1] !== CONSUMER_NAME) return;
  const delivered = Number(t[at + 2]);
  const streamSeq = Number(t[at + 3]);
  if (body === "+WPI") return; // working(): progress, not an outcome
  if (body === "+ACK" || body === "") outcomes.push({ stream, streamSeq, delivered, kind: "ACK" });
  else if (body.startsWith("-NAK")) {
    const json = body.slice(4).trim();
    const delayNs = json ? Number((JSON.parse(json) as { delay?: number }).delay ?? 0) : 0;
    outcomes.push({ stream, streamSeq, delivered, kind: "NAK", delayMs: delayNs / 1e6 });
  } else if (body.startsWith("+TERM")) outcomes.push({ stream, streamSeq, delivered, kind: "TERM", reason: body.slice(5).trim() });
  else throw new Error(`unexpected ack body ${JSON.stringify(body)} on ${subject}`);
}

/** This test's outcomes of the message at `seq`, as [delivery count, outcome]. */
const outcomesOf = (seq: number) => outcomes.filter((o) => o.stream === tq.stream && o.streamSeq === seq);
const summary = (list: Outcome[]) => list.map((o) => [o.delivered, o.kind]);

/** Waits for the final outcome (ACK or TERM) of the message at `seq`; returns every outcome it got. */
function settled(seq: number): Promise<Outcome[]> {
  return waitFor(`final outcome of stream message ${seq}`, () => {
    const mine = outcomesOf(seq);
    return mine.some((o) => o.kind !== "NAK") ? mine : undefined;
  });
}

/** The consumer has nothing pending, nothing unacknowledged, nothing to redeliver, and the stream nothing left. */
async function queueDrained() {
  return waitFor("the consumer and the work queue to be empty", async () => {
    const ci = await jsm.consumers.info(tq.stream, CONSUMER_NAME);
    const si = await jsm.streams.info(tq.stream);
    return ci.num_pending === 0 && ci.num_ack_pending === 0 && si.state.messages === 0 ? { ci, si } : undefined;
  });
}

async function messageGone(seq: number): Promise<boolean> {
  // Resolves null (or rejects, depending on the client version) when the stream no longer holds it.
  return jsm.streams.getMessage(tq.stream, { seq }).then(
    (m) => !m,
    () => true,
  );
}

// ---------------------------------------------------------------------------
// The runtime driver: the no-op driver, with faults injected per deployment.

type Fault = (method: string, call: number) => Error | undefined;
const faults = new Map<string, Fault>();
const calls = new Map<string, string[]>();
const noop = createNoopDriver();

function hook(uid: string, method: string): void {
  const list = calls.get(uid) ?? [];
  list.push(method);
  calls.set(uid, list);
  const err = faults.get(uid)?.(method, list.filter((m) => m === method).length);
  if (err) throw err;
}
const callsOf = (uid: string, method: string) => (calls.get(uid) ?? []).filter((m) => m === method).length;

const driver: RuntimeDriver = {
  name: "faulty-noop",
  async prepareWeights(spec, onProgress, signal) {
    hook(spec.deploymentUid, "prepareWeights");
    return noop.prepareWeights(spec, onProgress, signal);
  },
  async startRevision(spec, weights) {
    hook(spec.deploymentUid, "startRevision");
    return noop.startRevision(spec, weights);
  },
  async revisionStatus(uid, revision) {
    hook(uid, "revisionStatus");
    return noop.revisionStatus(uid, revision);
  },
  async switchTraffic(spec) {
    hook(spec.deploymentUid, "switchTraffic");
    return noop.switchTraffic(spec);
  },
  async splitTraffic(spec, shares) {
    hook(spec.deploymentUid, "splitTraffic");
    return noop.splitTraffic(spec, shares);
  },
  async trafficStats(uid) {
    hook(uid, "trafficStats");
    return noop.trafficStats(uid);
  },
  async scaleRevision(uid, revision, replicas) {
    hook(uid, "scaleRevision");
    return noop.scaleRevision(uid, revision, replicas);
  },
  async stopRevision(uid, revision) {
    hook(uid, "stopRevision");
    return noop.stopRevision(uid, revision);
  },
  async release(uid) {
    hook(uid, "release");
    return noop.release(uid);
  },
  observe: () => noop.observe(),
  close: () => noop.close(),
};

// ---------------------------------------------------------------------------

/** Publishes raw bytes to the task subject; returns the stream sequence. */
async function publishRaw(body: string, msgID?: string): Promise<number> {
  const ack = await jetstream(tq.nc).publish(taskSubject(tq.prefix), body, msgID ? { msgID } : {});
  return ack.seq;
}

/** A new deployment whose driver calls fail as `fault` says; its task message is published. */
async function deployWith(fault: Fault, progressDeadlineSeconds = 0) {
  const { deployment, task } = await createDeployment(deps, alice, createInput({ progressDeadlineSeconds }));
  faults.set(deployment.uid, fault);
  const seq = await publishRaw(JSON.stringify({ taskId: task.id }), task.id);
  return { deployment, task, seq };
}

// An infrastructure fault (the runtime itself cannot be reached): the task goes back to the queue.
const retryable = (what: string) => new RuntimeError("INTERNAL", `${what}: connection reset by peer`, { retryable: true });
// A download that fails for a passing reason: retried inside the task.
const unreachable = () =>
  new RuntimeError("WEIGHTS_DOWNLOAD_FAILED", "cannot reach http://127.0.0.1:9/model.onnx: connection refused (ECONNREFUSED)", { retryable: true });

/**
 * A fresh work queue (stream + durable consumer, max_deliver 3), event bus and
 * worker for one test. `ackWaitMs` bounds how soon a message left unacknowledged
 * is redelivered.
 */
async function startQueue(ackWaitMs: number, logger: Logger = silentLogger): Promise<void> {
  tq = await createTestQueue({ maxDeliver: MAX_DELIVER, ackWaitMs });
  jsm = await jetstreamManager(tq.nc);
  bus = createEventBus(tq.nc, tq.prefix);
  worker = await startWorker({
    db: tdb.db,
    queue: tq.queue,
    sink: (events) => bus!.publish(events),
    driver,
    logger,
    concurrency: 2,
    leaseMs: 30_000,
    ackWaitMs,
    maxDeliver: MAX_DELIVER,
    healthPollMs: 20,
  });
}

/**
 * Waits until the terminated messages are gone for good (removed from the work
 * queue, nothing left unacknowledged) or one of them came back.
 */
async function goneOrRedelivered(seqs: number[]) {
  return waitFor("terminated messages to leave the queue (or be redelivered)", async () => {
    if (seqs.some((seq) => outcomesOf(seq).some((o) => o.delivered > 1))) return "redelivered";
    const ci = await jsm.consumers.info(tq.stream, CONSUMER_NAME);
    const gone = await Promise.all(seqs.map(messageGone));
    return ci.num_ack_pending === 0 && gone.every(Boolean) ? "gone" : undefined;
  });
}

beforeAll(async () => {
  tdb = await createTestDatabase();
  spy = await connectNats(NATS_URL, "modeldeploy-test-ack-spy");
  spy.subscribe("$JS.ACK.>", {
    callback: (err, msg) => {
      if (!err) recordOutcome(msg.subject, msg.string());
    },
  });
  await spy.flush();
  // Each test has its own bus (on its own connection); createDeployment only
  // publishes. No relay: each test publishes its own messages.
  deps = testApiDeps(tdb.db, {
    publish: (events) => bus!.publish(events),
    onDeployment: (uid, listener) => bus!.onDeployment(uid, listener),
    followDeployment: (uid, listener) => bus!.followDeployment(uid, listener),
    onEvent: (listener) => bus!.onEvent(listener),
    subscribed: () => bus!.subscribed(),
    onReconnect: (listener) => bus!.onReconnect(listener),
    close: async () => {},
  });
});

afterEach(async () => {
  await worker?.stop(5000);
  await bus?.close();
  await tq?.drop();
  worker = undefined;
  bus = undefined;
});

afterAll(async () => {
  await spy?.drain();
  await tdb?.drop();
});

describe("worker message outcomes", () => {
  it("terminates malformed task messages at once; they are never redelivered", async () => {
    // A short ack wait: a message that was not really terminated comes back within
    // seconds. (A "+TERM <reason>" body is only understood by newer servers; an
    // older server ignores it, leaves the message unacknowledged and redelivers it.)
    await startQueue(5_000);
    const bodies = ["not json at all", "{}", JSON.stringify({ taskId: 42 }), JSON.stringify({ taskId: "" }), JSON.stringify({ taskId: "x".repeat(65) })];
    const seqs: number[] = [];
    for (const body of bodies) seqs.push(await publishRaw(body));
    for (const seq of seqs) expect(summary(await settled(seq))).toEqual([[1, "TERM"]]);
    const how = await goneOrRedelivered(seqs);
    for (const seq of seqs) expect(summary(outcomesOf(seq)), `outcomes of message ${seq}`).toEqual([[1, "TERM"]]);
    expect(how).toBe("gone");
    const ci = await jsm.consumers.info(tq.stream, CONSUMER_NAME);
    expect(ci).toMatchObject({ num_pending: 0, num_ack_pending: 0, num_redelivered: 0 });
    expect((await jsm.streams.info(tq.stream)).state.messages).toBe(0);
    // Nothing was run: no task exists.
    expect(await tdb.db.selectFrom("tasks").selectAll().execute()).toEqual([]);
  });

  it("terminates a message for a task id that does not exist; it is never redelivered", async () => {
    await startQueue(5_000);
    const taskId = "01zzzzzzzzzzzzzzzzzzzzzzzz";
    const seq = await publishRaw(JSON.stringify({ taskId }));
    const got = await settled(seq);
    expect(summary(got)).toEqual([[1, "TERM"]]);
    expect(got[0]!.reason ?? "").not.toBe("malformed task message");
    const how = await goneOrRedelivered([seq]);
    expect(summary(outcomesOf(seq))).toEqual([[1, "TERM"]]);
    expect(how).toBe("gone");
    expect(await jsm.consumers.info(tq.stream, CONSUMER_NAME)).toMatchObject({ num_pending: 0, num_ack_pending: 0, num_redelivered: 0 });
    expect(await findTask(tdb.db, taskId)).toBeUndefined();
  });

  it("naks a retryable failure with a delay; the redelivery runs a new attempt that completes", async () => {
    await startQueue(30_000);
    const { deployment, task, seq } = await deployWith((method, n) => (method === "prepareWeights" && n === 1 ? retryable("first download") : undefined));
    const got = await settled(seq);
    expect(summary(got)).toEqual([
      [1, "NAK"],
      [2, "ACK"],
    ]);
    expect(got[0]!.delayMs).toBeGreaterThan(0);

    const done = toTask((await findTask(tdb.db, task.id))!);
    expect(done.status).toBe("COMPLETED");
    expect(done.attempt).toBe(2);
    expect(done.failure).toBeNull();
    expect(callsOf(deployment.uid, "prepareWeights")).toBe(2);
    const dep = toDeployment((await findDeploymentByUid(tdb.db, deployment.uid))!);
    expect(dep.state).toBe("RUNNING");
    // Both attempts are on record, in order.
    const messages = (await eventsAfter(tdb.db, deployment.uid, 0, 1000)).map((e) => e.task?.progress.message ?? "");
    const first = messages.indexOf("validating (attempt 1)");
    const second = messages.indexOf("validating (attempt 2)");
    expect(first).toBeGreaterThanOrEqual(0);
    expect(second).toBeGreaterThan(first);

    const { ci } = await queueDrained();
    expect(ci.num_redelivered).toBe(0);
    expect(ci.delivered).toMatchObject({ stream_seq: seq, consumer_seq: 2 }); // one message, two deliveries
    expect(await messageGone(seq)).toBe(true);
  });

  it("fails the task (not forgets it) when deliveries reach max_deliver", async () => {
    await startQueue(30_000);
    const { deployment, task, seq } = await deployWith((method) => (method === "prepareWeights" ? retryable("download") : undefined));
    const got = await settled(seq);
    // Backoff before each redelivery, growing; the last delivery ends the task and acks.
    expect(summary(got)).toEqual([
      [1, "NAK"],
      [2, "NAK"],
      [3, "ACK"],
    ]);
    expect(got[0]!.delayMs).toBeGreaterThan(0);
    expect(got[1]!.delayMs).toBeGreaterThan(got[0]!.delayMs!);

    const failed = toTask((await findTask(tdb.db, task.id))!);
    expect(failed.status).toBe("FAILED");
    expect(failed.attempt).toBe(MAX_DELIVER);
    expect(failed.endTime).not.toBeNull();
    expect(failed.failure).toMatchObject({ reason: "INTERNAL", retryable: true });
    expect(failed.failure!.message).toContain(`after ${MAX_DELIVER} attempts`);
    expect(failed.failure!.message).toContain("download: connection reset by peer");
    expect(callsOf(deployment.uid, "prepareWeights")).toBe(MAX_DELIVER);

    const dep = toDeployment((await findDeploymentByUid(tdb.db, deployment.uid))!);
    expect(dep.state).toBe("FAILED");
    expect(dep.failure).toMatchObject({ reason: "INTERNAL" });
    expect(dep.activeTaskId).toBeNull();
    const last = (await eventsAfter(tdb.db, deployment.uid, 0, 1000)).at(-1);
    expect(last).toMatchObject({ type: "TASK_FINISHED", deployment: { state: "FAILED" }, task: { status: "FAILED" } });

    const { ci } = await queueDrained();
    expect(ci.num_redelivered).toBe(0);
    expect(ci.delivered).toMatchObject({ stream_seq: seq, consumer_seq: MAX_DELIVER });
    expect(await messageGone(seq)).toBe(true);
  });

  it("retries a failing download inside the task, one delivery, and fails it by its progress deadline with the cause", async () => {
    await startQueue(30_000);
    const { deployment, task, seq } = await deployWith((method) => (method === "prepareWeights" ? unreachable() : undefined), 3);
    expect(summary(await settled(seq))).toEqual([[1, "ACK"]]);

    const failed = toTask((await findTask(tdb.db, task.id))!);
    expect(failed).toMatchObject({ status: "FAILED", attempt: 1, failure: { reason: "WEIGHTS_DOWNLOAD_FAILED" } });
    expect(failed.failure!.message).toContain("connection refused (ECONNREFUSED)");
    expect(failed.failure!.message).toMatch(/after \d+ tries/);
    expect(failed.failure!.message).toContain("check that the model uri is right and reachable");
    expect(failed.progress.message).toBe("failed (WEIGHTS_DOWNLOAD_FAILED); see the task's failure");
    // Failures do not extend the deadline, and the retries stop before it.
    expect(failed.endTime!.getTime()).toBeLessThanOrEqual(failed.progressDeadline!.getTime());
    const tries = callsOf(deployment.uid, "prepareWeights");
    expect(tries).toBeGreaterThanOrEqual(2);
    expect(tries).toBeLessThanOrEqual(3);

    const events = await eventsAfter(tdb.db, deployment.uid, 0, 1000);
    const messages = events.map((e) => e.task?.progress.message ?? "");
    expect(messages).toContain("download failed (try 1): cannot reach http://127.0.0.1:9/model.onnx: connection refused (ECONNREFUSED); retrying in 1 s");
    expect(messages.filter((m) => m.startsWith("validating"))).toEqual(["validating (attempt 1)"]);
    // Created, started, fetching, one per retry, failed.
    expect(events.length).toBeLessThanOrEqual(4 + tries);
    expect(toDeployment((await findDeploymentByUid(tdb.db, deployment.uid))!)).toMatchObject({
      state: "FAILED",
      failure: { reason: "WEIGHTS_DOWNLOAD_FAILED" },
    });
    const { ci } = await queueDrained();
    expect(ci.delivered).toMatchObject({ stream_seq: seq, consumer_seq: 1 });
  });

  it("retries a failing download inside the task until it succeeds, in one delivery", async () => {
    await startQueue(30_000);
    const { deployment, task, seq } = await deployWith((method, n) => (method === "prepareWeights" && n <= 2 ? unreachable() : undefined), 30);
    expect(summary(await settled(seq))).toEqual([[1, "ACK"]]);
    const done = toTask((await findTask(tdb.db, task.id))!);
    expect(done).toMatchObject({ status: "COMPLETED", attempt: 1, failure: null });
    expect(callsOf(deployment.uid, "prepareWeights")).toBe(3);
    const messages = (await eventsAfter(tdb.db, deployment.uid, 0, 1000)).map((e) => e.task?.progress.message ?? "");
    expect(messages.filter((m) => m.startsWith("download failed"))).toHaveLength(2);
    expect(toDeployment((await findDeploymentByUid(tdb.db, deployment.uid))!).state).toBe("RUNNING");
  });

  it("ends the attempt on a cancel during the download's retries, long before the deadline", async () => {
    const logs: Array<Record<string, unknown>> = [];
    await startQueue(30_000, createLogger({ level: "info", write: (line) => logs.push(JSON.parse(line) as Record<string, unknown>) }));
    const { deployment, task, seq } = await deployWith((method) => (method === "prepareWeights" ? unreachable() : undefined), 300);
    await waitFor("a retried download", async () =>
      (await eventsAfter(tdb.db, deployment.uid, 0, 1000)).some((e) => e.task?.progress.message.startsWith("download failed (try 1)")),
    );
    await cancelTask(deps, alice, task.id);
    await waitFor("the worker to stop the cancelled attempt", () =>
      logs.some((l) => l["taskId"] === task.id && l["msg"] === "task taken over or cancelled; stopping this attempt"),
    );
    expect(summary(await settled(seq))).toEqual([[1, "ACK"]]);
    const cancelled = toTask((await findTask(tdb.db, task.id))!);
    expect(cancelled.status).toBe("CANCELLED");
    expect(toDeployment((await findDeploymentByUid(tdb.db, deployment.uid))!).failure).toMatchObject({ reason: "CANCELLED" });
  });

  it("fails at once, with the driver's reason, on a permanent error", async () => {
    await startQueue(30_000);
    const { deployment, task, seq } = await deployWith((method) =>
      method === "prepareWeights" ? new RuntimeError("WEIGHTS_NOT_FOUND", "no file at file:///nonexistent/noop.onnx") : undefined,
    );
    expect(summary(await settled(seq))).toEqual([[1, "ACK"]]);
    const failed = toTask((await findTask(tdb.db, task.id))!);
    expect(failed).toMatchObject({ status: "FAILED", attempt: 1, failure: { reason: "WEIGHTS_NOT_FOUND", retryable: false } });
    expect(toDeployment((await findDeploymentByUid(tdb.db, deployment.uid))!).state).toBe("FAILED");
    await queueDrained();
  });

  it("leaves no replicas behind when a deploy fails at max_deliver after its replicas started", async () => {
    await startQueue(30_000);
    // Replicas start and become ready; routing the traffic keeps failing (retryably).
    const { deployment, task, seq } = await deployWith((method) =>
      method === "switchTraffic" ? new RuntimeError("INTERNAL", "runtime control API unreachable", { retryable: true }) : undefined,
    );
    expect(summary(await settled(seq))).toEqual([
      [1, "NAK"],
      [2, "NAK"],
      [3, "ACK"],
    ]);
    await queueDrained();
    const failed = toTask((await findTask(tdb.db, task.id))!);
    expect(failed.status).toBe("FAILED");
    const dep = toDeployment((await findDeploymentByUid(tdb.db, deployment.uid))!);
    expect(dep.state).toBe("FAILED");
    expect(dep.instances).toMatchObject({ desired: 0, ready: 0 });
    expect(callsOf(deployment.uid, "startRevision")).toBe(MAX_DELIVER);
    // "A deploy that ends in failure leaves no replicas behind" (run-task.ts): the
    // runtime must not keep replicas of a deployment recorded as FAILED with 0 instances.
    expect(callsOf(deployment.uid, "stopRevision"), "stopRevision calls").toBeGreaterThanOrEqual(1);
    expect(await noop.revisionStatus(deployment.uid, 1)).toMatchObject({ ready: 0 });
  });
});
