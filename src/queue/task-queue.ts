// The JetStream work queue that carries task ids from the outbox to workers.
import {
  AckPolicy, DiscardPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType,
  type JetStreamClient, type JsMsg,
} from "@nats-io/jetstream";
import { nanos, type NatsConnection } from "@nats-io/transport-node";

export interface TaskQueueOptions {
  stream: string;
  subjectPrefix: string;
  ackWaitMs: number;
  maxDeliver: number;
}

export const CONSUMER_NAME = "workers";

export function taskSubject(prefix: string): string {
  return `${prefix}.tasks`;
}

/** Creates (or updates) the work-queue stream and the shared durable consumer. */
export async function ensureTaskQueue(nc: NatsConnection, o: TaskQueueOptions): Promise<void> {
  const jsm = await jetstreamManager(nc);
  const config = {
    name: o.stream,
    subjects: [taskSubject(o.subjectPrefix)],
    retention: RetentionPolicy.Workqueue,
    // A full stream must reject publishes loudly, never drop queued work.
    discard: DiscardPolicy.New,
    storage: StorageType.File,
    max_msgs: 1_000_000,
    duplicate_window: nanos(120_000),
  };
  try {
    await jsm.streams.info(o.stream);
    await jsm.streams.update(o.stream, config);
  } catch (err) {
    if (!isNotFound(err)) throw err;
    await jsm.streams.add(config);
  }
  const consumer = {
    durable_name: CONSUMER_NAME,
    ack_policy: AckPolicy.Explicit,
    ack_wait: nanos(o.ackWaitMs),
    max_deliver: o.maxDeliver,
    max_ack_pending: 10_000,
    filter_subject: taskSubject(o.subjectPrefix),
  };
  try {
    await jsm.consumers.info(o.stream, CONSUMER_NAME);
    await jsm.consumers.update(o.stream, CONSUMER_NAME, consumer);
  } catch (err) {
    if (!isNotFound(err)) throw err;
    await jsm.consumers.add(o.stream, consumer);
  }
}

function isNotFound(err: unknown): boolean {
  const text = err instanceof Error ? `${err.message} ${(err as { code?: unknown }).code ?? ""}` : String(err);
  return /not found|404|10059|10014/i.test(text);
}

export interface TaskMessage {
  taskId: string;
}

export interface TaskPublisher {
  publish(taskId: string, msgId: string): Promise<void>;
}

export function createTaskPublisher(nc: NatsConnection, subjectPrefix: string): TaskPublisher {
  const js: JetStreamClient = jetstream(nc);
  const subject = taskSubject(subjectPrefix);
  return {
    async publish(taskId, msgId) {
      const body: TaskMessage = { taskId };
      // The msg id lets JetStream drop a re-publish within its duplicate window.
      await js.publish(subject, JSON.stringify(body), { msgID: msgId, timeout: 5000 });
    },
  };
}

export function parseTaskMessage(msg: JsMsg): TaskMessage | undefined {
  try {
    const body = msg.json<Partial<TaskMessage>>();
    return typeof body.taskId === "string" && body.taskId.length > 0 && body.taskId.length <= 64 ? { taskId: body.taskId } : undefined;
  } catch {
    return undefined;
  }
}

/** Messages in the stream that the workers' consumer has not delivered yet. */
export async function queueBacklog(nc: NatsConnection, stream: string): Promise<number> {
  const info = await (await jetstreamManager(nc)).consumers.info(stream, CONSUMER_NAME);
  return info.num_pending;
}

export async function getTaskConsumer(nc: NatsConnection, stream: string) {
  return jetstream(nc).consumers.get(stream, CONSUMER_NAME);
}
