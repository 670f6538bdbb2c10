// Model server entry point: serves one ONNX model over the Open Inference
// Protocol. Prints one line on stdout once listening, and one once the model
// is loaded and /v2/health/ready answers 200 (so a supervisor need not poll):
//   {"event":"listening","port":<port>}
//   {"event":"ready","port":<port>}
// and logs JSON lines on stderr. Exit codes: 0 after SIGTERM/SIGINT,
// 1 when the model cannot be loaded or the port cannot be bound, 2 on bad usage.
import { stat } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { createLogger, type Logger } from "../log.js";
import { parseModelServerArgs, USAGE, UsageError, type ModelServerArgs } from "./args.js";
import type { LoadedModel } from "./model.js";
import { createModelServer } from "./server.js";

/** How long in-flight requests may take to finish after SIGTERM before connections are cut. */
const SHUTDOWN_GRACE_MS = 5_000;

async function main(): Promise<void> {
  let args: ModelServerArgs;
  try {
    args = parseModelServerArgs(process.argv.slice(2));
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`model-server: ${err.message}\n${USAGE}\n`);
    process.exit(2);
  }
  // onnxruntime (a large native library) loads while the socket is bound; nothing else waits for it.
  const modelModule = import("./model.js");
  // Its failure is reported where it is awaited, as a failed model load.
  modelModule.catch(() => {});
  const logger = createLogger({ base: { component: "model-server", model: args.name } });

  const modelPath = await resolveModelFile(args.model).catch((err: unknown) => fail(logger, (err as Error).message));
  const { server, setModel } = createModelServer({
    name: args.name,
    version: args.modelVersion,
    maxBatchSize: args.maxBatchSize,
    maxBodyBytes: args.maxBodyBytes,
    logger,
  });

  let model: LoadedModel | undefined;
  let shuttingDown = false;
  const shutdown = (why: string) => {
    if (shuttingDown) {
      logger.warn("second shutdown request, exiting now", { why });
      process.exit(1);
    }
    shuttingDown = true;
    logger.info("shutting down", { why });
    const force = setTimeout(() => server.closeAllConnections(), SHUTDOWN_GRACE_MS);
    server.close(() => {
      clearTimeout(force);
      Promise.resolve(model?.release())
        .catch((err: unknown) => logger.warn("releasing the session failed", { err }))
        .finally(() => process.exit(0));
    });
    server.closeIdleConnections();
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
  if (args.exitOnStdinClose) {
    process.stdin.on("close", () => shutdown("stdin closed"));
    process.stdin.resume();
  }

  // Listen before loading so that liveness answers while a large model loads.
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(args.port, args.host, () => {
      server.off("error", reject);
      resolve();
    });
  }).catch((err: unknown) => fail(logger, `cannot listen on ${args.host}:${args.port}: ${(err as Error).message}`));
  const { port } = server.address() as AddressInfo;
  process.stdout.write(JSON.stringify({ event: "listening", port }) + "\n");
  logger.info("listening", { host: args.host, port });

  const started = Date.now();
  try {
    const { loadModel } = await modelModule;
    model = await loadModel(modelPath, { threads: args.threads });
  } catch (err) {
    fail(logger, `failed to load model: ${(err as Error).message}`);
  }
  if (shuttingDown) return;
  setModel(model);
  process.stdout.write(JSON.stringify({ event: "ready", port }) + "\n");
  logger.info("model loaded", {
    path: modelPath,
    ms: Date.now() - started,
    inputs: model.inputs.map((i) => i.name),
    outputs: model.outputs.map((o) => o.name),
  });
}

/** A directory stands for the model.onnx inside it. */
async function resolveModelFile(path: string): Promise<string> {
  const info = await stat(path).catch(() => undefined);
  if (!info) throw new Error(`model file ${path} does not exist`);
  if (!info.isDirectory()) return path;
  const inside = join(path, "model.onnx");
  if (!(await stat(inside).catch(() => undefined))?.isFile()) {
    throw new Error(`model path ${path} is a directory without a model.onnx`);
  }
  return inside;
}

function fail(logger: Logger, message: string): never {
  logger.error(message);
  process.exit(1);
}

main().catch((err: unknown) => {
  process.stderr.write(`model-server: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
