// @ts-check
// A well-behaved API client in its own process (started by steady-client.ts):
// it calls one method in a loop on each port it is given, one call in flight
// per port, on connections it keeps, each call with a deadline, and prints
// its counts as JSON lines on stdout (a last one with "final": true after
// "stop" on stdin or SIGTERM). Plain JavaScript so that it runs as it is,
// without a build; it needs nothing but @grpc/grpc-js and fetch.
//
// argv[2]: {"grpcAddress"?: "host:port", "httpUrl"?: "http://host:port",
//           "apiKey"?: string, "deployment"?: string,
//           "intervalMs"?: number, "deadlineMs"?: number}
// With apiKey and deployment it calls GetDeployment (gRPC, and Connect JSON);
// without, grpc.health.v1 Check and GET /healthz.
import * as grpc from "@grpc/grpc-js";

const cfg = JSON.parse(process.argv[2] ?? "{}");
const intervalMs = cfg.intervalMs ?? 20;
const deadlineMs = cfg.deadlineMs ?? 10_000;
const authed = typeof cfg.apiKey === "string" && typeof cfg.deployment === "string";

/** @param {string} s */
function encodeName(s) {
  const bytes = Buffer.from(s, "utf8");
  const len = [];
  let n = bytes.length;
  while (n > 0x7f) {
    len.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  len.push(n);
  return Buffer.concat([Buffer.from([0x0a, ...len]), bytes]);
}

function newStats() {
  return { ok: 0, failed: 0, errors: /** @type {string[]} */ ([]), latencies: /** @type {number[]} */ ([]) };
}
/** @typedef {ReturnType<typeof newStats>} Stats */

/** @param {Stats} s */
function summary(s) {
  const sorted = [...s.latencies].sort((a, b) => a - b);
  const at = (/** @type {number} */ q) => (sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]);
  return {
    ok: s.ok,
    failed: s.failed,
    errors: s.errors,
    p50Ms: Math.round(at(0.5) * 10) / 10,
    p99Ms: Math.round(at(0.99) * 10) / 10,
    maxMs: Math.round((sorted.at(-1) ?? 0) * 10) / 10,
  };
}

let stopping = false;
const sleep = (/** @type {number} */ ms) => new Promise((r) => setTimeout(r, ms));

/**
 * @param {Stats} stats
 * @param {() => Promise<void>} call
 */
async function loop(stats, call) {
  while (!stopping) {
    const t0 = performance.now();
    try {
      await call();
      stats.ok++;
    } catch (e) {
      stats.failed++;
      if (stats.errors.length < 20) stats.errors.push(String(e instanceof Error ? e.message : e).slice(0, 300));
    }
    if (stats.latencies.length < 200_000) stats.latencies.push(performance.now() - t0);
    await sleep(intervalMs);
  }
}

/** @type {Record<string, Stats>} */
const all = {};
const loops = [];

if (typeof cfg.grpcAddress === "string") {
  const path = authed ? "/modeldeploy.v1.DeploymentService/GetDeployment" : "/grpc.health.v1.Health/Check";
  const identity = (/** @type {Buffer} */ b) => b;
  const Client = grpc.makeGenericClientConstructor(
    {
      call: {
        path,
        requestStream: false,
        responseStream: false,
        requestSerialize: identity,
        requestDeserialize: identity,
        responseSerialize: identity,
        responseDeserialize: identity,
      },
    },
    "Steady",
  );
  const client = new Client(cfg.grpcAddress, grpc.credentials.createInsecure());
  const body = authed ? encodeName(cfg.deployment) : Buffer.alloc(0);
  const md = new grpc.Metadata();
  if (authed) md.set("authorization", `Bearer ${cfg.apiKey}`);
  const stats = (all.grpc = newStats());
  const call = () =>
    new Promise((resolve, reject) => {
      /** @type {any} */ (client).call(body, md, { deadline: Date.now() + deadlineMs }, (/** @type {any} */ err) =>
        err ? reject(new Error(`${grpc.status[err.code] ?? err.code}: ${err.details}`)) : resolve(undefined),
      );
    });
  loops.push(loop(stats, /** @type {() => Promise<void>} */ (call)).finally(() => client.close()));
}

if (typeof cfg.httpUrl === "string") {
  const stats = (all.http = newStats());
  const call = async () => {
    const init = authed
      ? {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${cfg.apiKey}` },
          body: JSON.stringify({ name: cfg.deployment }),
        }
      : { method: "GET" };
    const url = authed ? `${cfg.httpUrl}/modeldeploy.v1.DeploymentService/GetDeployment` : `${cfg.httpUrl}/healthz`;
    const res = await fetch(url, { ...init, signal: AbortSignal.timeout(deadlineMs) });
    const text = await res.text();
    if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${text.slice(0, 200)}`);
  };
  loops.push(loop(stats, call));
}

const report = (final = false) => {
  /** @type {Record<string, unknown>} */
  const out = { final };
  for (const [k, s] of Object.entries(all)) out[k] = summary(s);
  process.stdout.write(`${JSON.stringify(out)}\n`);
};
const ticker = setInterval(report, 200);

const stop = async () => {
  if (stopping) return;
  stopping = true;
  clearInterval(ticker);
  await Promise.all(loops);
  report(true);
  process.exit(0);
};
process.on("SIGTERM", () => void stop());
process.stdin.on("data", (d) => {
  if (d.toString().includes("stop")) void stop();
});
process.stdin.on("end", () => void stop());
