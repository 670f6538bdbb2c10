// The parts started separately, as in production: migrate, keys create,
// runtime, api and two workers, driven through the CLI.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jetstreamManager } from "@nats-io/jetstream";
import { buildSampleModel } from "../../src/onnx/sample-model.js";
import { connectNats } from "../../src/queue/nats.js";
import { createTestDatabase, NATS_URL, randomName, TEST_SECRET_KEY, type TestDatabase } from "../helpers/services.js";
import { CLI, runCli } from "../helpers/system.js";

interface Proc {
  child: ChildProcess;
  lines: Array<Record<string, unknown>>;
  exited: Promise<number | null>;
}

let tdb: TestDatabase;
let dataDir: string;
let env: Record<string, string>;
const procs: Proc[] = [];

/** Starts `modeldeploy <role>` and waits for a JSON log line with that msg. */
async function startRole(role: string, readyMsg: string): Promise<Proc & { ready: Record<string, unknown> }> {
  const child = spawn(process.execPath, [CLI, role], { env, stdio: ["ignore", "pipe", "pipe"] });
  const lines: Array<Record<string, unknown>> = [];
  let err = "";
  const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
  const proc: Proc = { child, lines, exited };
  procs.push(proc);
  const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
    let buf = "";
    child.stderr!.on("data", (d: Buffer) => {
      err += d.toString();
      buf += d.toString();
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try {
          const entry = JSON.parse(line) as Record<string, unknown>;
          lines.push(entry);
          if (entry["msg"] === readyMsg) resolve(entry);
        } catch {
          // not a log line
        }
      }
    });
    exited.then((code) => reject(new Error(`${role} exited with ${code}: ${err}`)), reject);
  });
  return { ...proc, ready };
}

beforeAll(async () => {
  tdb = await createTestDatabase({ migrate: false });
  dataDir = mkdtempSync(path.join(tmpdir(), "md-procs-"));
  env = {
    ...(process.env as Record<string, string>),
    DATABASE_URL: tdb.url,
    NATS_URL,
    MODELDEPLOY_NATS_STREAM: randomName("MDPROC").toUpperCase(),
    MODELDEPLOY_NATS_PREFIX: randomName("mdproc"),
    MODELDEPLOY_DATA_DIR: dataDir,
    MODELDEPLOY_SECRET_KEY: TEST_SECRET_KEY,
    MODELDEPLOY_GRPC_PORT: "0",
    MODELDEPLOY_HTTP_PORT: "0",
    MODELDEPLOY_GATEWAY_PORT: "0",
    MODELDEPLOY_RUNTIME_CONTROL_PORT: "0",
    MODELDEPLOY_HEALTH_POLL_MS: "100",
    MODELDEPLOY_SHUTDOWN_GRACE_MS: "5000",
    LOG_LEVEL: "info",
  };
});

afterAll(async () => {
  for (const p of procs.reverse()) {
    if (p.child.exitCode === null) p.child.kill("SIGTERM");
    await p.exited;
  }
  const nc = await connectNats(NATS_URL, "modeldeploy-test");
  await (await jetstreamManager(nc)).streams.delete(env["MODELDEPLOY_NATS_STREAM"]!).catch(() => {});
  await nc.drain();
  rmSync(dataDir, { recursive: true, force: true });
  await tdb?.drop();
});

describe("separate processes", () => {
  it("refuses to start on an unmigrated database, and rejects bad settings", async () => {
    const api = await runCli(["api"], env);
    expect(api.code).toBe(1);
    expect(api.stderr).toContain("not migrated");
    expect(api.stderr).toContain("modeldeploy migrate");
    const bad = await runCli(["worker"], { ...env, MODELDEPLOY_GRPC_PORT: "99999", MODELDEPLOY_RUNTIME: "docker" });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("MODELDEPLOY_GRPC_PORT=99999");
    expect(bad.stderr).toContain("MODELDEPLOY_RUNTIME=docker");
    const noDb = await runCli(["worker"], { ...env, DATABASE_URL: "" });
    expect(noDb.stderr).toContain("DATABASE_URL is required");
  });

  it("deploys and deletes through runtime, api and two workers with the CLI", async () => {
    expect((await runCli(["migrate"], env)).stdout).toContain("applied");
    expect((await runCli(["migrate"], env)).stdout).toContain("already up to date");
    const badKey = await runCli(["keys", "create", "--workspace", "Bad Name"], env);
    expect(badKey.code).toBe(1);
    const key = await runCli(["keys", "create", "--workspace", "team-a", "--scopes", "deployments:read,deployments:write"], env);
    expect(key.code).toBe(0);
    expect(key.stdout).toMatch(/^mdk_\S+\n$/);

    const runtime = await startRole("runtime", "local runtime listening");
    const control = String(runtime.ready["control"]);
    env = { ...env, MODELDEPLOY_RUNTIME_CONTROL_URL: control };
    const api = await startRole("api", "connect server listening");
    await startRole("worker", "worker started");
    await startRole("worker", "worker started");

    const client = { ...env, MODELDEPLOY_URL: `http://127.0.0.1:${String(api.ready["port"])}`, MODELDEPLOY_API_KEY: key.stdout.trim() };
    const model = path.join(dataDir, "model.onnx");
    writeFileSync(model, buildSampleModel());
    const deploy = await runCli(["deploy", "--model", "team-a/linear", "--uri", model, "--suffix", "prod", "--replicas", "2", "--wait"], client);
    expect(deploy.stderr).toBe("");
    expect(deploy.code).toBe(0);
    expect(deploy.stdout).toContain("linear-prod  RUNNING  rev 1  replicas 2/2 ready");
    const endpoint = /(http:\/\/\S+\/team-a\/v2\/models\/linear-prod)/.exec(deploy.stdout)![1]!;
    expect((await fetch(`${endpoint}/ready`)).status).toBe(200);

    const status = await runCli(["status", "linear-prod", "--json"], client);
    expect(JSON.parse(status.stdout)).toMatchObject({ status: "TASK_STATUS_COMPLETED", phase: "TASK_PHASE_DONE" });
    const again = await runCli(["deploy", "--model", "team-a/linear", "--uri", model, "--suffix", "prod"], client);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("specify another suffix");

    const del = await runCli(["delete", "linear-prod", "--wait"], client);
    expect(del.code).toBe(0);
    expect(del.stdout).toContain("DELETED");
    expect((await fetch(`${endpoint}/ready`)).status).toBe(404);
  });
});
