// A newcomer's first run, for real: `modeldeploy start` with no DATABASE_URL
// and no NATS_URL embeds Postgres (PGlite child) and runs `nats-server -js`
// as a child. Deploy a real ONNX model, infer, stop with one SIGTERM and leave
// no process behind; start again on the same data dir and find the
// deployment still there and serving.
import { spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DeploymentService } from "../../src/gen/modeldeploy/v1/deployment_service_pb.js";
import { DeploymentState, EventType, type Deployment, type DeploymentEvent } from "../../src/gen/modeldeploy/v1/resources_pb.js";
import { buildSampleModel, sampleModelReference } from "../../src/onnx/sample-model.js";
import { waitFor } from "../helpers/services.js";
import { CLI } from "../helpers/system.js";

const GRACE_MS = 5000;
/** How long one SIGTERM may take to bring everything down: the grace period plus PGlite's close on a slow machine. */
const EXIT_TIMEOUT_MS = 45_000;

// ---- processes, by pid, from /proc ------------------------------------------

interface Proc {
  pid: number;
  ppid: number;
  state: string;
  start: string;
  cmd: string;
}

function readProc(pid: number): Proc | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after "(comm)": state, ppid, …; starttime is field 22 overall.
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ").trim();
    return { pid, state: rest[0]!, ppid: Number(rest[1]), start: rest[19]!, cmd };
  } catch {
    return undefined; // gone meanwhile
  }
}

function allProcs(): Proc[] {
  return readdirSync("/proc")
    .filter((n) => /^\d+$/.test(n))
    .map((n) => readProc(Number(n)))
    .filter((p): p is Proc => p !== undefined);
}

/** Live (non-zombie) processes started for this data dir: its command line names the dir, or it descends from rootPid. */
function processesOf(dataDir: string, rootPid: number | undefined): Proc[] {
  const procs = allProcs().filter((p) => p.state !== "Z");
  const children = new Map<number, number[]>();
  for (const p of procs) children.set(p.ppid, [...(children.get(p.ppid) ?? []), p.pid]);
  const descendants = new Set<number>();
  const queue = rootPid === undefined ? [] : [...(children.get(rootPid) ?? [])];
  while (queue.length > 0) {
    const pid = queue.shift()!;
    if (descendants.has(pid)) continue;
    descendants.add(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return procs.filter((p) => p.pid !== rootPid && (descendants.has(p.pid) || p.cmd.includes(dataDir)));
}

/** Those of `procs` still running: same pid and start time (no pid reuse), not a zombie. */
function stillRunning(procs: Proc[]): Proc[] {
  return procs.filter((p) => {
    const now = readProc(p.pid);
    return now !== undefined && now.start === p.start && now.state !== "Z";
  });
}

const describeProcs = (procs: Proc[]) => procs.map((p) => `  ${p.pid} ${p.cmd}`).join("\n");

// ---- the process under test ---------------------------------------------------

interface Started {
  child: ChildProcess;
  banner: string;
  httpUrl: string;
  grpcAddress: string;
  gatewayUrl: string;
  controlUrl: string;
  /** The key printed in the banner (first run only). */
  printedKey: string | undefined;
  output(): string;
  /** Resolves with the exit code (or the signal name) once the process has exited. */
  exited: Promise<number | string | null>;
}

const started: Started[] = [];

/** A fresh machine's environment: no database, no queue, nothing of ours configured. */
function freshEnv(dataDir: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined) continue;
    if (k.startsWith("MODELDEPLOY_") || k.startsWith("DATABASE_") || k.startsWith("NATS_")) continue;
    env[k] = v;
  }
  expect(env["DATABASE_URL"]).toBeUndefined();
  expect(env["NATS_URL"]).toBeUndefined();
  return {
    ...env,
    MODELDEPLOY_DATA_DIR: dataDir,
    MODELDEPLOY_GRPC_PORT: "0",
    MODELDEPLOY_HTTP_PORT: "0",
    MODELDEPLOY_GATEWAY_PORT: "0",
    MODELDEPLOY_RUNTIME_CONTROL_PORT: "0",
    MODELDEPLOY_SHUTDOWN_GRACE_MS: String(GRACE_MS),
    MODELDEPLOY_HEALTH_POLL_MS: "100",
    LOG_LEVEL: "info",
  };
}

async function startEmbedded(dataDir: string): Promise<Started> {
  const child = spawn(process.execPath, [CLI, "start"], { env: freshEnv(dataDir), stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | string | null>((resolve) => child.on("exit", (code, signal) => resolve(code ?? signal)));
  const partial = { child, output: () => `--- stdout\n${stdout}\n--- stderr\n${stderr}`, exited };
  // Registered before the banner: a start that hangs or fails is cleaned up too.
  started.push(partial as Started);
  const banner = await new Promise<string>((resolve, reject) => {
    child.stdout!.on("data", () => {
      if (stdout.includes("Press Ctrl-C")) resolve(stdout);
    });
    void exited.then((code) => reject(new Error(`modeldeploy start exited with ${code} before its banner:\n${partial.output()}`)));
  });
  const grab = (re: RegExp) => {
    const m = re.exec(banner);
    if (!m?.[1]) throw new Error(`no ${re} in banner:\n${banner}`);
    return m[1];
  };
  return Object.assign(partial, {
    banner,
    grpcAddress: grab(/gRPC:\s+(\S+)/),
    httpUrl: grab(/Connect\/gRPC-Web:\s+(\S+)/),
    gatewayUrl: grab(/inference gateway:\s+(\S+)/),
    controlUrl: grab(/runtime control:\s+(\S+)/),
    printedKey: /\n\s+(mdk_\S+)/.exec(banner)?.[1],
  });
}

/** One SIGTERM; the exit code, or a failure if it needs more than EXIT_TIMEOUT_MS. */
async function stopOnce(s: Started): Promise<number | string | null> {
  expect(s.child.kill("SIGTERM")).toBe(true);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), EXIT_TIMEOUT_MS)));
  const outcome = await Promise.race([s.exited, timeout]);
  clearTimeout(timer);
  if (outcome === "timeout") throw new Error(`modeldeploy start did not exit within ${EXIT_TIMEOUT_MS} ms of one SIGTERM:\n${s.output()}`);
  return outcome;
}

/** Kill whatever is still running of our starts (the process, then what it started) and wait until it is gone. */
async function forceCleanup(dataDir: string): Promise<void> {
  const killed: Proc[] = [];
  const kill = (p: Proc) => {
    try {
      process.kill(p.pid, "SIGKILL");
      killed.push(p);
    } catch {
      // already gone
    }
  };
  for (const s of started) {
    if (s.child.exitCode === null && s.child.signalCode === null) {
      const leftovers = processesOf(dataDir, s.child.pid);
      s.child.kill("SIGKILL");
      await s.exited;
      stillRunning(leftovers).forEach(kill);
    }
  }
  processesOf(dataDir, undefined).forEach(kill);
  // Gone, not just signalled: a next start on this data dir must not find them (PGlite's lock).
  await waitFor("killed processes to be gone", () => stillRunning(killed).length === 0, 30_000);
}

// ---- the test -------------------------------------------------------------------

let dataDir: string;
let modelDir: string;
let modelUri: string;
let modelSha: string;
let deploymentName: string | undefined;
/** Set once the first run has stopped cleanly: the second run needs its data dir (and PGlite's lock) released. */
let firstRunStopped = false;
/** The first run's secret-key file: the second must reuse it. */
let firstSecretKey = "";

const auth = (key: string) => ({ headers: { authorization: `Bearer ${key}` } });

function connectClient(s: Started): Client<typeof DeploymentService> {
  return createClient(DeploymentService, createConnectTransport({ baseUrl: s.httpUrl, httpVersion: "1.1" }));
}

/** One inference through the endpoint; checks the numbers against the reference. */
async function inferAndCheck(endpointUrl: string): Promise<void> {
  const x = [
    [1, 2, 3, 4],
    [0.5, -1, 0, 2],
  ];
  const res = await fetch(`${endpointUrl}/infer`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      inputs: [
        { name: "x", shape: [2, 4], datatype: "FP32", data: x.flat() },
        { name: "ids", shape: [2], datatype: "INT64", data: [5, 41] },
      ],
    }),
  });
  expect(res.status).toBe(200);
  const body = (await res.json()) as { outputs: Array<{ name: string; shape: number[]; datatype: string; data: number[] }> };
  const y = body.outputs.find((o) => o.name === "y")!;
  expect(y).toMatchObject({ datatype: "FP32", shape: [2, 2] });
  const expected = sampleModelReference(x).flat();
  expect(y.data).toHaveLength(expected.length);
  y.data.forEach((v, i) => expect(v).toBeCloseTo(expected[i]!, 4));
  expect(body.outputs.find((o) => o.name === "ids_out")).toMatchObject({ datatype: "INT64", shape: [2], data: [6, 42] });
}

/** Stops with one SIGTERM and checks: exit 0, no "unexpected" exits or bugs logged, nothing left running. */
async function stopAndCheck(s: Started, spawned: Proc[]): Promise<void> {
  const code = await stopOnce(s);
  const left = stillRunning(spawned);
  expect(left, `processes left after exit:\n${describeProcs(left)}\n${s.output()}`).toEqual([]);
  expect(processesOf(dataDir, undefined), "processes still using the data dir").toEqual([]);
  expect(code, s.output()).toBe(0);
  expect(s.output()).not.toContain("unhandled rejection");
  expect(s.output()).not.toContain("exited unexpectedly");
  expect(s.output()).not.toContain("second signal");
}

beforeAll(() => {
  dataDir = mkdtempSync(path.join(tmpdir(), "md-embedded-"));
  modelDir = mkdtempSync(path.join(tmpdir(), "md-embedded-model-"));
  const bytes = buildSampleModel();
  writeFileSync(path.join(modelDir, "model.onnx"), bytes);
  modelUri = pathToFileURL(path.join(modelDir, "model.onnx")).href;
  modelSha = createHash("sha256").update(bytes).digest("hex");
});

afterAll(async () => {
  // Runs even when a test failed: nothing we started stays behind.
  await forceCleanup(dataDir);
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(modelDir, { recursive: true, force: true });
  expect(existsSync(dataDir)).toBe(false);
});

describe("modeldeploy start on a fresh machine (embedded Postgres and nats-server)", () => {
  it("starts, deploys and serves a model, and stops cleanly with one SIGTERM", async () => {
    const s = await startEmbedded(dataDir);
    try {
      // The banner says where everything is, and that both are embedded.
      expect(s.banner).toContain(`embedded PGlite in ${path.join(dataDir, "postgres")}`);
      expect(s.banner).toMatch(/queue:\s+embedded nats-server \(nats:\/\/127\.0\.0\.1:\d+\)/);
      expect(s.grpcAddress).toMatch(/^127\.0\.0\.1:\d+$/);
      expect(s.httpUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(s.gatewayUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+/);
      const key = s.printedKey!;
      expect(key, s.banner).toMatch(/^mdk_\S+$/);
      const keyFile = path.join(dataDir, "bootstrap-key");
      expect(readFileSync(keyFile, "utf8").trim()).toBe(key);
      expect(statSync(keyFile).mode & 0o777).toBe(0o600);
      // The key that seals model tokens, made on first start, readable by its owner only.
      const secretKeyFile = path.join(dataDir, "secret-key");
      expect(Buffer.from(readFileSync(secretKeyFile, "utf8").trim(), "base64")).toHaveLength(32);
      expect(statSync(secretKeyFile).mode & 0o777).toBe(0o600);
      firstSecretKey = readFileSync(secretKeyFile, "utf8");
      expect(existsSync(path.join(dataDir, "postgres"))).toBe(true);
      expect(existsSync(path.join(dataDir, "nats"))).toBe(true);

      // Deploy over Connect with the bootstrap key, and watch it to RUNNING.
      const client = connectClient(s);
      const created = await client.createDeployment(
        {
          model: { name: "acme/tiny-linear", revision: "1", uri: modelUri, sha256: modelSha },
          scaling: { minReplicas: 1, maxReplicas: 1 },
        },
        auth(key),
      );
      const name = created.deployment!.name;
      expect(name).toMatch(/^tiny-linear-[0-9a-z]+$/);
      expect(created.deployment!.state).toBe(DeploymentState.PENDING);
      deploymentName = name;

      const events: DeploymentEvent[] = [];
      const ac = new AbortController();
      const watchTimer = setTimeout(
        () =>
          ac.abort(
            new Error(
              `no RUNNING within 90 s; events: ${events.map((e) => `${EventType[e.type]}/${DeploymentState[e.deployment?.state ?? 0]}`).join(", ")}\n${s.output()}`,
            ),
          ),
        90_000,
      );
      try {
        for await (const e of client.watchDeployment({ name }, { ...auth(key), signal: ac.signal })) {
          events.push(e);
          if (e.deployment?.state === DeploymentState.FAILED) throw new Error(`deploy failed: ${e.deployment.failure?.message}\n${s.output()}`);
          if (e.deployment?.state === DeploymentState.RUNNING && e.type === EventType.TASK_FINISHED) break;
        }
      } finally {
        clearTimeout(watchTimer);
        ac.abort();
      }
      expect(events[0]!.type).toBe(EventType.SNAPSHOT);
      const last = events.at(-1)!;
      expect(last.deployment!.state).toBe(DeploymentState.RUNNING);
      const seqs = events.map((e) => Number(e.sequence));
      for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBe(seqs[i - 1]! + 1);

      const d = await client.getDeployment({ name }, auth(key));
      expect(d.state).toBe(DeploymentState.RUNNING);
      expect(d.instances).toMatchObject({ desired: 1, ready: 1 });
      expect(d.endpointUrl.startsWith(s.gatewayUrl)).toBe(true);
      await inferAndCheck(d.endpointUrl);

      // What runs for this data dir: PGlite, nats-server and the model server, all by pid.
      const spawned = processesOf(dataDir, s.child.pid);
      const has = (what: string) => spawned.some((p) => p.cmd.includes(what));
      expect(has("embedded-postgres-main"), describeProcs(spawned)).toBe(true);
      expect(has("nats-server"), describeProcs(spawned)).toBe(true);
      expect(
        spawned.filter((p) => p.cmd.includes("model-server")),
        describeProcs(spawned),
      ).toHaveLength(1);

      await stopAndCheck(s, spawned);
      firstRunStopped = true;
    } finally {
      await forceCleanup(dataDir);
    }
  });

  it("starts again on the same data dir with the deployment still there and serving", async () => {
    expect(firstRunStopped && deploymentName, "the first run did not deploy and stop cleanly").toBeTruthy();
    const name = deploymentName!;
    const s = await startEmbedded(dataDir);
    try {
      // The database already has a key: none is printed, the saved one works.
      expect(s.printedKey).toBeUndefined();
      expect(s.banner).toContain(`embedded PGlite in ${path.join(dataDir, "postgres")}`);
      expect(s.banner).toMatch(/queue:\s+embedded nats-server/);
      const key = readFileSync(path.join(dataDir, "bootstrap-key"), "utf8").trim();
      // The same sealing key as the first run: tokens stored then still open.
      expect(readFileSync(path.join(dataDir, "secret-key"), "utf8")).toBe(firstSecretKey);
      const client = connectClient(s);
      // Without a key: pointed to the bootstrap key, not to `keys create` (which needs DATABASE_URL).
      expect(s.banner).toContain(`API key: the one printed on first start, saved in ${path.join(dataDir, "bootstrap-key")}`);
      const noKey = await client.getDeployment({ name }).catch((e: unknown) => e);
      expect(noKey).toBeInstanceOf(ConnectError);
      expect((noKey as ConnectError).rawMessage).toContain("saved in ");
      expect((noKey as ConnectError).rawMessage).toContain("bootstrap-key; `npx modeldeploy login` saves it for the CLI");
      expect((noKey as ConnectError).rawMessage).not.toContain("keys create");

      // The runtime brings the replica back; the observer records it (and the new gateway address).
      let seen: Deployment | undefined;
      const d = await waitFor(
        `${name} RUNNING with a ready replica behind the new gateway`,
        async () => {
          seen = await client.getDeployment({ name }, auth(key));
          return seen.state === DeploymentState.RUNNING && seen.instances?.ready === 1 && seen.endpointUrl.startsWith(s.gatewayUrl) ? seen : undefined;
        },
        60_000,
        100,
      ).catch((err: unknown) => {
        throw new Error(
          `${String(err)}; last seen: state ${DeploymentState[seen?.state ?? 0]}, instances ${JSON.stringify(seen?.instances)}, endpoint "${seen?.endpointUrl}"\n${s.output()}`,
        );
      });
      expect(d.instances).toMatchObject({ desired: 1, ready: 1 });
      expect(d.activeTaskId).toBe("");
      expect((await client.listDeployments({}, auth(key))).deployments.map((x) => x.name)).toEqual([name]);
      await inferAndCheck(d.endpointUrl);

      const spawned = processesOf(dataDir, s.child.pid);
      expect(
        spawned.filter((p) => p.cmd.includes("model-server")),
        describeProcs(spawned),
      ).toHaveLength(1);
      await stopAndCheck(s, spawned);
    } finally {
      await forceCleanup(dataDir);
    }
  });
});
