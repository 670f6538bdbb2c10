// Figures 2 and 3: GetDeployment calls/s over native gRPC and over Connect
// JSON (HTTP/1.1), each beside a bare server doing the same query.
import { startBaselineServer } from "../baseline-runner.js";
import { newTally, perOperation, tallied, withWarmup, type CpuTally } from "../cpu-use.js";
import { runUnaryLoad } from "../loadgen.js";
import { alternate, medianOf } from "../pairs.js";
import { ratio } from "../stats.js";
import { goalAtLeast, type ResultRow } from "../table.js";
import type { UnaryResult } from "../../loadgen/bench-jobs.js";
import type { FigureContext } from "./context.js";

function cpuNote(cpu: { figure: CpuTally; baseline: CpuTally }): string {
  const f = perOperation(cpu.figure.use, cpu.figure.ops, { load: "load generator" });
  return f && `CPU per call: ${f}; bare: ${perOperation(cpu.baseline.use, cpu.baseline.ops, { load: "load generator" })}`;
}

function errorsNote(samples: UnaryResult[]): string {
  const errors = samples.reduce((n, s) => n + s.errors, 0);
  return errors > 0 ? `${errors} errors (${samples.find((s) => s.firstError)?.firstError})` : "";
}

export async function readFigures(ctx: FigureContext, which: { grpc: boolean; connect: boolean }): Promise<ResultRow[]> {
  const { options: o, system, api } = ctx;
  const created = await ctx.client.deployments.createDeployment({
    model: { name: "bench/get", uri: "file:///bench/model.onnx" },
    scaling: { minReplicas: 0, maxReplicas: 0 },
  });
  const name = created.deployment!.name;
  const base = { method: "get" as const, name, concurrency: o.concurrency, durationMs: o.unaryMs, warmupMs: o.warmupMs };
  const rows: ResultRow[] = [];
  // Calls in a sample, its warm-up included (the CPU is read over both).
  const calls = (r: UnaryResult) => withWarmup(r.ok, o);
  const row = (
    id: string,
    figure: string,
    baseline: string,
    s: { figure: UnaryResult[]; baseline: UnaryResult[] },
    limit: number,
    cpu: { figure: CpuTally; baseline: CpuTally },
  ): ResultRow => {
    const f = medianOf(s.figure, (r) => r.rate);
    const b = medianOf(s.baseline, (r) => r.rate);
    return {
      id,
      figure,
      measures: [
        { label: "", value: f, unit: "calls/s", samples: s.figure.map((r) => r.rate) },
        { label: "p99", value: medianOf(s.figure, (r) => r.p99), unit: "ms" },
      ],
      baseline,
      baselineMeasures: [
        { label: "", value: b, unit: "calls/s", samples: s.baseline.map((r) => r.rate) },
        { label: "p99", value: medianOf(s.baseline, (r) => r.p99), unit: "ms" },
      ],
      goal: goalAtLeast(ratio(f, b), limit, `≥ ${limit}× baseline`),
      notes: [cpuNote(cpu), errorsNote(s.figure), errorsNote(s.baseline)].filter(Boolean).join("; ") || undefined,
    };
  };
  if (which.grpc) {
    ctx.log("figure 2: GetDeployment over native gRPC");
    const bare = await startBaselineServer("grpc-get-server", { url: system.database.url, poolMax: 10 });
    try {
      const cpu = { figure: newTally(), baseline: newTally() };
      const s = await alternate(
        o.pairs,
        () =>
          tallied(cpu.figure, () => runUnaryLoad({ ...base, protocol: "grpc", baseUrl: api.grpcUrl, apiKey: system.apiKey, connections: 4 }), calls, ["bare"]),
        () =>
          tallied(cpu.baseline, () => runUnaryLoad({ ...base, protocol: "grpc", baseUrl: `http://127.0.0.1:${bare.port}`, connections: 4 }), calls, [
            "api",
            "worker",
          ]),
      );
      rows.push(row("2", `GetDeployment, native gRPC, ${o.concurrency} in flight`, "bare @grpc/grpc-js + pg server, same query", s, 0.9, cpu));
    } finally {
      await bare.proc.stop();
    }
  }
  if (which.connect) {
    ctx.log("figure 3: GetDeployment over Connect JSON, HTTP/1.1");
    const bare = await startBaselineServer("http-get-server", { url: system.database.url, poolMax: 10 });
    try {
      const cpu = { figure: newTally(), baseline: newTally() };
      const s = await alternate(
        o.pairs,
        () =>
          tallied(
            cpu.figure,
            () => runUnaryLoad({ ...base, protocol: "connect-json", baseUrl: api.httpUrl, apiKey: system.apiKey, connections: o.concurrency }),
            calls,
            ["bare"],
          ),
        () =>
          tallied(
            cpu.baseline,
            () => runUnaryLoad({ ...base, protocol: "connect-json", baseUrl: `http://127.0.0.1:${bare.port}`, connections: o.concurrency }),
            calls,
            ["api", "worker"],
          ),
      );
      rows.push(row("3", `GetDeployment, Connect JSON over HTTP/1.1, ${o.concurrency} in flight`, "bare node:http JSON + pg server, same query", s, 0.8, cpu));
    } finally {
      await bare.proc.stop();
    }
  }
  return rows;
}
