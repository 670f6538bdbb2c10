// Figure 5: dispatch latency, create → the worker starting the task, at a
// steady 100 creates/s; beside raw JetStream publish → consume at that rate.
// The task's create_time is taken by the API just before its insert (so the
// figure includes the commit itself: an upper bound of commit → start);
// start_time is written by the worker as it starts the task.
import { sql } from "kysely";
import { runBaseline } from "../baseline-runner.js";
import { waitUntil } from "../client.js";
import { runUnaryLoad } from "../loadgen.js";
import { alternate, medianOf } from "../pairs.js";
import { percentile } from "../stats.js";
import { goalBelow, fmt, type ResultRow } from "../table.js";
import type { FigureContext } from "./context.js";

export async function dispatchFigure(ctx: FigureContext): Promise<ResultRow> {
  const { options: o, system, api } = ctx;
  const db = system.database.db;
  ctx.log(`figure 5: dispatch latency at ${o.dispatchRate} creates/s`);
  const sample = async (i: number) => {
    const model = `bench/dispatch${i}`;
    const r = await runUnaryLoad({
      protocol: "grpc",
      method: "create",
      name: model,
      replicas: 0,
      baseUrl: api.grpcUrl,
      apiKey: system.apiKey,
      connections: 1,
      concurrency: 1000,
      ratePerSec: o.dispatchRate,
      durationMs: o.dispatchMs,
      warmupMs: 0,
    });
    const rows = await waitUntil(
      `the worker to start ${r.ok} dispatch tasks`,
      async () => {
        const found = await db
          .selectFrom("tasks")
          .innerJoin("deployments", "deployments.uid", "tasks.deployment_uid")
          .select(sql<number>`extract(epoch from (tasks.start_time - tasks.create_time)) * 1000`.as("ms"))
          .where(sql<boolean>`deployments.model->>'name' = ${model}`)
          .where("tasks.start_time", "is not", null)
          .execute();
        return found.length >= r.ok ? found.map((x) => Number(x.ms)) : undefined;
      },
      60_000,
      200,
    );
    return { p50: percentile(rows, 50), p99: percentile(rows, 99), n: rows.length, errors: r.errors };
  };
  const s = await alternate(o.pairs, sample, () =>
    runBaseline<{ p50: number; p99: number }>("jetstream", { natsUrl: system.natsUrl, mode: "latency", ratePerSec: o.dispatchRate, durationMs: o.dispatchMs }),
  );
  const p99 = medianOf(s.figure, (r) => r.p99);
  return {
    id: "5",
    figure: `dispatch, create → worker start, ${o.dispatchRate} creates/s`,
    measures: [
      { label: "p50", value: medianOf(s.figure, (r) => r.p50), unit: "ms" },
      { label: "p99", value: p99, unit: "ms", samples: s.figure.map((r) => r.p99) },
    ],
    baseline: `raw JetStream publish → consume, ${o.dispatchRate}/s`,
    baselineMeasures: [
      { label: "p50", value: medianOf(s.baseline, (r) => r.p50), unit: "ms" },
      { label: "p99", value: medianOf(s.baseline, (r) => r.p99), unit: "ms" },
    ],
    goal: goalBelow(p99, 50, "p99 < 50 ms", `p99 ${fmt(p99, 1)} ms`),
    notes:
      `each sample: ${o.dispatchMs / 1000} s of creates; p50/p99 are medians over ${o.pairs} samples` +
      (s.figure.some((r) => r.errors > 0) ? `; ${s.figure.reduce((n, r) => n + r.errors, 0)} create errors` : ""),
  };
}
