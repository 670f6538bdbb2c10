// Figure 1: CreateDeployment calls/s over native gRPC with a worker running,
// beside the same five rows per create written by a tight pg loop.
import { runBaseline } from "../baseline-runner.js";
import { runUnaryLoad } from "../loadgen.js";
import { alternate, medianOf } from "../pairs.js";
import { ratio } from "../stats.js";
import { goalAtLeast, type ResultRow } from "../table.js";
import type { FigureContext } from "./context.js";

export async function createFigure(ctx: FigureContext): Promise<{ row: ResultRow; createRate: number }> {
  const { options: o, system, api } = ctx;
  ctx.log("figure 1: CreateDeployment over native gRPC, with a worker");
  const s = await alternate(
    o.pairs,
    (i) =>
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
      }),
    () =>
      runBaseline<{ rate: number }>("pg-create-loop", {
        url: ctx.rawDb.url,
        poolMax: 10,
        concurrency: o.concurrency,
        durationMs: o.unaryMs,
        warmupMs: o.warmupMs,
      }),
  );
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
      notes: errors > 0 ? `${errors} errors (${s.figure.find((r) => r.firstError)?.firstError})` : undefined,
    },
  };
}
