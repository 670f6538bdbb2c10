// A well-behaved client in its own process (steady-client-child.mjs) that
// keeps calling the API while a test does something hostile; the test then
// checks that every one of its calls was served. Its own process: its
// timers and latencies do not share the event loop of an in-process server.
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

export interface SteadyClientOptions {
  /** "host:port" of the gRPC port: GetDeployment (or Health/Check) in a loop. */
  grpcAddress?: string;
  /** "http://host:port" of the Connect port: Connect JSON GetDeployment (or GET /healthz) in a loop. */
  httpUrl?: string;
  /** With deployment: call GetDeployment; without: the health endpoints. */
  apiKey?: string;
  deployment?: string;
  /** Pause between calls (default 20 ms). */
  intervalMs?: number;
  /** Each call's deadline (default 10,000 ms): a slower answer counts as a failure. */
  deadlineMs?: number;
}

export interface SteadyStats {
  ok: number;
  failed: number;
  /** The first 20 failures. */
  errors: string[];
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export interface SteadyReport {
  grpc?: SteadyStats;
  http?: SteadyStats;
}

export interface SteadyClient {
  readonly pid: number | undefined;
  /** The latest counts (updated every 200 ms). */
  latest(): SteadyReport;
  /** Resolves once every port has answered n more calls than now. */
  progressed(n: number, timeoutMs?: number): Promise<SteadyReport>;
  /** Stop calling; resolves with the final counts. */
  stop(): Promise<SteadyReport>;
}

const childPath = fileURLToPath(new URL("./steady-client-child.mjs", import.meta.url));

export async function startSteadyClient(opts: SteadyClientOptions): Promise<SteadyClient> {
  const child = spawn(process.execPath, [childPath, JSON.stringify(opts)], { stdio: ["pipe", "pipe", "pipe"] });
  let latest: SteadyReport = {};
  let final: SteadyReport | undefined;
  let stderr = "";
  let buf = "";
  const listeners = new Set<() => void>();
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  child.stdout.on("data", (d: Buffer) => {
    buf += d.toString();
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      const parsed = JSON.parse(line) as SteadyReport & { final: boolean };
      const { final: isFinal, ...report } = parsed;
      latest = report;
      if (isFinal) final = report;
      for (const l of listeners) l();
    }
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const ports = (r: SteadyReport) => [r.grpc, r.http].filter((s): s is SteadyStats => s !== undefined);
  const whenReport = (ok: (r: SteadyReport) => boolean, timeoutMs: number, what: string) =>
    new Promise<SteadyReport>((resolve, reject) => {
      const check = () => {
        if (!ok(latest)) return;
        cleanup();
        resolve(latest);
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`steady client: ${what} not within ${timeoutMs} ms; latest ${JSON.stringify(latest)}; stderr ${stderr}`));
      }, timeoutMs);
      const onExit = () => {
        cleanup();
        reject(new Error(`steady client exited: ${stderr}`));
      };
      const cleanup = () => {
        clearTimeout(timer);
        listeners.delete(check);
        child.off("exit", onExit);
      };
      listeners.add(check);
      child.once("exit", onExit);
      check();
    });
  const expected = (opts.grpcAddress !== undefined ? 1 : 0) + (opts.httpUrl !== undefined ? 1 : 0);
  // Started: every port has answered once.
  await whenReport((r) => ports(r).length === expected && ports(r).every((s) => s.ok > 0), 30_000, "a first answer").catch((e: unknown) => {
    child.kill("SIGKILL");
    throw e;
  });
  return {
    pid: child.pid,
    latest: () => latest,
    progressed(n, timeoutMs = 60_000) {
      const base = ports(latest).map((s) => s.ok);
      return whenReport((r) => ports(r).every((s, i) => s.ok >= (base[i] ?? 0) + n), timeoutMs, `${n} more answers`);
    },
    async stop() {
      if (final !== undefined) return final;
      child.stdin.end("stop\n");
      const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
      await exited;
      clearTimeout(timer);
      if (final === undefined) throw new Error(`steady client gave no final report: ${stderr}`);
      return final;
    },
  };
}
