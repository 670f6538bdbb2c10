// npm run bench [-- --quick] [--strict] [--json PATH] [--only 1,4]
//
// Issue 5 §3: each figure beside the limit beneath it, measured in the same
// run on the same Postgres and NATS (DATABASE_URL / NATS_URL, default the
// local servers), figure and baseline alternated and each summarized by the
// median. The system runs as the CLI's own processes; the load comes from
// the load generator in a process of its own; every baseline is a small
// process of its own (src/bench/baselines/). Prints a table, writes JSON,
// and exits 0 even when a goal is MISSED unless --strict.
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { createBenchClient } from "./client.js";
import type { FigureContext } from "./figures/context.js";
import { createFigure } from "./figures/create.js";
import { dispatchFigure } from "./figures/dispatch.js";
import { embeddedIdleFigure } from "./figures/embedded-idle.js";
import { drainFigures } from "./figures/drain.js";
import { fanoutFigure } from "./figures/fanout.js";
import { idleRssFigures } from "./figures/idle-rss.js";
import { lifecycleFigures } from "./figures/lifecycle.js";
import { readFigures } from "./figures/reads.js";
import { autoscalerReactionFigure, rolloutFailuresFigure, wakeFigure } from "./figures/traffic.js";
import { describeMachine, formatMachine, type Machine } from "./machine.js";
import { writeSampleModel } from "./model-server.js";
import { parseOptions, wants, type BenchOptions } from "./options.js";
import { exitOnSignals, stopAll } from "./processes.js";
import { cleanupAll, createBenchDatabase, createBenchSystem, type BenchDatabase, type BenchSystem } from "./services.js";
import { allGoalsMet, formatTable, verdict, type ResultRow } from "./table.js";

export interface BenchReport {
  startedAt: string;
  seconds: number;
  mode: "quick" | "full";
  machine: Machine;
  settings: Omit<BenchOptions, "only" | "jsonPath"> & { only: string[] };
  rows: (ResultRow & { verdict: string })[];
  allGoalsMet: boolean;
  error?: string;
}

/** A URL without its password, for the JSON file. */
function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "?";
  }
}

/** A figure that fails is reported as a MISSED row and the run goes on. */
async function guard(rows: ResultRow[], id: string, figure: string, fn: () => Promise<ResultRow[]>): Promise<void> {
  try {
    rows.push(...(await fn()));
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    log(`figure ${id} failed: ${message}`);
    rows.push({
      id,
      figure,
      measures: [],
      baseline: "",
      baselineMeasures: [],
      goal: { text: "runs", actual: NaN, shown: "failed", ok: false },
      notes: `failed: ${message.split("\n")[0]!.slice(0, 400)}`,
    });
  }
}

const log = (message: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);

async function withSystem<T>(o: BenchOptions, rawDb: BenchDatabase, fn: (ctx: FigureContext) => Promise<T>): Promise<T> {
  let system: BenchSystem | undefined;
  try {
    system = await createBenchSystem({ adminUrl: o.databaseUrl, natsUrl: o.natsUrl });
    const api = await system.startApi();
    try {
      return await fn({ options: o, system, api, client: createBenchClient(api.grpcUrl, system.apiKey), rawDb, log });
    } finally {
      await api.proc.stop();
    }
  } finally {
    await system?.close();
  }
}

async function runFigures(o: BenchOptions, rows: ResultRow[]): Promise<void> {
  const rawDb = await createBenchDatabase(o.databaseUrl);
  const model = writeSampleModel();
  try {
    let createRate = NaN;
    // Stage A: API and one no-op worker. Figure 1 comes last: it leaves a
    // backlog behind that would disturb the others.
    if (["1", "2", "3", "5", "6"].some((id) => wants(o, id))) {
      await withSystem(o, rawDb, async (ctx) => {
        let worker = await ctx.system.startWorker({ runtime: "noop" });
        try {
          await ctx.system.waitForPulls(1);
          if (wants(o, "2") || wants(o, "3"))
            await guard(rows, "2", "GetDeployment reads", () => readFigures(ctx, { grpc: wants(o, "2"), connect: wants(o, "3") }));
          if (wants(o, "5")) await guard(rows, "5", "dispatch latency", async () => [await dispatchFigure(ctx)]);
          if (wants(o, "6")) await guard(rows, "6", "watch fan-out", async () => [await fanoutFigure(ctx)]);
          if (wants(o, "1")) {
            await guard(rows, "1", "CreateDeployment", async () => {
              const r = await createFigure(ctx, {
                stop: () => worker.stop(),
                start: async () => {
                  worker = await ctx.system.startWorker({ runtime: "noop" });
                  await ctx.system.waitForPulls(1);
                },
              });
              createRate = r.createRate;
              return r.rows;
            });
          }
        } finally {
          await worker.stop();
        }
      });
    }
    // Stage B: a fresh system, for a queue that starts empty.
    if (wants(o, "4")) {
      await withSystem(o, rawDb, async (ctx) => {
        await guard(rows, "4", "queue → worker drain", () => drainFigures(ctx, createRate));
      });
    }
    // Stage C: a fresh system again: the drain's thousands of no-op deployments
    // would hold the local runtime host's memory (the API's capacity check).
    if (["7", "8", "9", "11", "12", "13"].some((id) => wants(o, id))) {
      await withSystem(o, rawDb, async (ctx) => {
        if (["7", "8", "11", "12", "13"].some((id) => wants(o, id))) {
          const runtime = await ctx.system.startRuntime();
          const worker = await ctx.system.startWorker({ runtime: "local", controlUrl: runtime.controlUrl });
          try {
            await ctx.system.waitForPulls(1);
            if (wants(o, "7") || wants(o, "8")) {
              await guard(rows, "7", "create → RUNNING / delete → DELETED", () =>
                lifecycleFigures(ctx, model, { running: wants(o, "7"), deleted: wants(o, "8") }),
              );
            }
            if (wants(o, "11")) await guard(rows, "11", "wake from IDLE", async () => [await wakeFigure(ctx, model)]);
            if (wants(o, "12")) await guard(rows, "12", "rollout failed requests", async () => [await rolloutFailuresFigure(ctx, model)]);
            if (wants(o, "13")) await guard(rows, "13", "autoscaler reaction", async () => [await autoscalerReactionFigure(ctx, model)]);
          } finally {
            await worker.stop();
            await runtime.proc.stop();
          }
        }
        if (wants(o, "9")) await guard(rows, "9", "idle RSS", () => idleRssFigures(ctx, model));
      });
    }
    // Stage D: the embedded default, on its own PGlite and nats-server.
    if (wants(o, "10")) await guard(rows, "10", "idle memory, embedded default", async () => [await embeddedIdleFigure(o, model, log)]);
  } finally {
    rmSync(model.dir, { recursive: true, force: true });
    await rawDb.drop();
  }
}

async function main(): Promise<number> {
  const o = parseOptions(process.argv.slice(2));
  exitOnSignals(async () => {
    await stopAll();
    await cleanupAll();
  });
  const started = Date.now();
  const machine = await describeMachine(o.databaseUrl, o.natsUrl);
  process.stdout.write(
    `modeldeploy bench, ${o.quick ? "quick" : "full"} mode, ${new Date(started).toISOString()}\n${formatMachine(machine)}\nJSON: ${o.jsonPath}\n\n`,
  );
  const rows: ResultRow[] = [];
  let error: unknown;
  try {
    await runFigures(o, rows);
  } catch (err) {
    error = err;
  } finally {
    await stopAll();
  }
  const order = (id: string) => parseFloat(id) + (id.endsWith("b") ? 0.1 : id.endsWith("c") ? 0.2 : id.endsWith("d") ? 0.3 : id.endsWith("e") ? 0.4 : 0);
  rows.sort((a, b) => order(a.id) - order(b.id));
  const report: BenchReport = {
    startedAt: new Date(started).toISOString(),
    seconds: (Date.now() - started) / 1000,
    mode: o.quick ? "quick" : "full",
    machine,
    settings: { ...o, databaseUrl: redact(o.databaseUrl), natsUrl: redact(o.natsUrl), only: [...o.only] },
    rows: rows.map((r) => ({ ...r, verdict: verdict(r) })),
    allGoalsMet: !error && allGoalsMet(rows),
    ...(error ? { error: error instanceof Error ? (error.stack ?? error.message) : String(error) } : {}),
  };
  process.stdout.write(formatTable(rows) + "\n\n");
  mkdirSync(path.dirname(o.jsonPath), { recursive: true });
  // JSON has no ∞ (a stream that never got its event): written as the string "Infinity".
  writeFileSync(o.jsonPath, JSON.stringify(report, (_k, v: unknown) => (v === Infinity ? "Infinity" : v), 2) + "\n");
  process.stdout.write(`${rows.filter((r) => verdict(r) === "MISSED").length} goal(s) missed; ${report.seconds.toFixed(0)} s; JSON: ${o.jsonPath}\n`);
  if (error) {
    process.stderr.write(`bench failed: ${report.error}\n`);
    return 2;
  }
  return o.strict && !report.allGoalsMet ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(2);
  },
);
