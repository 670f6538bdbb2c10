// Starts the real all-in-one process (`modeldeploy start`) against the test's
// own database and stream, and stops it when the test is done.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { jetstreamManager } from "@nats-io/jetstream";
import { connectNats } from "../../src/queue/nats.js";
import { randomName, TEST_SECRET_KEY } from "./services.js";

export const ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const CLI = path.join(ROOT, "bin/modeldeploy.js");

export interface RunningSystem {
  child: ChildProcess;
  grpcAddress: string;
  httpUrl: string;
  gatewayUrl: string;
  controlUrl: string;
  apiKey: string;
  dataDir: string;
  env: Record<string, string>;
  output(): string;
  /** SIGTERM, then the exit code. */
  stop(): Promise<number | null>;
}

/** The environment of a test's `modeldeploy start`: its own stream, data directory and free ports. */
export function systemEnv(o: { databaseUrl: string; natsUrl: string; dataDir: string; env?: Record<string, string> }): Record<string, string> {
  return {
    ...(process.env as Record<string, string>),
    DATABASE_URL: o.databaseUrl,
    NATS_URL: o.natsUrl,
    MODELDEPLOY_NATS_STREAM: randomName("MDE2E").toUpperCase(),
    MODELDEPLOY_NATS_PREFIX: randomName("mde2e"),
    MODELDEPLOY_DATA_DIR: o.dataDir,
    MODELDEPLOY_SECRET_KEY: TEST_SECRET_KEY,
    MODELDEPLOY_GRPC_PORT: "0",
    MODELDEPLOY_HTTP_PORT: "0",
    MODELDEPLOY_GATEWAY_PORT: "0",
    MODELDEPLOY_RUNTIME_CONTROL_PORT: "0",
    MODELDEPLOY_SHUTDOWN_GRACE_MS: "5000",
    MODELDEPLOY_HEALTH_POLL_MS: "100",
    LOG_LEVEL: "warn",
    ...o.env,
  };
}

export async function startSystem(o: { databaseUrl: string; natsUrl: string; env?: Record<string, string> }): Promise<RunningSystem> {
  const dataDir = mkdtempSync(path.join(tmpdir(), "md-e2e-"));
  const env = systemEnv({ ...o, dataDir });
  const child = spawn(process.execPath, [CLI, "start"], { env, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  let stopping = false;
  const exited = new Promise<number | null>((resolve) =>
    child.on("exit", (code) => {
      // An unexpected exit is a bug: show what the process said.
      if (!stopping) process.stderr.write(`modeldeploy start exited unexpectedly (${code}):\n${stdout}\n${stderr}\n`);
      resolve(code);
    }),
  );
  const stop = async () => {
    stopping = true;
    if (child.exitCode === null) child.kill("SIGTERM");
    const code = await exited;
    rmSync(dataDir, { recursive: true, force: true });
    // The process made its own stream: leave none behind on the shared server.
    const nc = await connectNats(o.natsUrl, "modeldeploy-test-cleanup");
    await (await jetstreamManager(nc)).streams.delete(env["MODELDEPLOY_NATS_STREAM"]!).catch(() => {});
    await nc.drain();
    return code;
  };
  try {
    const banner = await new Promise<string>((resolve, reject) => {
      const check = () => {
        if (stdout.includes("Press Ctrl-C")) resolve(stdout);
      };
      child.stdout!.on("data", check);
      exited.then((code) => reject(new Error(`modeldeploy start exited with ${code}:\n${stdout}\n${stderr}`)), reject);
    });
    const grab = (re: RegExp) => {
      const m = re.exec(banner);
      if (!m?.[1]) throw new Error(`no ${re} in banner:\n${banner}`);
      return m[1];
    };
    return {
      child,
      grpcAddress: grab(/gRPC:\s+(\S+)/),
      httpUrl: grab(/Connect\/gRPC-Web:\s+(\S+)/),
      gatewayUrl: grab(/inference gateway:\s+(\S+)/),
      controlUrl: grab(/runtime control:\s+(\S+)/),
      apiKey: grab(/\n\s+(mdk_\S+)/),
      dataDir,
      env,
      output: () => stdout + stderr,
      stop,
    };
  } catch (err) {
    // A start that fails (or a banner without what a test needs) leaves
    // nothing running behind it.
    await stop();
    throw err;
  }
}

/** Runs the CLI to completion. */
export function runCli(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}
