// The queue recovers from nats-server faults without restarting anything: a
// lost store, a restart, an outage, a freeze, a stream or consumer deleted
// under a running system. Each case runs its own nats-server (it is killed,
// frozen or wiped) and database; relay, sweeper and worker are started once
// and never restarted.
import { jetstreamManager } from "@nats-io/jetstream";
import { afterEach, describe, expect, it } from "vitest";
import { DependencyUnavailableError } from "../../src/domain/errors.js";
import { createLogger } from "../../src/log.js";
import { connectNats } from "../../src/queue/nats.js";
import { CONSUMER_NAME } from "../../src/queue/task-queue.js";
import { startPrivateNats, type PrivateNats } from "../helpers/private-nats.js";
import { waitFor } from "../helpers/services.js";
import { startQueueSystem, type QueueSystem } from "./support.js";

let nats: PrivateNats | undefined;
let sys: QueueSystem | undefined;
afterEach(async () => {
  await sys?.stop();
  await nats?.destroy();
  sys = undefined;
  nats = undefined;
});

/** A logger that keeps its lines, to see which failures the components went through. */
function recordingLogger() {
  const lines: Array<{ level: string; msg: string }> = [];
  const logger = createLogger({ level: "debug", write: (line) => lines.push(JSON.parse(line) as { level: string; msg: string }) });
  return { logger, saw: (msg: string) => lines.some((l) => l.msg === msg) };
}

async function start(o: { logger?: ReturnType<typeof recordingLogger>["logger"] } = {}) {
  nats = await startPrivateNats();
  sys = await startQueueSystem({ natsUrl: nats.url, ...o });
  return { nats, sys };
}

/** Holds the worker's tasks, queues `n`, and waits until all are published: `concurrency` claimed, the rest in the stream. */
async function queueHeldTasks(sys: QueueSystem, n: number, concurrency = 4): Promise<string[]> {
  sys.gate.close();
  const ids = await sys.create(n);
  await waitFor(
    "all published, the worker holding its share",
    async () => (await sys.outboxRows()) === 0 && (await sys.api.queue.state()).backlog === n - concurrency,
  );
  return ids;
}

async function streamCreated(url: string, stream: string): Promise<string> {
  const nc = await connectNats(url, "modeldeploy-test-admin");
  try {
    return (await (await jetstreamManager(nc)).streams.info(stream)).created;
  } finally {
    await nc.close();
  }
}

describe("nats-server faults, nothing restarted", () => {
  it("loses its store (kill -9, store deleted, started again): every queued task and pending outbox row completes", async () => {
    const { nats, sys } = await start();
    const queued = await queueHeldTasks(sys, 200);
    const before = await streamCreated(nats.url, sys.options.stream);

    await nats.stop("SIGKILL");
    nats.loseStore();
    // Accepted while the queue is down: they wait in the outbox.
    const pending = await sys.create(100);
    expect(await sys.outboxRows()).toBe(100);
    await nats.start();
    sys.gate.open();

    await sys.allCompleted([...queued, ...pending]);
    expect(await sys.outboxRows()).toBe(0);
    expect(await streamCreated(nats.url, sys.options.stream)).not.toBe(before);
    // Every message the recreated queue took was delivered and settled.
    await waitFor("queue drained", async () => (await sys.api.queue.state()).backlog === 0);
  });

  it("restarts with its store kept: queued tasks and outbox rows complete, the stream is the same", async () => {
    const { nats, sys } = await start();
    const queued = await queueHeldTasks(sys, 100);
    const before = await streamCreated(nats.url, sys.options.stream);

    await nats.stop("SIGKILL");
    const pending = await sys.create(50);
    await nats.start();
    sys.gate.open();

    await sys.allCompleted([...queued, ...pending]);
    expect(await sys.outboxRows()).toBe(0);
    expect(await streamCreated(nats.url, sys.options.stream)).toBe(before);
  });

  it("is down for a while: queue calls fail fast as DependencyUnavailableError, nothing crashes, all resumes", async () => {
    const rec = recordingLogger();
    const { nats, sys } = await start({ logger: rec.logger });
    await nats.stop("SIGKILL");

    // The client notices the dropped connection, then refuses at once (its request timeout is 5 s).
    const refused = await waitFor("publish refused as not connected", async () => {
      const err = await sys.api.queue.publish("t-down", "t-down").then(
        () => undefined,
        (e: unknown) => e,
      );
      return err instanceof DependencyUnavailableError ? err : undefined;
    });
    expect(refused.dependency).toBe("queue");
    const started = performance.now();
    const again = await sys.api.queue.publish("t-down", "t-down").catch((e: unknown) => e);
    expect(again).toBeInstanceOf(DependencyUnavailableError);
    expect(performance.now() - started).toBeLessThan(1000);
    await expect(sys.workerSide.queue.state()).rejects.toBeInstanceOf(DependencyUnavailableError);

    const accepted = await sys.create(30);
    await waitFor("the relay to have failed", () => rec.saw("outbox relay failed; will retry"));
    await waitFor("the sweeper to have failed", () => rec.saw("sweep failed; will retry"));
    await nats.start();

    await sys.allCompleted(accepted);
    expect(await sys.outboxRows()).toBe(0);
    expect(rec.saw("outbox relay works again")).toBe(true);
  });

  it("is frozen past the pulls' heartbeats: the worker replaces its pulls and goes on after the thaw", async () => {
    const rec = recordingLogger();
    const { nats, sys } = await start({ logger: rec.logger });
    const first = await sys.create(5);
    await sys.allCompleted(first);

    nats.freeze();
    try {
      await waitFor("pulls to miss their heartbeats", () => rec.saw("pulling tasks failed; will retry"));
    } finally {
      nats.thaw();
    }
    const after = await sys.create(20);
    await sys.allCompleted(after);
    expect(rec.saw("pulling tasks works again")).toBe(true);
  });

  it("has the stream deleted under a running system: it is recreated, and its lost tasks re-published", async () => {
    const { nats, sys } = await start();
    const queued = await queueHeldTasks(sys, 60);
    const admin = await connectNats(nats.url, "modeldeploy-test-admin");
    try {
      await (await jetstreamManager(admin)).streams.delete(sys.options.stream);
    } finally {
      await admin.close();
    }
    const later = await sys.create(30);
    sys.gate.open();
    await sys.allCompleted([...queued, ...later]);
    expect(await sys.outboxRows()).toBe(0);
  });

  it("has the consumer deleted under a running system: the worker recreates it and drains the stream", async () => {
    const { nats, sys } = await start();
    const queued = await queueHeldTasks(sys, 60);
    const admin = await connectNats(nats.url, "modeldeploy-test-admin");
    try {
      const jsm = await jetstreamManager(admin);
      await jsm.consumers.delete(sys.options.stream, CONSUMER_NAME);
      const later = await sys.create(20);
      sys.gate.open();
      await sys.allCompleted([...queued, ...later]);
      expect((await jsm.consumers.info(sys.options.stream, CONSUMER_NAME)).num_pending).toBe(0);
    } finally {
      await admin.close();
    }
  });
});
