// The model server started by hand, the way the local runtime starts a
// replica (the same command and arguments): the baseline beneath
// create → RUNNING, delete → DELETED, and a model server's idle memory.
import { createHash } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { buildSampleModel } from "../onnx/sample-model.js";
import { nowMs, sleep } from "./client.js";
import { startProcess, type Proc } from "./processes.js";
import { DIST } from "./services.js";

export interface SampleModel {
  dir: string;
  path: string;
  uri: string;
  sha256: string;
}

export function writeSampleModel(): SampleModel {
  const dir = mkdtempSync(path.join(tmpdir(), "md-bench-model-"));
  const bytes = buildSampleModel();
  const file = path.join(dir, "model.onnx");
  writeFileSync(file, bytes);
  return { dir, path: file, uri: pathToFileURL(file).href, sha256: createHash("sha256").update(bytes).digest("hex") };
}

export function startModelServer(model: SampleModel): Proc {
  return startProcess("model-server", process.execPath, [
    path.join(DIST, "model-server/main.js"),
    "--model",
    model.path,
    "--name",
    "bench-sample",
    "--model-version",
    "1",
    "--host",
    "127.0.0.1",
    "--port",
    "0",
    "--threads",
    "0",
    "--max-batch-size",
    "0",
    "--exit-on-stdin-close",
  ]);
}

/** Start → /v2/health/ready answers 200, polled every 5 ms; the server is left running. */
export async function startModelServerReady(model: SampleModel): Promise<{ proc: Proc; readyMs: number }> {
  const t0 = nowMs();
  const proc = startModelServer(model);
  const { port } = await proc.json<{ port: number }>((o) => o["event"] === "listening", 60_000);
  for (;;) {
    const ok = await fetch(`http://127.0.0.1:${port}/v2/health/ready`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return { proc, readyMs: nowMs() - t0 };
    if (proc.child.exitCode !== null) throw new Error(`model server exited:\n${proc.output()}`);
    await sleep(5);
  }
}

/** SIGTERM → exit, ms. */
export async function stopModelServerTimed(proc: Proc): Promise<number> {
  const t0 = nowMs();
  await proc.stop();
  return nowMs() - t0;
}
