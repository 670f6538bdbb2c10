// The fault suite's load generator, in a process of its own: creates and
// deletes at a steady rate, some GetDeployment reads and some WatchDeployment
// streams, every call and event recorded to a JSONL file (records.ts).
//
//   node dist/loadgen/main.js '<LoadConfig as JSON>'
//
// stdout: {"ready":true} once running; after "drain <ms>" on stdin, one
// DrainSummary line, then it exits 0. It exits at once when stdin closes, so
// it never outlives the test that started it.
import { createInterface } from "node:readline";
import { createApis } from "./api.js";
import { startChurn } from "./churn.js";
import { parseLoadConfig } from "./config.js";
import { startReads } from "./reads.js";
import { createRecorder } from "./recorder.js";
import type { DrainSummary } from "./records.js";
import { startWatches } from "./watches.js";

const config = parseLoadConfig(process.argv[2]);
const recorder = createRecorder(config.out);
const apis = createApis(config.targets, config.apiKey, config.targetMode);
const watches = startWatches({ apis, recorder, dropEveryMs: config.dropWatchEveryMs });
let createdOk = 0;
const churn = startChurn({
  config,
  apis,
  recorder,
  onCreated: (name) => {
    createdOk++;
    if (config.watchEvery > 0 && createdOk % config.watchEvery === 0) watches.watch(name);
  },
});
const reads = startReads({ apis, recorder, perSec: config.readsPerSec, timeoutMs: config.callTimeoutMs, names: () => churn.live() });

async function drain(ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  reads.stop();
  const stats = await churn.drain(deadline);
  const openWatches = await watches.drain(deadline);
  const summary: DrainSummary = {
    drained: true,
    creates: stats.creates,
    createdOk: stats.createdOk,
    deletedOk: stats.deletedOk,
    undeleted: stats.undeleted,
    openWatches,
  };
  recorder.close();
  process.stdout.write(JSON.stringify(summary) + "\n", () => process.exit(0));
}

const lines = createInterface({ input: process.stdin });
let draining = false;
lines.on("line", (line) => {
  const [command, arg] = line.trim().split(/\s+/);
  if (command === "drain" && !draining) {
    draining = true;
    void drain(Number(arg) || 30_000);
  }
});
lines.on("close", () => process.exit(0));
process.stdout.write(JSON.stringify({ ready: true }) + "\n");
