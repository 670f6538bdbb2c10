// Baseline: raw JetStream on a stream and consumer set up like the task
// queue's (ensureTaskQueue), with no database and no worker logic.
//   drain:   N messages published (untimed), then consumed and acked; msgs/s.
//   latency: published at a steady rate while consumed; publish → receive, ms.
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { randomBytes } from "node:crypto";
import { connectNats } from "../../queue/nats.js";
import { CONSUMER_NAME, ensureTaskQueue, taskSubject } from "../../queue/task-queue.js";
import { finish, scriptArgs } from "./script.js";

type Args = { natsUrl: string; mode: "drain"; messages: number } | { natsUrl: string; mode: "latency"; ratePerSec: number; durationMs: number };
const args = scriptArgs<Args>();
const suffix = randomBytes(5).toString("hex");
const options = { stream: `MDBENCH_RAW_${suffix.toUpperCase()}`, subjectPrefix: `mdbench_raw_${suffix}`, ackWaitMs: 30_000, maxDeliver: 10 };
const subject = taskSubject(options.subjectPrefix);
const nc = await connectNats(args.natsUrl, "modeldeploy-bench-raw");
const jsm = await jetstreamManager(nc);
const js = jetstream(nc);
const percentile = (s: number[], p: number) => s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;

let result: unknown;
try {
  await ensureTaskQueue(nc, options);
  const consumer = await js.consumers.get(options.stream, CONSUMER_NAME);
  if (args.mode === "drain") {
    const body = JSON.stringify({ taskId: "0".repeat(26) });
    const pubs: Promise<unknown>[] = [];
    for (let i = 0; i < args.messages; i++) {
      pubs.push(js.publish(subject, body, { msgID: `m${i}` }));
      if (pubs.length >= 500) await Promise.all(pubs.splice(0));
    }
    await Promise.all(pubs);
    const t0 = performance.now();
    const messages = await consumer.consume();
    let n = 0;
    for await (const m of messages) {
      m.ack();
      if (++n === args.messages) break;
    }
    const seconds = (performance.now() - t0) / 1000;
    result = { rate: args.messages / seconds, seconds };
  } else {
    const latencies: number[] = [];
    const messages = await consumer.consume();
    const reading = (async () => {
      for await (const m of messages) {
        latencies.push(performance.timeOrigin + performance.now() - Number(m.string()));
        m.ack();
      }
    })();
    const t0 = performance.now();
    let sent = 0;
    while (performance.now() - t0 < args.durationMs) {
      const due = Math.floor(((performance.now() - t0) / 1000) * args.ratePerSec) + 1;
      for (; sent < due; sent++) await js.publish(subject, String(performance.timeOrigin + performance.now()), { msgID: `l${sent}` });
      await new Promise((r) => setTimeout(r, 1));
    }
    const end = Date.now() + 5000;
    while (latencies.length < sent && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    await messages.close();
    await reading;
    latencies.sort((a, b) => a - b);
    result = { p50: percentile(latencies, 50), p99: percentile(latencies, 99), n: latencies.length };
  }
} finally {
  await jsm.streams.delete(options.stream).catch(() => {});
  await nc.drain();
}
await finish(result);
