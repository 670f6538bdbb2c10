// Figure 4: queue → worker drain, no-op runtime. N deploy tasks are queued
// through the API with no worker running, then one (or two) worker processes
// start; the rate is taken between the 10th and 90th percentile of the tasks'
// end times, so process start-up is not counted. Beside: the API's create
// rate (figure 1), raw JetStream consume + ack, and the worker's own
// Postgres writes for the same tasks in a tight loop.
import { sql } from "kysely";
import { runBaseline } from "../baseline-runner.js";
import { waitUntil } from "../client.js";
import { runUnaryLoad } from "../loadgen.js";
import { alternate, medianOf } from "../pairs.js";
import { median, percentile, ratio } from "../stats.js";
import { goalAtLeast, type ResultRow } from "../table.js";
import type { FigureContext } from "./context.js";

export async function drainFigures(ctx: FigureContext, createRate: number): Promise<ResultRow[]> {
  const { options: o, system, api } = ctx;
  const db = system.database.db;
  const n = o.drainTasks;
  let batch = 0;
  const drain = async (workers: number) => {
    const model = `bench/drain${batch++}`;
    ctx.log(`figure 4: queueing ${n} tasks, then ${workers} worker(s)`);
    const filled = await runUnaryLoad({
      protocol: "grpc",
      method: "create",
      name: model,
      baseUrl: api.grpcUrl,
      apiKey: system.apiKey,
      connections: 4,
      concurrency: o.concurrency,
      count: n,
      durationMs: 600_000,
      warmupMs: 0,
    });
    if (filled.ok === 0) throw new Error(`no task queued: ${filled.firstError}`);
    const procs = await Promise.all(Array.from({ length: workers }, () => system.startWorker({ runtime: "noop" })));
    try {
      const ends = await waitUntil(
        `${workers} worker(s) to finish ${filled.ok} tasks`,
        async () => {
          const rows = await db
            .selectFrom("tasks")
            .innerJoin("deployments", "deployments.uid", "tasks.deployment_uid")
            .select(sql<number>`extract(epoch from tasks.end_time) * 1000`.as("end"))
            .where(sql<boolean>`deployments.model->>'name' = ${model}`)
            .where("tasks.status", "=", "COMPLETED")
            .execute();
          return rows.length >= filled.ok ? rows.map((r) => Number(r.end)) : undefined;
        },
        600_000,
        250,
      );
      const t10 = percentile(ends, 10);
      const t90 = percentile(ends, 90);
      return (0.8 * ends.length) / ((t90 - t10) / 1000);
    } finally {
      await Promise.all(procs.map((p) => p.stop()));
    }
  };
  const one = await alternate(
    o.pairs,
    () => drain(1),
    () => runBaseline<{ rate: number }>("jetstream", { natsUrl: system.natsUrl, mode: "drain", messages: n }),
  );
  const two = await alternate(
    o.pairs,
    () => drain(2),
    () => runBaseline<{ rate: number }>("task-writes-loop", { url: ctx.rawDb.url, tasks: n, concurrency: 8 }),
  );
  const jsRate = medianOf(one.baseline, (r) => r.rate);
  const pgRate = medianOf(two.baseline, (r) => r.rate);
  const baselineMeasures = [
    { label: "API creates", value: createRate, unit: "/s" },
    { label: "raw JetStream consume+ack", value: jsRate, unit: "/s", samples: one.baseline.map((r) => r.rate) },
    { label: "worker's pg writes, tight loop (8 in flight)", value: pgRate, unit: "tasks/s", samples: two.baseline.map((r) => r.rate) },
  ];
  const row = (workers: number, samples: number[], limit: number): ResultRow => {
    const rate = median(samples);
    return {
      id: workers === 1 ? "4a" : "4b",
      figure: `queue → ${workers === 1 ? "one worker" : "two workers"}, no-op runtime, ${n} queued`,
      measures: [{ label: "", value: rate, unit: "tasks/s", samples }],
      baseline: "beside",
      baselineMeasures,
      goal: goalAtLeast(ratio(rate, createRate), limit, `≥ ${limit}× the API's create rate`),
      notes: Number.isFinite(createRate) ? undefined : "no create rate: run figure 1 too",
    };
  };
  return [row(1, one.figure, 0.5), row(2, two.figure, 1)];
}
