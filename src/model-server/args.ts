// Command-line options of the model server.
import { parseArgs } from "node:util";

export interface ModelServerArgs {
  model: string;
  name: string;
  /** Reported as the model's version in metadata and responses. */
  modelVersion: string;
  host: string;
  port: number;
  /** onnxruntime intra-op threads; 0 lets onnxruntime decide. */
  threads: number;
  /** 0 = no limit. */
  maxBatchSize: number;
  maxBodyBytes: number;
  /** Exit when stdin closes, so a supervisor that dies (even by SIGKILL) takes its children along. */
  exitOnStdinClose: boolean;
}

export const USAGE = `usage: model-server --model <path.onnx> --name <model name> [--model-version 1]
       [--host 127.0.0.1] [--port 0] [--threads 0] [--max-batch-size 0]
       [--max-body-bytes 67108864] [--exit-on-stdin-close]`;

export class UsageError extends Error {
  override readonly name = "UsageError";
}

export function parseModelServerArgs(argv: readonly string[]): ModelServerArgs {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      options: {
        model: { type: "string" },
        name: { type: "string" },
        "model-version": { type: "string", default: "1" },
        host: { type: "string", default: "127.0.0.1" },
        port: { type: "string", default: "0" },
        threads: { type: "string", default: "0" },
        "max-batch-size": { type: "string", default: "0" },
        "max-body-bytes": { type: "string", default: String(64 * 1024 * 1024) },
        "exit-on-stdin-close": { type: "boolean", default: false },
      },
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (!values.model) throw new UsageError("--model is required");
  if (!values.name) throw new UsageError("--name is required");
  return {
    model: values.model,
    name: values.name,
    modelVersion: values["model-version"],
    host: values.host,
    port: integerOption("port", values.port, 0, 65535),
    threads: integerOption("threads", values.threads, 0, 1024),
    maxBatchSize: integerOption("max-batch-size", values["max-batch-size"], 0, Number.MAX_SAFE_INTEGER),
    maxBodyBytes: integerOption("max-body-bytes", values["max-body-bytes"], 1, Number.MAX_SAFE_INTEGER),
    exitOnStdinClose: values["exit-on-stdin-close"],
  };
}

function integerOption(name: string, raw: string, min: number, max: number): number {
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`--${name} must be an integer in [${min}, ${max}], got ${JSON.stringify(raw)}`);
  }
  return n;
}
