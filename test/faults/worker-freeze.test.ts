// SIGSTOP a worker in the middle of a deploy for longer than its lease, let
// the other worker take the task over and finish it, then SIGCONT. The woken
// worker must stop that attempt: none of its late writes may land (the
// fencing check over the events) and none of its late effects either (the
// deployment keeps its one model server and keeps serving).
import { it } from "vitest";
import { buildSampleModel } from "../../src/onnx/sample-model.js";
import { modelServers } from "./support/model-servers.js";
import { runCase } from "./support/run-case.js";
import { serveSlowWeights } from "./support/slow-weights.js";
import { expectClean, useFaultSuite } from "./support/suite.js";
import { createVictim, victimDeployed, victimState, workerHolding } from "./support/victim.js";
import { until } from "./support/wait.js";
import { partialDownloads } from "./support/weights-cache.js";

const suite = useFaultSuite();

it("SIGSTOP a worker past its lease, then SIGCONT: its late writes do not land", async () => {
  const sys = await suite.system();
  const slow = await serveSlowWeights(buildSampleModel());
  suite.defer(() => slow.close());
  expectClean(
    await runCase(sys, {
      async fault(ctx) {
        const name = await createVictim(ctx.sys, { suffix: "frozen", uri: slow.url, sha256: "" });
        const held = await until(async () => {
          const s = await victimState(ctx.sys, name);
          return s?.phase === "DOWNLOADING" && partialDownloads(ctx.sys.dataDir).some((p) => p.bytes > 0) && s;
        }, 30_000);
        if (!held) return ctx.violation(`${name} never got to downloading: ${JSON.stringify(await victimState(ctx.sys, name))}`);
        const { worker, taskId, owner } = await workerHolding(ctx.sys, name);
        if (!worker) return ctx.violation(`no worker holds ${name} (lease owner "${owner}")`);
        worker.signal("SIGSTOP");
        try {
          ctx.note(`froze ${worker.name} with ${name} in DOWNLOADING, attempt ${held.attempt}`);
          const problem = await victimDeployed(ctx.sys, name, held.attempt, 45_000);
          if (problem) return ctx.violation(`while ${worker.name} was frozen: ${problem}`);
        } finally {
          worker.signal("SIGCONT");
        }
        // Woken, it finds its lease gone and stops the attempt.
        const stopped = await worker.waitForLog((l) => l["taskId"] === taskId && l["msg"] === "task taken over or cancelled; stopping this attempt", 20_000);
        if (!stopped) ctx.violation(`${worker.name} never said it stopped attempt ${held.attempt} of ${name}`);
        const after = await victimState(ctx.sys, name);
        if (after?.state !== "RUNNING" || after.status !== "COMPLETED" || after.attempt <= held.attempt) {
          ctx.violation(`after ${worker.name} woke, ${name} is ${JSON.stringify(after)}`);
        }
        // Nor its late effects: the revision still wants its replica, runs it, and serves.
        const { uid, endpoint_url: endpoint } = (
          await ctx.sys.db.query<{ uid: string; endpoint_url: string }>("select uid, endpoint_url from deployments where name = $1", [name])
        ).rows[0]!;
        const status = (await (await fetch(`${ctx.sys.controlUrl()}/v1/deployments/${uid}/revisions/1`)).json()) as { desired?: number };
        if (status.desired !== 1)
          ctx.violation(`after ${worker.name} woke, the runtime wants ${name} with ${status.desired} replicas, not 1: ${JSON.stringify(status)}`);
        const procs = modelServers(ctx.sys.dataDir).filter((p) => p.name === name);
        if (procs.length !== 1) ctx.violation(`after ${worker.name} woke, ${name} runs ${procs.length} model servers, not 1`);
        // A health probe that times out on a busy machine makes it unready for a moment.
        const ready = await until(async () => (await fetch(`${endpoint}/ready`).catch(() => undefined))?.status === 200, 10_000, { everyMs: 200 });
        if (!ready) ctx.violation(`after ${worker.name} woke, ${name} at "${endpoint}" does not answer 200 on /ready`);
      },
    }),
  );
});
