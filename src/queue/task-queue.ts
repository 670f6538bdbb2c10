// The JetStream work queue that carries task ids from the outbox to workers.
// It owns the stream and the consumer: whoever finds them gone (the server
// lost its store, someone deleted them) recreates them through ensure(), so
// publishers, workers and the sweeper recover without a restart.
import { jetstream, jetstreamManager, type Consumer, type JsMsg } from "@nats-io/jetstream";
import { headers, type MsgHdrs, type NatsConnection } from "@nats-io/transport-node";
import { watchConnection } from "./connection-state.js";
import { classifyQueueError, isMissingQueue, queueNotConnected, toQueueError } from "./queue-errors.js";
import { CONSUMER_NAME, ensureStreamAndConsumer, taskSubject, type TaskQueueOptions } from "./task-stream.js";

export { CONSUMER_NAME, taskSubject, type TaskQueueOptions } from "./task-stream.js";

export interface TaskMessage {
  taskId: string;
}

export interface TaskPublisher {
  /**
   * Throws DependencyUnavailableError("queue") when the queue cannot take it now.
   * `trace`: W3C trace headers (traceparent, tracestate) for the message.
   */
  publish(taskId: string, msgId: string, trace?: Readonly<Record<string, string>> | null): Promise<void>;
}

export interface QueueState {
  /** Messages the workers' consumer has not delivered yet. */
  backlog: number;
  /** When the stream was created (nats-server's clock): older messages went with an older stream. */
  streamCreated: Date;
}

export interface TaskQueue extends TaskPublisher {
  readonly options: TaskQueueOptions;
  /**
   * Creates the stream and the consumer where they are missing. Concurrent
   * calls share one attempt. The first successful call also applies the
   * configured settings to existing ones.
   */
  ensure(): Promise<void>;
  /** One message for a worker, or null when none came within `expiresMs`; `signal` ends the wait early. */
  next(expiresMs: number, signal?: AbortSignal): Promise<JsMsg | null>;
  /**
   * Up to `max` messages from one pull request, each yielded as it arrives;
   * ends when `max` came, `expiresMs` passed or `signal` aborted.
   */
  pull(max: number, expiresMs: number, signal?: AbortSignal): AsyncIterable<JsMsg>;
  state(): Promise<QueueState>;
  close(): void;
}

const PUBLISH_TIMEOUT_MS = 5000;

export function createTaskQueue(nc: NatsConnection, options: TaskQueueOptions): TaskQueue {
  const link = watchConnection(nc);
  const js = jetstream(nc);
  const subject = taskSubject(options.subjectPrefix);
  let applied = false;
  let ensuring: Promise<void> | undefined;
  let consumer: Consumer | undefined;

  const connected = (doing: string) => {
    if (!link.connected()) throw queueNotConnected(doing);
  };
  // checkAPI off: no request until one is needed.
  const jsm = jetstreamManager(nc, { checkAPI: false });

  const createMissing = async () => {
    try {
      connected("creating the task stream");
      await ensureStreamAndConsumer(await jsm, options, !applied);
      applied = true;
    } catch (err) {
      throw toQueueError(err, `creating task stream ${options.stream}`);
    }
  };
  const ensure = (): Promise<void> => {
    ensuring ??= createMissing().finally(() => {
      ensuring = undefined;
    });
    return ensuring;
  };

  /** Runs `op`; if the stream or consumer is gone, recreates them and runs it once more. */
  const recovering = async <T>(doing: string, op: () => Promise<T>): Promise<T> => {
    connected(doing);
    try {
      return await op();
    } catch (err) {
      if (!isMissingQueue(err)) throw toQueueError(err, doing);
    }
    await ensure();
    try {
      return await op();
    } catch (err) {
      throw toQueueError(err, doing);
    }
  };

  const publish = async (taskId: string, msgId: string, trace?: Readonly<Record<string, string>> | null): Promise<void> => {
    const body: TaskMessage = { taskId };
    let hdrs: MsgHdrs | undefined;
    if (trace) {
      hdrs = headers();
      for (const [k, v] of Object.entries(trace)) hdrs.set(k, v);
    }
    // The msg id lets JetStream drop a re-publish within its duplicate window.
    await recovering(`publishing task ${taskId}`, () =>
      js.publish(subject, JSON.stringify(body), { msgID: msgId, timeout: PUBLISH_TIMEOUT_MS, ...(hdrs ? { headers: hdrs } : {}) }),
    );
  };

  const failed = async (err: unknown): Promise<never> => {
    consumer = undefined;
    // A pull that fails says little (a vanished consumer shows as missed
    // heartbeats): let ensure() ask JetStream, which answers by code.
    if (classifyQueueError(err) !== "unreachable") await ensure().catch(() => {});
    throw toQueueError(err, "pulling tasks");
  };

  async function* pull(max: number, expiresMs: number, signal?: AbortSignal): AsyncGenerator<JsMsg> {
    connected("pulling tasks");
    let messages;
    try {
      consumer ??= await recovering("finding the task consumer", () => js.consumers.get(options.stream, CONSUMER_NAME));
      // fetch rather than consumer.next()/consume(): its iterator can be
      // stopped, so a pull waiting on a server that went away does not hold
      // up a shutdown, and it asks for no more than the caller can run.
      messages = await consumer.fetch({ max_messages: max, expires: expiresMs });
    } catch (err) {
      return await failed(err);
    }
    const stop = () => messages.stop();
    if (signal?.aborted === true) stop();
    else signal?.addEventListener("abort", stop, { once: true });
    try {
      for await (const m of messages) yield m;
    } catch (err) {
      await failed(err);
    } finally {
      signal?.removeEventListener("abort", stop);
    }
  }

  return {
    options,
    ensure,
    publish,
    async next(expiresMs, signal) {
      for await (const m of pull(1, expiresMs, signal)) return m;
      return null;
    },
    pull,
    async state() {
      const m = await jsm;
      return recovering("reading the task queue's state", async () => {
        const [stream, consumerInfo] = await Promise.all([m.streams.info(options.stream), m.consumers.info(options.stream, CONSUMER_NAME)]);
        return { backlog: consumerInfo.num_pending, streamCreated: new Date(stream.created) };
      });
    },
    close() {
      link.stop();
    },
  };
}

/** Creates or updates the stream and consumer once (tools and tests that need no recovery). */
export async function ensureTaskQueue(nc: NatsConnection, options: TaskQueueOptions): Promise<void> {
  const queue = createTaskQueue(nc, options);
  try {
    await queue.ensure();
  } finally {
    queue.close();
  }
}

export function parseTaskMessage(msg: JsMsg): TaskMessage | undefined {
  try {
    const body = msg.json<Partial<TaskMessage>>();
    return typeof body.taskId === "string" && body.taskId.length > 0 && body.taskId.length <= 64 ? { taskId: body.taskId } : undefined;
  } catch {
    return undefined;
  }
}
