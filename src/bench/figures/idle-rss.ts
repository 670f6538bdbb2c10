// Figure 9: idle resident memory of freshly started processes (API, worker,
// runtime, all-in-one `modeldeploy start`, model server), beside a bare
// grpc-js + pg server and a bare Node process. All start together, then
// idle; each is sampled a few times and its highest reading kept.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import { startBaseline, startBaselineServer } from "../baseline-runner.js";
import { sleep } from "../client.js";
import { startModelServerReady, type SampleModel } from "../model-server.js";
import { startProcess, type Proc } from "../processes.js";
import { CLI, freePort, randomName } from "../services.js";
import { connectNats } from "../../queue/nats.js";
import { ratio } from "../stats.js";
import { goalAtMost, goalBelow, fmt, type Measure, type ResultRow } from "../table.js";
import type { FigureContext } from "./context.js";

async function startAllInOne(ctx: FigureContext, dataDir: string): Promise<{ proc: Proc; stream: string }> {
  const stream = randomName("MDBENCH_AIO").toUpperCase();
  const ports = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
  const proc = startProcess(
    "all-in-one",
    process.execPath,
    [CLI, "start"],
    ctx.system.env({
      MODELDEPLOY_NATS_STREAM: stream,
      MODELDEPLOY_NATS_PREFIX: randomName("mdbench_aio"),
      MODELDEPLOY_DATA_DIR: dataDir,
      MODELDEPLOY_GRPC_PORT: String(ports[0]),
      MODELDEPLOY_HTTP_PORT: String(ports[1]),
      MODELDEPLOY_GATEWAY_PORT: String(ports[2]),
      MODELDEPLOY_RUNTIME_CONTROL_PORT: String(ports[3]),
    }),
  );
  await proc.waitFor(/Press Ctrl-C/);
  return { proc, stream };
}

export async function idleRssFigures(ctx: FigureContext, model: SampleModel): Promise<ResultRow[]> {
  const { options: o, system } = ctx;
  ctx.log("figure 9: idle RSS");
  const dataDir = mkdtempSync(path.join(tmpdir(), "md-bench-aio-"));
  const procs: Proc[] = [];
  let aioStream = "";
  try {
    const [api, worker, runtime, aio, modelServer, bareServer, bareNode] = await Promise.all([
      system.startApi().then((a) => a.proc),
      system.startWorker({ runtime: "noop" }),
      system.startRuntime().then((r) => r.proc),
      startAllInOne(ctx, dataDir).then((a) => ((aioStream = a.stream), a.proc)),
      startModelServerReady(model).then((m) => m.proc),
      startBaselineServer("grpc-get-server", { url: system.database.url, poolMax: 10 }).then((b) => b.proc),
      (async () => {
        const p = startBaseline("idle-node", {});
        await p.json((x) => x["ready"] === true);
        return p;
      })(),
    ]);
    procs.push(api, worker, runtime, aio, modelServer, bareServer, bareNode);
    const peak = new Map<Proc, number>(procs.map((p) => [p, 0]));
    await sleep(o.idleMs);
    for (let i = 0; i < 5; i++) {
      for (const p of procs) peak.set(p, Math.max(peak.get(p)!, p.rssMB()));
      await sleep(o.idleMs / 5);
    }
    const mb = (p: Proc) => peak.get(p)!;
    const bare: Measure[] = [
      { label: "bare grpc-js + pg server", value: mb(bareServer), unit: "MB" },
      { label: "bare node", value: mb(bareNode), unit: "MB" },
    ];
    const row = (id: string, what: string, p: Proc, goal?: ResultRow["goal"]): ResultRow => ({
      id,
      figure: `idle RSS, ${what}`,
      measures: [{ label: "", value: mb(p), unit: "MB" }],
      baseline: "beside",
      baselineMeasures: bare,
      ...(goal ? { goal } : {}),
    });
    const apiRatio = ratio(mb(api), mb(bareServer));
    return [
      row("9a", "API", api, goalAtMost(apiRatio, 1.2, "≤ 1.2× bare server", `${fmt(apiRatio, 2)}×`)),
      row("9b", "worker (no-op runtime)", worker),
      row("9c", "local runtime", runtime),
      row("9d", "all-in-one `modeldeploy start` (local runtime)", aio, goalBelow(mb(aio), 150, "< 150 MB", `${fmt(mb(aio))} MB`)),
      row("9e", "model server (sample model)", modelServer),
    ];
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
    rmSync(dataDir, { recursive: true, force: true });
    if (aioStream) {
      const nc = await connectNats(system.natsUrl, "modeldeploy-bench-cleanup");
      await (await jetstreamManager(nc)).streams.delete(aioStream).catch(() => {});
      await nc.drain();
    }
  }
}
