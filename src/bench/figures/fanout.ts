// Figure 6: one event fanned out to N WatchDeployment streams: delivery
// latency (trigger → arrival on each stream) and the server's memory per open
// stream (RSS after opening − before, / N); beside a bare grpc-js fan-out
// server. The API's trigger is a DeleteDeployment call (its first event);
// the bare server's is a line on its stdin. Both clocks start just before
// the trigger is sent.
import { startBaselineServer } from "../baseline-runner.js";
import { nowMs, waitUntil } from "../client.js";
import { startWatchLoad } from "../loadgen.js";
import type { Proc } from "../processes.js";
import { alternate, medianOf } from "../pairs.js";
import { percentile, ratio } from "../stats.js";
import { fmt, goalAtMost, goalBelow, goalBoth, type ResultRow } from "../table.js";
import type { FigureContext } from "./context.js";

interface FanoutSample {
  p50: number;
  p99: number;
  kbPerStream: number;
  missing: number;
  lostError: string;
}

async function measure(o: {
  timeoutMs: number;
  server: Proc;
  baseUrl: string;
  apiKey?: string;
  name: string;
  streams: number;
  trigger: () => Promise<void>;
}): Promise<FanoutSample> {
  // Warm the server first (a few streams opened and closed), so that its
  // memory growth is the streams', not its first calls' (code, caches).
  const warm = startWatchLoad({ baseUrl: o.baseUrl, apiKey: o.apiKey, name: o.name, streams: 100, connections: 1, timeoutMs: o.timeoutMs });
  try {
    await warm.opened;
  } finally {
    await warm.proc.stop();
  }
  const before = o.server.rssMB();
  const load = startWatchLoad({
    baseUrl: o.baseUrl,
    apiKey: o.apiKey,
    name: o.name,
    streams: o.streams,
    connections: Math.ceil(o.streams / 500),
    timeoutMs: o.timeoutMs,
  });
  try {
    const opened = await load.opened;
    if (opened.failed > 0) throw new Error(`${opened.failed} of ${o.streams} watch streams failed to open: ${opened.firstError}`);
    const after = o.server.rssMB();
    const t0 = nowMs();
    await o.trigger();
    const r = await load.result;
    // A stream that never saw the event counts as never delivered (∞), not as absent.
    const latencies = [...r.arrivals.map((a) => a - t0), ...Array.from({ length: r.missing }, () => Infinity)];
    return {
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      kbPerStream: ((after - before) * 1024) / o.streams,
      missing: r.missing,
      lostError: r.lostError,
    };
  } finally {
    await load.proc.stop();
  }
}

export async function fanoutFigure(ctx: FigureContext): Promise<ResultRow> {
  const { options: o, system, client } = ctx;
  const n = o.fanoutStreams;
  ctx.log(`figure 6: watch fan-out to ${n} streams`);
  let name = "";
  // One event normally arrives within a second or two; a stream still waiting after this is counted as never delivered.
  const timeoutMs = 10_000;
  const figure = async (i: number) => {
    const created = await client.deployments.createDeployment({
      model: { name: `bench/watch${i}`, uri: "file:///bench/model.onnx" },
      scaling: { minReplicas: 0, maxReplicas: 0 },
    });
    name = created.deployment!.name;
    // Quiet first: no worker event may arrive instead of the trigger's.
    await waitUntil("the watched deployment's deploy task to finish", async () =>
      (await client.deployments.getDeployment({ name })).activeTaskId ? undefined : true,
    );
    // A fresh API per sample, as the bare server is: the shared one's heap
    // still holds the garbage of earlier figures, which a collection during
    // the opens gives back (its memory per stream came out below zero).
    const fresh = await system.startApi();
    try {
      return await measure({
        timeoutMs,
        server: fresh.proc,
        baseUrl: fresh.grpcUrl,
        apiKey: system.apiKey,
        name,
        streams: n,
        trigger: async () => void (await client.deletions.deleteDeployment({ name })),
      });
    } finally {
      await fresh.proc.stop();
    }
  };
  const baseline = async () => {
    const bare = await startBaselineServer("fanout-server", { url: system.database.url, name });
    try {
      return await measure({
        timeoutMs,
        server: bare.proc,
        baseUrl: `http://127.0.0.1:${bare.port}`,
        name,
        streams: n,
        trigger: async () => bare.proc.send("fire"),
      });
    } finally {
      await bare.proc.stop();
    }
  };
  const s = await alternate(o.pairs, figure, baseline);
  const p99 = medianOf(s.figure, (r) => r.p99);
  const bareP99 = medianOf(s.baseline, (r) => r.p99);
  const kb = medianOf(s.figure, (r) => r.kbPerStream);
  const missing = s.figure.reduce((m, r) => m + r.missing, 0);
  return {
    id: "6",
    figure: `watch fan-out, ${n} WatchDeployment streams, one event`,
    measures: [
      { label: "p50", value: medianOf(s.figure, (r) => r.p50), unit: "ms" },
      { label: "p99", value: p99, unit: "ms", samples: s.figure.map((r) => r.p99) },
      { label: "", value: kb, unit: "KB/stream" },
    ],
    baseline: "bare @grpc/grpc-js fan-out server",
    baselineMeasures: [
      { label: "p50", value: medianOf(s.baseline, (r) => r.p50), unit: "ms" },
      { label: "p99", value: bareP99, unit: "ms" },
      { label: "", value: medianOf(s.baseline, (r) => r.kbPerStream), unit: "KB/stream" },
    ],
    goal: goalBoth(
      goalAtMost(ratio(p99, bareP99), 1.2, "p99 ≤ 1.2× bare", `${fmt(ratio(p99, bareP99), 2)}×`),
      goalBelow(kb, 25, "< 25 KB/stream", `${fmt(kb, 1)} KB`),
    ),
    notes:
      missing > 0
        ? `${missing} streams never saw the event within ${timeoutMs / 1000} s${s.figure.find((r) => r.lostError)?.lostError ? ` (${s.figure.find((r) => r.lostError)?.lostError})` : ""}`
        : undefined,
  };
}
