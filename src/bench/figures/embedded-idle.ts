// Figure 10: the embedded default idle. `modeldeploy start` with no
// DATABASE_URL and no NATS_URL (PGlite and nats-server in child processes)
// on a fresh data directory, the sample model deployed with one replica and
// RUNNING, then idle: the resident memory of the whole process tree (the CLI
// process, PGlite, nats-server, the model server), sampled a few times and
// its highest reading kept, beside the 300 MB it must stay under.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { DeploymentState } from "../../gen/modeldeploy/v1/resources_pb.js";
import { createBenchClient, sleep } from "../client.js";
import type { SampleModel } from "../model-server.js";
import type { BenchOptions } from "../options.js";
import { startProcess, treeMemory, type Proc, type TreeMemory } from "../processes.js";
import { CLI, freePort } from "../services.js";
import { fmt, goalBelow, type ResultRow } from "../table.js";

export const EMBEDDED_IDLE_LIMIT_MB = 300;

/**
 * How long the system idles after the deploy before the first sample, in
 * every mode: V8's memory reducer gives back the deploy's garbage (~6 MB in
 * the CLI process) only after some seconds without allocation.
 */
const SETTLE_MS = 10_000;

/** The environment of a newcomer's first `start`: none of this bench's servers or settings. */
function embeddedEnv(dataDir: string, ports: number[]): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k === "DATABASE_URL" || k === "NATS_URL" || k.startsWith("MODELDEPLOY_")) continue;
    env[k] = v;
  }
  return {
    ...env,
    MODELDEPLOY_DATA_DIR: dataDir,
    MODELDEPLOY_GRPC_PORT: String(ports[0]),
    MODELDEPLOY_HTTP_PORT: String(ports[1]),
    MODELDEPLOY_GATEWAY_PORT: String(ports[2]),
    MODELDEPLOY_RUNTIME_CONTROL_PORT: String(ports[3]),
    LOG_LEVEL: "warn",
  };
}

function processLabel(command: string): string {
  if (command.includes("embedded-postgres-main")) return "PGlite";
  if (command.includes("nats-server")) return "nats-server";
  if (command.includes("model-server")) return "model server";
  return "start";
}

async function deployAndWaitRunning(grpcUrl: string, apiKey: string, model: SampleModel): Promise<void> {
  const client = createBenchClient(grpcUrl, apiKey);
  const created = await client.deployments.createDeployment({
    model: { name: "bench/embedded", uri: model.uri, sha256: model.sha256 },
    scaling: { minReplicas: 1, maxReplicas: 1 },
  });
  const name = created.deployment!.name;
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), 120_000);
  try {
    for await (const e of client.deployments.watchDeployment({ name }, { signal: ac.signal })) {
      const state = e.deployment?.state;
      if (state === DeploymentState.FAILED) throw new Error(`deployment ${name} failed: ${e.deployment?.failure?.message}`);
      if (state === DeploymentState.RUNNING) return;
    }
  } finally {
    clearTimeout(timer);
    ac.abort();
  }
}

export async function embeddedIdleFigure(o: BenchOptions, model: SampleModel, log: (message: string) => void): Promise<ResultRow> {
  log("figure 10: the embedded default idle, one deployment");
  const dataDir = mkdtempSync(path.join(tmpdir(), "md-bench-embedded-"));
  let proc: Proc | undefined;
  try {
    const ports = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
    proc = startProcess("embedded start", process.execPath, [CLI, "start"], embeddedEnv(dataDir, ports));
    await proc.waitFor(/Press Ctrl-C/, 120_000);
    const apiKey = readFileSync(path.join(dataDir, "bootstrap-key"), "utf8").trim();
    await deployAndWaitRunning(`http://127.0.0.1:${ports[0]}`, apiKey, model);
    await sleep(SETTLE_MS);
    let peak: TreeMemory | undefined;
    for (let i = 0; i < 5; i++) {
      const now = treeMemory(proc.pid);
      if (peak === undefined || now.rssMB > peak.rssMB) peak = now;
      await sleep(o.idleMs / 5);
    }
    const m = peak!;
    const each = m.processes.map((p) => `${processLabel(p.command)} ${fmt(p.rssMB)}`).join(", ");
    return {
      id: "10",
      figure: "idle memory, embedded default `modeldeploy start` (PGlite, nats-server), 1 deployment RUNNING: whole process tree",
      measures: [
        { label: "RSS", value: m.rssMB, unit: "MB" },
        { label: "PSS", value: m.pssMB, unit: "MB" },
      ],
      baseline: "",
      baselineMeasures: [],
      goal: goalBelow(m.rssMB, EMBEDDED_IDLE_LIMIT_MB, `RSS < ${EMBEDDED_IDLE_LIMIT_MB} MB`, `${fmt(m.rssMB)} MB`),
      notes: `RSS by process (MB): ${each}; RSS counts the node binary's pages once per process, PSS shares them out`,
    };
  } finally {
    await proc?.stop(30_000);
    rmSync(dataDir, { recursive: true, force: true });
  }
}
