// kill -9 a worker while it runs a deploy, in each phase. The phase is held
// (the worker blocks on its next write, see phase-gate.ts) or, for
// DOWNLOADING, a slow weights server keeps the download going. The other
// worker must take the task over once the lease runs out and finish it,
// with one model server and no effect twice.
import { it } from "vitest";
import { buildSampleModel } from "../../src/onnx/sample-model.js";
import { modelServers } from "./support/model-servers.js";
import { closeGate } from "./support/phase-gate.js";
import { runCase, type CaseContext } from "./support/run-case.js";
import { serveSlowWeights } from "./support/slow-weights.js";
import { expectClean, useFaultSuite } from "./support/suite.js";
import { createVictim, victimDeployed, victimState, workerHolding } from "./support/victim.js";
import { until } from "./support/wait.js";
import { partialDownloads } from "./support/weights-cache.js";

const suite = useFaultSuite();

/** After the kill: the survivor deploys the victim, and it runs one model server. */
async function takenOver(ctx: CaseContext, name: string, attempt: number): Promise<void> {
  const problem = await victimDeployed(ctx.sys, name, attempt, 45_000);
  if (problem) return ctx.violation(problem);
  const procs = modelServers(ctx.sys.dataDir).filter((p) => p.name === name);
  if (procs.length !== 1) ctx.violation(`${name} runs ${procs.length} model servers, not 1: ${JSON.stringify(procs)}`);
}

async function killInPhase(ctx: CaseContext, phase: string): Promise<void> {
  const suffix = phase.toLowerCase().replace(/_/g, "-");
  const gate = await closeGate(ctx.sys.databaseUrl, `victim-${suffix}`, phase);
  let attempt = 0;
  let name = "";
  try {
    name = await createVictim(ctx.sys, { suffix });
    const held = await gate.reached(30_000);
    attempt = held.attempt;
    const worker = ctx.sys.workers.find((w) => w.pid === held.workerPid);
    if (!worker) return ctx.violation(`no worker with pid ${held.workerPid} holds ${name}`);
    await worker.kill9();
    // Its statement at the gate goes with its connection.
    if (!(await until(async () => (await gate.waiting()) === 0, 10_000))) ctx.violation("the killed worker's statement still waits at the gate");
    const after = await gate.task();
    if (after?.phase !== phase || after.attempt !== held.attempt) ctx.violation(`the kill did not land in ${phase}: ${JSON.stringify(after)}`);
    ctx.note(`killed ${worker.name} with ${name} in ${phase}, attempt ${held.attempt}`);
  } finally {
    await gate.open();
  }
  await takenOver(ctx, name, attempt);
}

for (const phase of ["VALIDATING", "STARTING", "HEALTH_CHECKING", "SWITCHING_TRAFFIC"]) {
  it(`kill -9 a worker in ${phase}`, async () => {
    const sys = await suite.system();
    expectClean(await runCase(sys, { fault: (ctx) => killInPhase(ctx, phase) }));
  });
}

it("kill -9 a worker in DOWNLOADING, mid-download", async () => {
  const sys = await suite.system();
  const slow = await serveSlowWeights(buildSampleModel());
  suite.defer(() => slow.close());
  expectClean(
    await runCase(sys, {
      async fault(ctx) {
        // No sha256: the cache cannot answer for it, the weights are fetched.
        const name = await createVictim(ctx.sys, { suffix: "downloading", uri: slow.url, sha256: "" });
        // Bytes are on disk: the kill lands in the middle of the download.
        const held = await until(async () => {
          const s = await victimState(ctx.sys, name);
          return s?.phase === "DOWNLOADING" && slow.inProgress() > 0 && partialDownloads(ctx.sys.dataDir).some((p) => p.bytes > 0) && s;
        }, 30_000);
        if (!held) return ctx.violation(`${name} never got to downloading: ${JSON.stringify(await victimState(ctx.sys, name))}`);
        const { worker, owner } = await workerHolding(ctx.sys, name);
        if (!worker) return ctx.violation(`no worker holds ${name} (lease owner "${owner}")`);
        const bytes = slow.inProgress();
        await worker.kill9();
        ctx.note(`killed ${worker.name} with ${name} in DOWNLOADING after ${bytes} bytes, attempt ${held.attempt}`);
        await takenOver(ctx, name, held.attempt);
      },
    }),
  );
});
