// Command-line options and the scale of each mode.
import { tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";

export interface BenchOptions {
  quick: boolean;
  strict: boolean;
  jsonPath: string;
  databaseUrl: string;
  natsUrl: string;
  /** Figure ids to run ("1".."13"); all when empty. */
  only: Set<string>;
  /** Alternated figure/baseline pairs per figure. */
  pairs: number;
  /** Length of one unary load sample, and its warm-up. */
  unaryMs: number;
  warmupMs: number;
  /** Calls in flight for the rate figures. */
  concurrency: number;
  drainTasks: number;
  dispatchMs: number;
  dispatchRate: number;
  fanoutStreams: number;
  /** create → RUNNING / delete → DELETED samples (each beside one bare model-server start). */
  lifecycleSamples: number;
  idleMs: number;
}

export const USAGE = "usage: npm run bench -- [--quick] [--strict] [--json PATH] [--only 1,2,…] [--pairs N]";

export function parseOptions(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): BenchOptions {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      quick: { type: "boolean", default: false },
      strict: { type: "boolean", default: false },
      json: { type: "string" },
      only: { type: "string" },
      pairs: { type: "string" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) throw new Error(USAGE);
  const quick = values.quick ?? false;
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const only = new Set(
    (values.only ?? "")
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean),
  );
  for (const id of only) if (!/^([1-9]|1[0-3])$/.test(id)) throw new Error(`--only: figure ids 1 to 13, got "${id}"\n${USAGE}`);
  const pairs = values.pairs === undefined ? (quick ? 2 : 3) : Number(values.pairs);
  if (!Number.isInteger(pairs) || pairs < 1) throw new Error(`--pairs: a whole number of 1 or more, got "${values.pairs}"\n${USAGE}`);
  return {
    quick,
    strict: values.strict ?? false,
    jsonPath: path.resolve(values.json ?? path.join(tmpdir(), `modeldeploy-bench-${stamp}.json`)),
    databaseUrl: env["DATABASE_URL"] ?? "postgres://postgres@127.0.0.1:5432/postgres",
    natsUrl: env["NATS_URL"] ?? "nats://127.0.0.1:4222",
    only,
    pairs,
    unaryMs: quick ? 1500 : 4000,
    warmupMs: quick ? 300 : 1000,
    concurrency: 64,
    drainTasks: quick ? 300 : 5000,
    dispatchMs: quick ? 2000 : 5000,
    dispatchRate: 100,
    fanoutStreams: quick ? 1000 : 10_000,
    lifecycleSamples: quick ? 3 : 8,
    idleMs: quick ? 1500 : 3000,
  };
}

export function wants(o: BenchOptions, id: string): boolean {
  return o.only.size === 0 || o.only.has(id);
}
