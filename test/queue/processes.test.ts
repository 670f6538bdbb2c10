// Real `modeldeploy api` and `modeldeploy worker` processes (no-op runtime)
// on a nats-server that is killed and loses its store while tasks are open
// and creates keep coming: every accepted task completes, and neither
// process exits or is restarted. Runs dist/: `npm run build` first.
import { spawn, type ChildProcess } from "node:child_process";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, describe, expect, it } from "vitest";
import { createApiKey } from "../../src/db/api-keys.js";
import { DeploymentService } from "../../src/gen/modeldeploy/v1/deployment_service_pb.js";
import { startPrivateNats } from "../helpers/private-nats.js";
import { createTestDatabase, randomName, TEST_SECRET_KEY, waitFor } from "../helpers/services.js";
import { CLI } from "../helpers/system.js";

interface Role {
  child: ChildProcess;
  exited: Promise<number | null>;
  saw(msg: string): boolean;
}

const cleanups: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
});

/** Starts `modeldeploy <role>`; resolves with its ready log line. */
async function startRole(role: string, env: Record<string, string>, readyMsg: string): Promise<Role & { ready: Record<string, unknown> }> {
  const child = spawn(process.execPath, [CLI, role], { env, stdio: ["ignore", "ignore", "pipe"] });
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    await exited;
  });
  const msgs = new Set<string>();
  let text = "";
  const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
    let buf = "";
    child.stderr!.on("data", (d: Buffer) => {
      text = (text + d.toString()).slice(-20_000);
      buf += d.toString();
      for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try {
          const entry = JSON.parse(line) as Record<string, unknown>;
          msgs.add(String(entry["msg"]));
          if (entry["msg"] === readyMsg) resolve(entry);
        } catch {
          // not a log line
        }
      }
    });
    exited.then((code) => reject(new Error(`${role} exited with ${code}: ${text}`)), reject);
  });
  return { child, exited, ready, saw: (msg) => msgs.has(msg) };
}

describe("api and worker processes", () => {
  it("drain every task after nats-server lost its store, without a restart", async () => {
    const nats = await startPrivateNats();
    cleanups.push(() => nats.destroy());
    const tdb = await createTestDatabase();
    cleanups.push(() => tdb.drop());
    const { key } = await createApiKey(tdb.db, { workspace: "acme", principal: "ci", scopes: ["deployments:read", "deployments:write"] });
    const env: Record<string, string> = {
      ...(process.env as Record<string, string>),
      DATABASE_URL: tdb.url,
      NATS_URL: nats.url,
      MODELDEPLOY_SECRET_KEY: TEST_SECRET_KEY,
      MODELDEPLOY_NATS_STREAM: randomName("MDPROCQ").toUpperCase(),
      MODELDEPLOY_NATS_PREFIX: randomName("mdprocq"),
      MODELDEPLOY_GRPC_PORT: "0",
      MODELDEPLOY_HTTP_PORT: "0",
      MODELDEPLOY_RUNTIME: "noop",
      // Two tasks at a time: most are still queued when the store goes.
      MODELDEPLOY_WORKER_CONCURRENCY: "2",
      MODELDEPLOY_SWEEP_INTERVAL_MS: "500",
      MODELDEPLOY_SWEEP_PENDING_AFTER_MS: "2000",
      MODELDEPLOY_SHUTDOWN_GRACE_MS: "5000",
      LOG_LEVEL: "info",
    };
    const api = await startRole("api", env, "connect server listening");
    const worker = await startRole("worker", env, "worker started");
    const client = createClient(DeploymentService, createConnectTransport({ baseUrl: `http://127.0.0.1:${String(api.ready["port"])}`, httpVersion: "1.1" }));
    const headers = { authorization: `Bearer ${key}` };
    const create = async (n: number) => {
      const created = await Promise.all(
        Array.from({ length: n }, () =>
          client.createDeployment({ model: { name: "acme/noop", uri: "file:///noop/model.onnx" }, scaling: { minReplicas: 1, maxReplicas: 1 } }, { headers }),
        ),
      );
      return created.map((c) => c.task!.id);
    };
    const openTasks = async () => {
      const r = await tdb.db
        .selectFrom("tasks")
        .select((eb) => eb.fn.countAll<string>().as("n"))
        .where("status", "in", ["PENDING", "RUNNING"])
        .executeTakeFirstOrThrow();
      return Number(r.n);
    };

    const before = await create(200);
    await nats.stop("SIGKILL");
    nats.loseStore();
    const openAtLoss = await openTasks();
    expect(openAtLoss).toBeGreaterThan(0);
    // The API keeps accepting: the outbox holds the work until the queue is back.
    const during = await create(50);
    // Its relay finds the queue gone (before it comes back, however busy the machine).
    await waitFor("the relay to find the queue gone", async () => (api.saw("outbox relay failed; will retry") ? true : undefined), 60_000, 50);
    await nats.start();

    await waitFor("every task to complete", async () => (await openTasks()) === 0, 120_000, 250);
    const statuses = await tdb.db
      .selectFrom("tasks")
      .select("status")
      .where("id", "in", [...before, ...during])
      .execute();
    expect(statuses).toHaveLength(250);
    expect(statuses.every((s) => s.status === "COMPLETED")).toBe(true);
    expect(api.child.exitCode).toBeNull();
    expect(worker.child.exitCode).toBeNull();
    expect(api.saw("outbox relay works again")).toBe(true);
  });
});
