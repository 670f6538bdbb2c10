// `modeldeploy api` and `modeldeploy worker` (no-op runtime) as real processes
// on a private Postgres that is stopped (fast, immediate), killed and frozen
// under a steady load of creates and reads. No process dies; meanwhile calls
// fail fast with UNAVAILABLE (reason DATABASE_UNAVAILABLE); once Postgres is
// back they succeed again without restarting anything, and every task of an
// accepted create ends. A frozen Postgres answers in bounded time: by the
// caller's deadline (gRPC and Connect), else after the query timeout.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRegistry, fromBinary } from "@bufbuild/protobuf";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import { jetstreamManager } from "@nats-io/jetstream";
import pg from "pg";
import { ErrorInfoSchema, type ErrorInfo } from "../../src/gen/google/rpc/error_details_pb.js";
import { StatusSchema } from "../../src/gen/google/rpc/status_pb.js";
import { DeploymentService } from "../../src/gen/modeldeploy/v1/deployment_service_pb.js";
import { connectNats } from "../../src/queue/nats.js";
import { grpcClient, type GrpcClient } from "../helpers/grpc-client.js";
import { createDatabaseOn, startPrivatePostgres, type PrivatePostgres } from "../helpers/private-postgres.js";
import { NATS_URL, randomName, TEST_SECRET_KEY, waitFor } from "../helpers/services.js";
import { CLI, runCli } from "../helpers/system.js";

const QUERY_TIMEOUT_MS = 3000;

interface Role {
  name: string;
  child: ChildProcess;
  exited: Promise<number | null>;
  ready: Record<string, unknown>;
  /** Log lines of probe calls (request id "probe-…") and every non-rpc line. */
  lines: Array<Record<string, unknown>>;
  stderr(): string;
}

let server: PrivatePostgres;
let dbUrl: string;
let dataDir: string;
let env: Record<string, string>;
let apiKey: string;
let client: GrpcClient;
let httpUrl: string;
/** A deployment the load and the probes read. */
let readName: string;
const roles: Role[] = [];

async function startRole(role: string, readyMsg: string): Promise<Role> {
  const child = spawn(process.execPath, [CLI, role], { env, stdio: ["ignore", "ignore", "pipe"] });
  const lines: Array<Record<string, unknown>> = [];
  let tail = "";
  let buf = "";
  const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
  const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
    child.stderr!.on("data", (d: Buffer) => {
      tail = (tail + d.toString()).slice(-20_000);
      buf += d.toString();
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.includes('"msg":"rpc"') && !line.includes('"requestId":"probe-')) continue;
        try {
          const entry = JSON.parse(line) as Record<string, unknown>;
          lines.push(entry);
          if (entry["msg"] === readyMsg) resolve(entry);
        } catch {
          // not a log line
        }
      }
    });
    exited.then((code) => reject(new Error(`${role} exited with ${code}: ${tail}`)), reject);
  });
  const r: Role = { name: role, child, exited, ready, lines, stderr: () => tail };
  roles.push(r);
  return r;
}

interface Outcome {
  code: grpc.status;
  reason?: string;
  message?: string;
  ms: number;
  value?: Record<string, unknown>;
}

function errorInfo(err: grpc.ServiceError): ErrorInfo | undefined {
  const raw = err.metadata?.get("grpc-status-details-bin")[0];
  if (!(raw instanceof Buffer)) return undefined;
  const registry = createRegistry(ErrorInfoSchema);
  return fromBinary(StatusSchema, raw)
    .details.map((a) => anyUnpack(a, registry))
    .find((m) => m?.$typeName === ErrorInfoSchema.typeName) as ErrorInfo | undefined;
}

function call(method: string, request: unknown, o: { deadlineMs?: number; requestId?: string } = {}): Promise<Outcome> {
  const md = new grpc.Metadata();
  md.set("authorization", `Bearer ${apiKey}`);
  if (o.requestId !== undefined) md.set("x-request-id", o.requestId);
  const started = performance.now();
  return new Promise((resolve) => {
    (client[method] as (req: unknown, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void)(
      request,
      md,
      { deadline: Date.now() + (o.deadlineMs ?? 15_000) },
      (err, res) => {
        const ms = performance.now() - started;
        if (err) resolve({ code: err.code, reason: errorInfo(err)?.reason, message: err.details, ms });
        else resolve({ code: grpc.status.OK, ms, value: res as Record<string, unknown> });
      },
    );
  });
}

const createRequest = () => ({
  model: { name: "acme/tiny-linear", uri: "file:///nonexistent/noop.onnx" },
  resources: { cpu: 1, memory: "128Mi" },
  scaling: { minReplicas: 1, maxReplicas: 1 },
});

/** Creates and reads in a loop; counts outcomes by code and reason, keeps the task id of every accepted create. */
function startLoad(loops: number, readName: string) {
  let stopped = false;
  const outcomes = new Map<string, number>();
  const accepted: string[] = [];
  let ok = 0;
  let unavailable = 0;
  const runs = Array.from({ length: loops }, async (_, i) => {
    while (!stopped) {
      const out = i % 2 === 0 ? await call("createDeployment", createRequest()) : await call("getDeployment", { name: readName });
      const key = out.code === grpc.status.OK ? "OK" : `${grpc.status[out.code]} ${out.reason ?? ""}`;
      outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
      if (out.code === grpc.status.OK) {
        ok++;
        const task = out.value?.["task"] as { id?: string } | undefined;
        if (task?.id) accepted.push(task.id);
      } else {
        if (out.code === grpc.status.UNAVAILABLE) unavailable++;
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  });
  return {
    outcomes,
    accepted,
    counts: () => ({ ok, unavailable }),
    async stop() {
      stopped = true;
      await Promise.all(runs);
    },
  };
}

const alive = () => roles.every((r) => r.child.exitCode === null && r.child.signalCode === null);

beforeAll(async () => {
  server = await startPrivatePostgres();
  dbUrl = await createDatabaseOn(server.url, "outage");
  dataDir = mkdtempSync(path.join(tmpdir(), "md-outage-"));
  env = {
    ...(process.env as Record<string, string>),
    DATABASE_URL: dbUrl,
    NATS_URL,
    MODELDEPLOY_NATS_STREAM: randomName("MDOUT").toUpperCase(),
    MODELDEPLOY_NATS_PREFIX: randomName("mdout"),
    MODELDEPLOY_DATA_DIR: dataDir,
    MODELDEPLOY_SECRET_KEY: TEST_SECRET_KEY,
    MODELDEPLOY_GRPC_PORT: "0",
    MODELDEPLOY_HTTP_PORT: "0",
    MODELDEPLOY_RUNTIME: "noop",
    MODELDEPLOY_SHUTDOWN_GRACE_MS: "5000",
    MODELDEPLOY_SWEEP_INTERVAL_MS: "500",
    MODELDEPLOY_SWEEP_PENDING_AFTER_MS: "3000",
    // A worker whose database went away mid-task cannot give its lease back:
    // the task waits for the lease to expire, then the sweeper re-enqueues it.
    MODELDEPLOY_TASK_LEASE_MS: "3000",
    DATABASE_CONNECT_TIMEOUT_MS: "2500",
    DATABASE_STATEMENT_TIMEOUT_MS: "2000",
    DATABASE_QUERY_TIMEOUT_MS: String(QUERY_TIMEOUT_MS),
    LOG_LEVEL: "info",
  };
  expect((await runCli(["migrate"], env)).code).toBe(0);
  const key = await runCli(["keys", "create", "--workspace", "acme", "--scopes", "deployments:read,deployments:write"], env);
  expect(key.code).toBe(0);
  apiKey = key.stdout.trim();
  const api = await startRole("api", "api listening");
  await startRole("worker", "worker started");
  client = grpcClient(DeploymentService, String(api.ready["grpc"]));
  httpUrl = `http://${String(api.ready["http"])}`;
  const first = await call("createDeployment", createRequest());
  expect(first.code).toBe(grpc.status.OK);
  readName = String((first.value?.["deployment"] as { name: string }).name);
});

afterAll(async () => {
  client?.close();
  for (const r of roles.reverse()) {
    if (r.child.exitCode === null) r.child.kill("SIGTERM");
    await r.exited;
  }
  const nc = await connectNats(NATS_URL, "modeldeploy-test");
  await (await jetstreamManager(nc)).streams.delete(env["MODELDEPLOY_NATS_STREAM"]!).catch(() => {});
  await nc.drain();
  rmSync(dataDir, { recursive: true, force: true });
  await server?.destroy();
});

describe("Postgres outages under load, separate processes", () => {
  it("keeps serving through stops and a kill of Postgres, failing fast meanwhile", async () => {
    const load = startLoad(8, readName);
    const recoveries: number[] = [];
    try {
      for (const fault of ["fast", "immediate", "kill"] as const) {
        const okBefore = load.counts().ok;
        await waitFor(`load served before the ${fault} outage`, () => load.counts().ok > okBefore + 30, 30_000);
        if (fault === "kill") await server.kill();
        else await server.stop(fault);
        const failedBefore = load.counts().unavailable;
        await waitFor(`calls fail during the ${fault} outage`, () => load.counts().unavailable > failedBefore + 20, 30_000);
        const down = await call("getDeployment", { name: readName });
        expect(down).toMatchObject({ code: grpc.status.UNAVAILABLE, reason: "DATABASE_UNAVAILABLE" });
        expect(down.ms).toBeLessThan(2000);
        expect(alive()).toBe(true);
        await server.start();
        const back = performance.now();
        await waitFor("a call succeeds again", async () => (await call("getDeployment", { name: readName })).code === grpc.status.OK, 15_000, 10);
        recoveries.push(Math.round(performance.now() - back));
      }
    } finally {
      await load.stop();
    }
    console.log("outcomes", Object.fromEntries(load.outcomes), "first OK after restart (ms)", recoveries);
    // Nothing but OK, or UNAVAILABLE for the database.
    expect([...load.outcomes.keys()].filter((k) => k !== "OK" && k !== "UNAVAILABLE DATABASE_UNAVAILABLE")).toEqual([]);
    expect(alive()).toBe(true);

    // Every accepted create's task ends, with no process restarted.
    const check = new pg.Client({ connectionString: dbUrl });
    await check.connect();
    const waitStarted = performance.now();
    try {
      await waitFor(
        "every accepted task completed",
        async () => {
          const r = await check.query<{ n: string }>("select count(*) as n from tasks where id = any($1) and status = 'COMPLETED'", [load.accepted]);
          return Number(r.rows[0]!.n) === load.accepted.length;
        },
        90_000,
        250,
      );
      console.log(`every accepted task completed ${Math.round(performance.now() - waitStarted)} ms after the load stopped`);
    } catch (err) {
      // Say what is left, and what the processes said.
      const missing = await check.query("select count(*) as n from unnest($1::text[]) as a(id) where not exists (select 1 from tasks t where t.id = a.id)", [
        load.accepted,
      ]);
      const open = await check.query(
        "select id, status, phase, attempt, lease_expires_at, enqueue_count from tasks where id = any($1) and status <> 'COMPLETED' limit 10",
        [load.accepted],
      );
      const warnings = roles.map(
        (r) =>
          `${r.name}:\n${r.lines
            .filter((l) => l["level"] !== "info")
            .slice(-10)
            .map((l) => JSON.stringify(l))
            .join("\n")}`,
      );
      throw new Error(`${String(err)}\nmissing: ${JSON.stringify(missing.rows)}\nopen: ${JSON.stringify(open.rows)}\n${warnings.join("\n")}`);
    } finally {
      await check.end();
    }
    expect(alive()).toBe(true);
  });

  it("answers by the caller's deadline, else after the query timeout, while Postgres is frozen", async () => {
    // Idle pooled connections, so that the probes below reach a query (not a new connection).
    const warm = await Promise.all(Array.from({ length: 10 }, () => call("getDeployment", { name: readName })));
    expect(warm.map((o) => o.code)).toEqual(warm.map(() => grpc.status.OK));
    server.freeze();
    try {
      const [grpcDeadline, connectDeadline, noDeadline] = await Promise.all([
        call("getDeployment", { name: readName }, { deadlineMs: 1000, requestId: "probe-grpc-deadline" }),
        (async () => {
          const started = performance.now();
          const res = await fetch(`${httpUrl}/modeldeploy.v1.DeploymentService/GetDeployment`, {
            method: "POST",
            headers: {
              "content-type": "application/json",
              "connect-protocol-version": "1",
              "connect-timeout-ms": "1000",
              "x-request-id": "probe-connect-deadline",
              authorization: `Bearer ${apiKey}`,
            },
            body: JSON.stringify({ name: readName }),
          });
          return { body: (await res.json()) as { code?: string }, ms: performance.now() - started };
        })(),
        call("getDeployment", { name: readName }, { deadlineMs: 60_000, requestId: "probe-no-deadline" }),
      ]);
      // gRPC: grpc-js ends the call on both sides; the API's own log shows it ended there too.
      expect(grpcDeadline.code).toBe(grpc.status.DEADLINE_EXCEEDED);
      const api = roles.find((r) => r.name === "api")!;
      const logged = await waitFor("the API logged the call", () => api.lines.find((l) => l["requestId"] === "probe-grpc-deadline"));
      expect(logged["code"]).toBe("deadline_exceeded");
      expect(Number(logged["durationMs"])).toBeLessThan(QUERY_TIMEOUT_MS);
      // Connect: the API answers by the deadline although its query hangs.
      expect(connectDeadline.body.code).toBe("deadline_exceeded");
      expect(connectDeadline.ms).toBeGreaterThanOrEqual(900);
      expect(connectDeadline.ms).toBeLessThan(QUERY_TIMEOUT_MS);
      // No deadline (a minute is no bound here): UNAVAILABLE once the query times out.
      expect(noDeadline).toMatchObject({ code: grpc.status.UNAVAILABLE, reason: "DATABASE_UNAVAILABLE" });
      expect(noDeadline.message).toContain(`did not answer within ${QUERY_TIMEOUT_MS} ms`);
      expect(noDeadline.ms).toBeGreaterThanOrEqual(QUERY_TIMEOUT_MS - 100);
      expect(noDeadline.ms).toBeLessThan(QUERY_TIMEOUT_MS + 10_000);
    } finally {
      server.thaw();
    }
    await waitFor("a call succeeds after the thaw", async () => (await call("getDeployment", { name: readName })).code === grpc.status.OK, 15_000, 20);
    expect(alive()).toBe(true);
    for (const r of roles) expect(r.stderr()).not.toMatch(/Unhandled|uncaught/i);
  });
});
