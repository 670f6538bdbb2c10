// Figure 1: CreateDeployment calls/s over native gRPC with a worker running,
// beside the same five rows per create written by a tight pg loop; with the
// CPU each create cost each process, which says where the gap goes. And the
// same creates with no worker meanwhile (as when workers run on other
// machines), beside the textbook loop (a transaction of five INSERTs).
import { runBaseline } from "../baseline-runner.js";
import { newTally, perOperation, tallied, withWarmup, type CpuTally } from "../cpu-use.js";
import { waitUntil } from "../client.js";
import { runUnaryLoad } from "../loadgen.js";
import { readTaskBacklog } from "../../db/task-backlog.js";
import type { UnaryResult } from "../../loadgen/bench-jobs.js";
import { medianOf } from "../pairs.js";
import { median, ratio } from "../stats.js";
import { goalAtLeast, type ResultRow } from "../table.js";
import type { FigureContext } from "./context.js";

/** Stops and restarts the stage's no-op worker. */
export interface WorkerControl {
  stop(): Promise<void>;
  start(): Promise<void>;
}

type LoopShape = "statement" | "transaction";

export async function createFigure(ctx: FigureContext, worker: WorkerControl): Promise<{ rows: ResultRow[]; createRate: number }> {
  const { options: o, system, api } = ctx;
  ctx.log("figure 1: CreateDeployment over native gRPC, with a worker and without");
  const drained = () =>
    waitUntil(
      "the worker to finish the created tasks",
      async () => {
        const { pending, running } = await readTaskBacklog(system.database.db);
        return pending + running === 0 ? true : undefined;
      },
      300_000,
      100,
    );
  const creates = (i: number) =>
    runUnaryLoad({
      protocol: "grpc",
      method: "create",
      name: `bench/create${i}`,
      baseUrl: api.grpcUrl,
      apiKey: system.apiKey,
      connections: 4,
      concurrency: o.concurrency,
      durationMs: o.unaryMs,
      warmupMs: o.warmupMs,
    });
  const loop = (shape: LoopShape) =>
    runBaseline<{ rate: number; n: number }>("pg-create-loop", {
      url: ctx.rawDb.url,
      poolMax: 10,
      concurrency: o.concurrency,
      durationMs: o.unaryMs,
      warmupMs: o.warmupMs,
      shape,
    });
  // CPU over each sample (warm-up included), and the creates in it.
  const cpu = { worker: newTally(), alone: newTally(), statement: newTally(), transaction: newTally() };
  const ops = (n: number) => withWarmup(n, o);
  const s = { worker: [] as UnaryResult[], alone: [] as UnaryResult[], statement: [] as number[], transaction: [] as number[] };
  /** A loop's rate, its CPU tallied (the idle API and worker left out). */
  const loopSample = async (shape: LoopShape) =>
    (
      await tallied(
        cpu[shape],
        () => loop(shape),
        (r) => ops(r.n),
        ["api", "worker"],
      )
    ).rate;
  // Four samples in turn, so that a machine that slows down moves all alike.
  for (let i = 0; i < o.pairs; i++) {
    // The worker's share counted: the sample ends when its tasks are done.
    s.worker.push(
      await tallied(
        cpu.worker,
        async () => {
          const r = await creates(2 * i);
          await drained();
          return r;
        },
        (r) => ops(r.ok),
      ),
    );
    s.statement.push(await loopSample("statement"));
    await worker.stop();
    s.alone.push(
      await tallied(
        cpu.alone,
        () => creates(2 * i + 1),
        (r) => ops(r.ok),
      ),
    );
    await worker.start();
    await drained();
    s.transaction.push(await loopSample("transaction"));
  }
  const note = (t: CpuTally, load: string) => perOperation(t.use, t.ops, { load });
  const withWorker = medianOf(s.worker, (r) => r.rate);
  const alone = medianOf(s.alone, (r) => r.rate);
  const statement = median(s.statement);
  const transaction = median(s.transaction);
  const errors = [...s.worker, ...s.alone].reduce((n, r) => n + r.errors, 0);
  const firstError = [...s.worker, ...s.alone].find((r) => r.firstError)?.firstError;
  const baselineMeasures = [
    { label: "one statement per create (the API's SQL)", value: statement, unit: "creates/s", samples: s.statement },
    { label: "BEGIN, 5 INSERTs, COMMIT", value: transaction, unit: "creates/s", samples: s.transaction },
  ];
  const baseline = `the same 5 rows per create, tight pg loop, ${o.concurrency} in flight, 10 connections`;
  return {
    createRate: withWorker,
    rows: [
      {
        id: "1",
        figure: `CreateDeployment, native gRPC, ${o.concurrency} in flight, a no-op worker draining meanwhile`,
        measures: [
          { label: "", value: withWorker, unit: "calls/s", samples: s.worker.map((r) => r.rate) },
          { label: "p99", value: medianOf(s.worker, (r) => r.p99), unit: "ms" },
        ],
        baseline,
        baselineMeasures,
        goal: goalAtLeast(ratio(withWorker, statement), 0.8, "≥ 0.8× the API's SQL in a loop"),
        notes:
          [
            `CPU per create: ${note(cpu.worker, "load generator")}, the worker's task included`,
            `pg loop, one statement: ${note(cpu.statement, "pg loop")}; BEGIN, 5 INSERTs, COMMIT: ${note(cpu.transaction, "pg loop")}`,
            `against the textbook loop: ${ratio(withWorker, transaction).toFixed(2)}×`,
            errors > 0 ? `${errors} errors (${firstError})` : "",
          ]
            .filter(Boolean)
            .join("; ") || undefined,
      },
      {
        id: "1b",
        figure: `CreateDeployment, the same, no worker meanwhile (its tasks drained after each sample)`,
        measures: [
          { label: "", value: alone, unit: "calls/s", samples: s.alone.map((r) => r.rate) },
          { label: "p99", value: medianOf(s.alone, (r) => r.p99), unit: "ms" },
        ],
        baseline,
        baselineMeasures,
        notes: [
          `${ratio(alone, statement).toFixed(2)}× the API's SQL in a loop, ${ratio(alone, transaction).toFixed(2)}× the textbook loop`,
          `CPU per create: ${note(cpu.alone, "load generator")}`,
        ].join("; "),
      },
    ],
  };
}
