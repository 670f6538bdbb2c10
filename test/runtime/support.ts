// Shared helpers of the runtime tests: condition polling, temp dirs, the
// compiled model server (tests run after `npm run build`), a sample
// inference request, and the RuntimeError a call rejects with.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { expect } from "vitest";
import { RuntimeError, type RevisionSpec } from "../../src/runtime/driver.js";

export const MODEL_SERVER_MAIN = fileURLToPath(new URL("../../dist/model-server/main.js", import.meta.url));

export function requireBuiltModelServer(): string[] {
  if (!existsSync(MODEL_SERVER_MAIN)) {
    throw new Error(`${MODEL_SERVER_MAIN} is missing: run \`npm run build\` before these tests`);
  }
  return [process.execPath, MODEL_SERVER_MAIN];
}

/** Polls `probe` until it returns a value other than undefined/false, or fails after timeoutMs. */
export async function waitFor<T>(
  what: string,
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 20_000,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `modeldeploy-${prefix}-`));
}

export interface SpawnedModelServer {
  child: ChildProcess;
  /** Set once listening. */
  port: Promise<number>;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  output(): string;
}

export function spawnModelServer(args: string[], stdin: "ignore" | "pipe" = "ignore"): SpawnedModelServer {
  const [node, main] = requireBuiltModelServer() as [string, string];
  const child = spawn(node, [main, ...args], { stdio: [stdin, "pipe", "pipe"] });
  const { stdout, stderr } = child;
  if (!stdout || !stderr) throw new Error("spawn gave no stdout/stderr pipes");
  const lines: string[] = [];
  let resolvePort: (port: number) => void = () => {};
  const port = new Promise<number>((resolve) => (resolvePort = resolve));
  createInterface({ input: stdout }).on("line", (line) => {
    lines.push(line);
    const msg = JSON.parse(line) as { event?: string; port?: number };
    if (msg.event === "listening" && msg.port) resolvePort(msg.port);
  });
  createInterface({ input: stderr }).on("line", (line) => lines.push(line));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("close", (code, signal) => resolve({ code, signal })),
  );
  return { child, port, exit, output: () => lines.join("\n") };
}

export async function stopProcess(server: SpawnedModelServer): Promise<void> {
  if (server.child.exitCode === null && server.child.signalCode === null) server.child.kill("SIGKILL");
  await server.exit;
}

/** A port nothing listens on (just released by the OS). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export function revisionSpec(overrides: Partial<RevisionSpec> & { uri: string; sha256?: string }): RevisionSpec {
  const { uri, sha256 = "", ...rest } = overrides;
  return {
    deploymentUid: "dep-uid-1",
    workspace: "ws",
    deploymentName: "sample-abc",
    revision: 1,
    replicas: 1,
    model: { name: "sample", revision: "1", uri, sha256, task: "regression", type: "MODEL_TYPE_LEGACY", runtime: "onnx" },
    resources: { acceleratorType: "", acceleratorCount: 0, cpu: 1, memoryBytes: 256 * 1024 * 1024, threadCount: 1, maxBatchSize: 8 },
    ...rest,
  };
}

/** One sample-model inference request (x of 4 floats, one id). */
export const inferBody = JSON.stringify({
  inputs: [
    { name: "x", shape: [1, 4], datatype: "FP32", data: [1, 2, 3, 4] },
    { name: "ids", shape: [1], datatype: "INT64", data: [5] },
  ],
});

/** The RuntimeError the promise rejects with (fails the test if it resolves, or rejects with anything else). */
export async function rejection(promise: Promise<unknown>): Promise<RuntimeError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(RuntimeError);
  return err as RuntimeError;
}
