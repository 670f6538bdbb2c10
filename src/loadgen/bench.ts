// The load generator's bench mode, in a process of its own so that the
// calls it makes cost the measured servers nothing but the calls:
//
//   node dist/loadgen/bench.js '<BenchJob as JSON>'
//
// stdout: JSON lines; the last one is {"result": …}. A watch job prints
// {"open": n} first and waits. It exits when stdin closes.
import type { BenchJob } from "./bench-jobs.js";
import { runUnary } from "./bench-unary.js";
import { runWatch } from "./bench-watch.js";

const job = JSON.parse(process.argv[2] ?? "null") as BenchJob | null;
if (!job || (job.kind !== "unary" && job.kind !== "watch")) {
  process.stderr.write('usage: bench.js \'<{"kind":"unary"|"watch", …}>\'\n');
  process.exit(2);
}
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
const line = (o: unknown) => new Promise<void>((r) => process.stdout.write(JSON.stringify(o) + "\n", () => r()));

const result = job.kind === "unary" ? await runUnary(job) : await runWatch(job, (open) => void line(open));
await line({ result });
process.exit(0);
