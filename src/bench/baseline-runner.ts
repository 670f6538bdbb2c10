// Starts the baseline scripts (src/bench/baselines/, compiled to dist/) as
// processes of their own.
import path from "node:path";
import { startProcess, type Proc } from "./processes.js";
import { DIST } from "./services.js";

export type BaselineScript = "grpc-get-server" | "http-get-server" | "fanout-server" | "pg-create-loop" | "task-writes-loop" | "jetstream" | "idle-node";

export function startBaseline(script: BaselineScript, args: object): Proc {
  return startProcess(script, process.execPath, [path.join(DIST, "bench/baselines", `${script}.js`), JSON.stringify(args)]);
}

/** A server baseline: resolves once it listens, with its port. */
export async function startBaselineServer(script: BaselineScript, args: object): Promise<{ proc: Proc; port: number }> {
  const proc = startBaseline(script, args);
  const { port } = await proc.json<{ port: number }>((o) => o["ready"] === true, 30_000);
  return { proc, port };
}

/** A one-shot baseline: its result. */
export async function runBaseline<T>(script: BaselineScript, args: object, timeoutMs = 300_000): Promise<T> {
  const proc = startBaseline(script, args);
  try {
    return (await proc.json<{ result: T }>((o) => "result" in o, timeoutMs)).result;
  } finally {
    await proc.stop();
  }
}
