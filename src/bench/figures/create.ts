// Figure 1: CreateDeployment calls/s over native gRPC with a worker running,
// beside the same five rows per create written by a tight pg loop; with the
// CPU each create cost each process, which says where the gap goes.
import { runBaseline } from "../baseline-runner.js";
import { newTally, perOperation, tallied, withWarmup } from "../cpu-use.js";
import { waitUntil } from "../client.js";
import { runUnaryLoad } from "../loadgen.js";
import { readTaskBacklog } from "../../db/task-backlog.js";
import { alternate, medianOf } from "../pairs.js";
import { ratio } from "../stats.js";
import { goalAtLeast, type ResultRow } from "../table.js";
import type { FigureContext } from "./context.js";

export async function createFigure(ctx: FigureContext): Promise<{ row: ResultRow; createRate: number }> {
  const { options: o, system, api } = ctx;
  ctx.log("figure 1: CreateDeployment over native gRPC, with a worker");
  // CPU over each sample (warm-up included), and the creates in it.
  const cpu = { figure: newTally(), baseline: newTally() };
  const s = await alternate(
    o.pairs,
    (i) =>
      tallied(
        cpu.figure,
        async () => {
          const r = await runUnaryLoad({
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
          // The worker's share: its tasks done (so the baseline also runs beside an idle worker).
          await waitUntil(
            "the worker to finish the created tasks",
            async () => {
              const { pending, running } = await readTaskBacklog(system.database.db);
              return pending + running === 0 ? true : undefined;
            },
            300_000,
            100,
          );
          return r;
        },
        (r) => withWarmup(r.ok, o),
      ),
    () =>
      tallied(
        cpu.baseline,
        () =>
          runBaseline<{ rate: number; n: number }>("pg-create-loop", {
            url: ctx.rawDb.url,
            poolMax: 10,
            concurrency: o.concurrency,
            durationMs: o.unaryMs,
            warmupMs: o.warmupMs,
          }),
        (r) => withWarmup(r.n, o),
        ["api", "worker"],
      ),
  );
  const cpuNote = [
    perOperation(cpu.figure.use, cpu.figure.ops, { load: "load generator" }),
    perOperation(cpu.baseline.use, cpu.baseline.ops, { load: "pg loop" }),
  ];
  const f = medianOf(s.figure, (r) => r.rate);
  const b = medianOf(s.baseline, (r) => r.rate);
  const errors = s.figure.reduce((n, r) => n + r.errors, 0);
  return {
    createRate: f,
    row: {
      id: "1",
      figure: `CreateDeployment, native gRPC, ${o.concurrency} in flight, a no-op worker running`,
      measures: [
        { label: "", value: f, unit: "calls/s", samples: s.figure.map((r) => r.rate) },
        { label: "p99", value: medianOf(s.figure, (r) => r.p99), unit: "ms" },
      ],
      baseline: `the same 5 rows per create, tight pg loop, ${o.concurrency} in flight, 10 connections`,
      baselineMeasures: [{ label: "", value: b, unit: "creates/s", samples: s.baseline.map((r) => r.rate) }],
      goal: goalAtLeast(ratio(f, b), 0.8, "≥ 0.8× baseline"),
      notes:
        [
          cpuNote[0] && `CPU per create: ${cpuNote[0]}, the worker's task included; pg loop: ${cpuNote[1]}`,
          errors > 0 ? `${errors} errors (${s.figure.find((r) => r.firstError)?.firstError})` : "",
        ]
          .filter(Boolean)
          .join("; ") || undefined,
    },
  };
}
