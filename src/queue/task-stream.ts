// The work-queue stream and the workers' durable consumer: their settings,
// and creating them where they are missing.
import { AckPolicy, DiscardPolicy, RetentionPolicy, StorageType, type JetStreamManager } from "@nats-io/jetstream";
import { nanos } from "@nats-io/transport-node";
import { classifyQueueError } from "./queue-errors.js";

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

function streamConfig(o: TaskQueueOptions) {
  return {
    name: o.stream,
    subjects: [taskSubject(o.subjectPrefix)],
    retention: RetentionPolicy.Workqueue,
    // A full stream must reject publishes loudly, never drop queued work.
    discard: DiscardPolicy.New,
    storage: StorageType.File,
    max_msgs: 1_000_000,
    duplicate_window: nanos(120_000),
  };
}

function consumerConfig(o: TaskQueueOptions) {
  return {
    durable_name: CONSUMER_NAME,
    ack_policy: AckPolicy.Explicit,
    ack_wait: nanos(o.ackWaitMs),
    max_deliver: o.maxDeliver,
    max_ack_pending: 10_000,
    filter_subject: taskSubject(o.subjectPrefix),
  };
}

export interface EnsureResult {
  streamCreated: boolean;
  consumerCreated: boolean;
}

/**
 * Creates the stream and the consumer where JetStream says they are missing
 * (10059, 10014). `update` also applies the configured settings to ones that
 * exist (at process start, so a changed setting takes effect).
 */
export async function ensureStreamAndConsumer(jsm: JetStreamManager, o: TaskQueueOptions, update: boolean): Promise<EnsureResult> {
  let streamCreated = false;
  try {
    await jsm.streams.info(o.stream);
    if (update) await jsm.streams.update(o.stream, streamConfig(o));
  } catch (err) {
    if (classifyQueueError(err) !== "stream-missing") throw err;
    // Two processes may race here: adding an identical stream is idempotent.
    await jsm.streams.add(streamConfig(o));
    streamCreated = true;
  }
  let consumerCreated = false;
  try {
    await jsm.consumers.info(o.stream, CONSUMER_NAME);
    if (update) await jsm.consumers.update(o.stream, CONSUMER_NAME, consumerConfig(o));
  } catch (err) {
    if (classifyQueueError(err) !== "consumer-missing") throw err;
    await jsm.consumers.add(o.stream, consumerConfig(o));
    consumerCreated = true;
  }
  return { streamCreated, consumerCreated };
}
