// Figures 7 and 8, with the local runtime and the sample model, one replica:
// create → RUNNING and delete → DELETED as a client sees them (the call sent
// → the event on a WatchDeployment stream opened right after the create),
// beside the model server started by hand → ready, and SIGTERM → exit.
import { DeploymentState } from "../../gen/modeldeploy/v1/resources_pb.js";
import { nowMs } from "../client.js";
import { startModelServerReady, stopModelServerTimed, type SampleModel } from "../model-server.js";
import { alternate, medianOf } from "../pairs.js";
import { percentile, ratio } from "../stats.js";
import { goalAtMost, fmt, type ResultRow } from "../table.js";
import type { FigureContext } from "./context.js";

async function createToRunning(ctx: FigureContext, model: SampleModel, i: number): Promise<{ runningMs: number; deletedMs: number }> {
  const { client } = ctx;
  const t0 = nowMs();
  const created = await client.deployments.createDeployment({
    model: { name: `bench/sample${i}`, uri: model.uri, sha256: model.sha256 },
    scaling: { minReplicas: 1, maxReplicas: 1 },
  });
  const name = created.deployment!.name;
  const ac = new AbortController();
  let runningMs = NaN;
  let deletedMs = NaN;
  let t1 = 0;
  try {
    for await (const e of client.deployments.watchDeployment({ name }, { signal: ac.signal })) {
      const state = e.deployment?.state;
      if (state === DeploymentState.FAILED) throw new Error(`deployment ${name} failed: ${e.deployment?.failure?.message}`);
      if (Number.isNaN(runningMs) && state === DeploymentState.RUNNING) {
        runningMs = nowMs() - t0;
        t1 = nowMs();
        await client.deletions.deleteDeployment({ name });
      }
      if (state === DeploymentState.DELETED) {
        deletedMs = nowMs() - t1;
        break;
      }
    }
  } finally {
    ac.abort();
  }
  return { runningMs, deletedMs };
}

export async function lifecycleFigures(ctx: FigureContext, model: SampleModel, which: { running: boolean; deleted: boolean }): Promise<ResultRow[]> {
  const o = ctx.options;
  ctx.log("figures 7 and 8: create → RUNNING and delete → DELETED, local runtime");
  // Warm-up: the first deploy fills the weights cache and wakes every path.
  await createToRunning(ctx, model, 0);
  const s = await alternate(
    o.lifecycleSamples,
    (i) => createToRunning(ctx, model, i + 1),
    async () => {
      const { proc, readyMs } = await startModelServerReady(model);
      return { readyMs, exitMs: await stopModelServerTimed(proc) };
    },
  );
  const running = s.figure.map((r) => r.runningMs);
  const p50 = percentile(running, 50);
  const bare = medianOf(s.baseline, (r) => r.readyMs);
  const rows: ResultRow[] = [];
  if (which.running) {
    rows.push({
      id: "7",
      figure: "create → RUNNING, sample model, local runtime, 1 replica",
      measures: [
        { label: "p50", value: p50, unit: "ms", samples: running },
        { label: "p90", value: percentile(running, 90), unit: "ms" },
      ],
      baseline: "model server started by hand → ready",
      baselineMeasures: [{ label: "p50", value: bare, unit: "ms", samples: s.baseline.map((r) => r.readyMs) }],
      goal: goalAtMost(ratio(p50, bare), 1.5, "p50 ≤ 1.5× bare", `${fmt(ratio(p50, bare), 2)}×`),
      notes: `${o.lifecycleSamples} samples after one warm-up`,
    });
  }
  if (which.deleted) {
    const deleted = s.figure.map((r) => r.deletedMs);
    rows.push({
      id: "8",
      figure: "delete → DELETED, 1 replica",
      measures: [{ label: "p50", value: percentile(deleted, 50), unit: "ms", samples: deleted }],
      baseline: "model server SIGTERM → exit",
      baselineMeasures: [{ label: "p50", value: medianOf(s.baseline, (r) => r.exitMs), unit: "ms", samples: s.baseline.map((r) => r.exitMs) }],
    });
  }
  return rows;
}
