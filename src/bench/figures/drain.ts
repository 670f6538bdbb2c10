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
import { newTally, perOperation, tallied, type CpuTally } from "../cpu-use.js";
import type { Proc } from "../processes.js";
import { readTaskBacklog } from "../../db/task-backlog.js";
import { median, percentile, ratio } from "../stats.js";
import { goalAtLeast, type ResultRow } from "../table.js";
import type { FigureContext } from "./context.js";

export async function drainFigures(ctx: FigureContext, createRate: number): Promise<ResultRow[]> {
  const { options: o, system, api } = ctx;
  const db = system.database.db;
  const n = o.drainTasks;
  let batch = 0;
  // CPU while the workers drain (from their start to the last task's end).
  const cpu: Record<Workers, CpuTally> = { 1: newTally(), 2: newTally() };
  const drain = async (workers: Workers) => {
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
    const procs: Proc[] = [];
    try {
      await tallied(
        cpu[workers],
        async () => {
          procs.push(...(await Promise.all(Array.from({ length: workers }, () => system.startWorker({ runtime: "noop" })))));
          // Polled through the open-task index: a poll that scanned every task would grow with the run and weigh on the figure.
          await waitUntil(
            `${workers} worker(s) to finish ${filled.ok} tasks`,
            async () => {
              const { pending, running } = await readTaskBacklog(db);
              return pending + running === 0 ? true : undefined;
            },
            600_000,
            100,
          );
        },
        () => filled.ok,
        ["api"],
      );
    } finally {
      await Promise.all(procs.map((p) => p.stop()));
    }
    const rows = await db
      .selectFrom("tasks")
      .innerJoin("deployments", "deployments.uid", "tasks.deployment_uid")
      .select(sql<number>`extract(epoch from tasks.end_time) * 1000`.as("end"))
      .where(sql<boolean>`deployments.model->>'name' = ${model}`)
      .where("tasks.status", "=", "COMPLETED")
      .execute();
    if (rows.length < filled.ok) throw new Error(`${filled.ok - rows.length} of ${filled.ok} drained tasks did not complete`);
    const ends = rows.map((r) => Number(r.end));
    const t10 = percentile(ends, 10);
    const t90 = percentile(ends, 90);
    return (0.8 * ends.length) / ((t90 - t10) / 1000);
  };
  // One worker and two in alternation, each beside a baseline, so that a
  // database that grows over the run weighs on both alike.
  const one: number[] = [];
  const two: number[] = [];
  const js: number[] = [];
  const pg: number[] = [];
  for (let i = 0; i < o.pairs; i++) {
    one.push(await drain(1));
    js.push((await runBaseline<{ rate: number }>("jetstream", { natsUrl: system.natsUrl, mode: "drain", messages: n })).rate);
    two.push(await drain(2));
    pg.push((await runBaseline<{ rate: number }>("task-writes-loop", { url: ctx.rawDb.url, tasks: n, concurrency: 8 })).rate);
  }
  const baselineMeasures = [
    { label: "API creates", value: createRate, unit: "/s" },
    { label: "raw JetStream consume+ack", value: median(js), unit: "/s", samples: js },
    { label: "worker's pg writes, tight loop (8 in flight)", value: median(pg), unit: "tasks/s", samples: pg },
  ];
  const row = (workers: Workers, samples: number[], limit: number): ResultRow => {
    const rate = median(samples);
    const cpuNote = perOperation(cpu[workers].use, cpu[workers].ops);
    return {
      id: workers === 1 ? "4a" : "4b",
      figure: `queue → ${workers === 1 ? "one worker" : "two workers"}, no-op runtime, ${n} queued`,
      measures: [{ label: "", value: rate, unit: "tasks/s", samples }],
      baseline: "beside",
      baselineMeasures,
      goal: goalAtLeast(ratio(rate, createRate), limit, `≥ ${limit}× the API's create rate`),
      notes:
        [cpuNote && `CPU per task: ${cpuNote}`, Number.isFinite(createRate) ? "" : "no create rate: run figure 1 too"].filter(Boolean).join("; ") || undefined,
    };
  };
  return [row(1, one, 0.5), row(2, two, 1)];
}

type Workers = 1 | 2;
