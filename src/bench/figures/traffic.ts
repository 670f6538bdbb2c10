// Figures 11 and 12, with the local runtime and the sample model: the time a
// request to an IDLE deployment (scaled to zero) takes to be answered, beside
// the model server started by hand → ready; and the requests that fail under
// a steady stream while a healthy revision is rolled out all at once and as a
// canary (goal: none); and how long the autoscaler takes to add a replica
// after a step of load, and for it to be ready.
import { DeploymentState, RolloutStrategy, TaskStatus } from "../../gen/modeldeploy/v1/resources_pb.js";
import { nowMs, waitUntil } from "../client.js";
import { startModelServerReady, stopModelServerTimed, type SampleModel } from "../model-server.js";
import { alternate, medianOf } from "../pairs.js";
import { percentile } from "../stats.js";
import { fmt, goalAtMost, goalBelow, type ResultRow } from "../table.js";
import type { FigureContext } from "./context.js";
import { UP_AFTER_MS } from "../../domain/autoscaling.js";

const INFER = JSON.stringify({
  inputs: [
    { name: "x", shape: [1, 4], datatype: "FP32", data: [1, 2, 3, 4] },
    { name: "ids", shape: [1], datatype: "INT64", data: [7] },
  ],
});

async function infer(endpointUrl: string): Promise<number> {
  const res = await fetch(`${endpointUrl}/infer`, { method: "POST", headers: { "content-type": "application/json" }, body: INFER });
  await res.arrayBuffer();
  return res.status;
}

async function deployed(ctx: FigureContext, model: SampleModel, name: string, scaling: Record<string, number>): Promise<{ name: string; endpointUrl: string }> {
  const created = await ctx.client.deployments.createDeployment({ model: { name, uri: model.uri, sha256: model.sha256 }, scaling });
  const d = await waitUntil(`${name} RUNNING`, async () => {
    const got = await ctx.client.deployments.getDeployment({ name: created.deployment!.name });
    if (got.state === DeploymentState.FAILED) throw new Error(`${got.name} failed: ${got.failure?.message}`);
    return got.state === DeploymentState.RUNNING ? got : undefined;
  });
  return { name: d.name, endpointUrl: d.endpointUrl };
}

/** Figure 11: IDLE → answered, for one request. */
export async function wakeFigure(ctx: FigureContext, model: SampleModel): Promise<ResultRow> {
  const o = ctx.options;
  ctx.log("figure 11: wake from IDLE, sample model, local runtime");
  const d = await deployed(ctx, model, "bench/wake", { minReplicas: 0, maxReplicas: 1, scaleDownDelaySeconds: 1 });
  const stateOf = async () => (await ctx.client.deployments.getDeployment({ name: d.name })).state;
  const wake = async () => {
    // The last wake first shows (RUNNING), then the autoscaler stops the replica again (IDLE).
    await waitUntil(`${d.name} RUNNING`, async () => ((await stateOf()) === DeploymentState.RUNNING ? true : undefined));
    await waitUntil(`${d.name} IDLE`, async () => ((await stateOf()) === DeploymentState.IDLE ? true : undefined));
    const t0 = nowMs();
    const status = await infer(d.endpointUrl);
    if (status !== 200) throw new Error(`a request waking ${d.name} got ${status}`);
    return nowMs() - t0;
  };
  const s = await alternate(o.lifecycleSamples, wake, async () => {
    const { proc, readyMs } = await startModelServerReady(model);
    await stopModelServerTimed(proc);
    return readyMs;
  });
  await ctx.client.deletions.deleteDeployment({ name: d.name });
  const p50 = percentile(s.figure, 50);
  return {
    id: "11",
    figure: "wake from IDLE: a request to a deployment scaled to zero → its answer, sample model",
    measures: [
      { label: "p50", value: p50, unit: "ms", samples: s.figure },
      { label: "p90", value: percentile(s.figure, 90), unit: "ms" },
    ],
    baseline: "model server started by hand → ready",
    baselineMeasures: [{ label: "p50", value: medianOf(s.baseline, (x) => x), unit: "ms", samples: s.baseline }],
    goal: goalBelow(p50, 1500, "p50 < 1.5 s", `${fmt(p50)} ms`),
    notes: `${o.lifecycleSamples} wakes`,
  };
}

/** Figure 12: failed requests under a steady stream (4 at a time) while a healthy revision rolls out. */
export async function rolloutFailuresFigure(ctx: FigureContext, model: SampleModel): Promise<ResultRow> {
  ctx.log("figure 12: failed requests during rollouts, all at once and canary");
  const d = await deployed(ctx, model, "bench/rollout", { minReplicas: 1, maxReplicas: 1 });
  const counts = { sent: 0, failed: 0 };
  let running = true;
  const loops = Array.from({ length: 4 }, async () => {
    while (running) {
      const status = await infer(d.endpointUrl).catch(() => 0);
      counts.sent++;
      if (status !== 200) counts.failed++;
    }
  });
  const rollout = async (revision: string, canary: boolean) => {
    const before = { ...counts };
    const { task } = await ctx.client.deployments.updateDeployment({
      name: d.name,
      model: { name: "bench/rollout", revision, uri: model.uri, sha256: model.sha256 },
      ...(canary
        ? {
            rollout: {
              strategy: RolloutStrategy.CANARY,
              steps: [
                { percent: 10, pauseSeconds: 1 },
                { percent: 50, pauseSeconds: 1 },
              ],
            },
          }
        : {}),
    });
    const done = await waitUntil(`rollout of revision ${revision}`, async () => {
      const t = await ctx.client.deployments.getDeploymentTask({ taskId: task!.id });
      return [TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED].includes(t.status) ? t : undefined;
    });
    if (done.status !== TaskStatus.COMPLETED) throw new Error(`rollout of revision ${revision} ended ${TaskStatus[done.status]}: ${done.failure?.message}`);
    return { sent: counts.sent - before.sent, failed: counts.failed - before.failed };
  };
  let allAtOnce, canary;
  try {
    allAtOnce = await rollout("2", false);
    canary = await rollout("3", true);
  } finally {
    running = false;
    await Promise.all(loops);
    await ctx.client.deletions.deleteDeployment({ name: d.name });
  }
  const failed = allAtOnce.failed + canary.failed;
  return {
    id: "12",
    figure: "failed requests during a rollout of a healthy revision, 4 requests in flight: all at once; canary 10 %, 50 % (1 s each)",
    measures: [
      { label: "all at once", value: allAtOnce.failed, unit: "failed" },
      { label: "canary", value: canary.failed, unit: "failed" },
    ],
    baseline: "",
    baselineMeasures: [],
    goal: goalAtMost(failed, 0, "0 failed", `${failed} failed`),
    notes: `requests sent meanwhile: ${allAtOnce.sent} (all at once), ${canary.sent} (canary)`,
  };
}

/** Figure 13: a step from no load to 8 requests in flight (target 1 per replica, max 2) → the SCALED event, and → 2 replicas ready. */
export async function autoscalerReactionFigure(ctx: FigureContext, model: SampleModel): Promise<ResultRow> {
  ctx.log("figure 13: autoscaler reaction to a load step");
  const samples: { scaledMs: number; readyMs: number }[] = [];
  for (let i = 0; i < Math.max(2, Math.round(ctx.options.lifecycleSamples / 2)); i++) {
    const d = await deployed(ctx, model, `bench/autoscale${i}`, { minReplicas: 1, maxReplicas: 2, targetInFlight: 1, scaleDownDelaySeconds: 600 });
    let running = true;
    const t0 = nowMs();
    const loops = Array.from({ length: 8 }, async () => {
      while (running) await infer(d.endpointUrl).catch(() => 0);
    });
    try {
      let scaledMs = NaN;
      const readyMs = await waitUntil(`${d.name} at 2 ready replicas`, async () => {
        const got = await ctx.client.deployments.getDeployment({ name: d.name });
        if (Number.isNaN(scaledMs) && got.instances!.desired === 2) scaledMs = nowMs() - t0;
        return got.instances!.ready === 2 ? nowMs() - t0 : undefined;
      });
      samples.push({ scaledMs, readyMs });
    } finally {
      running = false;
      await Promise.all(loops);
      await ctx.client.deletions.deleteDeployment({ name: d.name });
    }
  }
  const scaled = samples.map((x) => x.scaledMs);
  const ready = samples.map((x) => x.readyMs);
  return {
    id: "13",
    figure: "autoscaler reaction: load step 0 → 8 in flight (target 1 per replica, 1–2 replicas) → replica added; → it is ready",
    measures: [
      { label: "added, p50", value: percentile(scaled, 50), unit: "ms", samples: scaled },
      { label: "ready, p50", value: percentile(ready, 50), unit: "ms", samples: ready },
    ],
    baseline: "",
    baselineMeasures: [],
    notes: `${samples.length} load steps; replicas are added after ${UP_AFTER_MS / 1000} s above the target, read every second`,
  };
}
