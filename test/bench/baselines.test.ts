// The bench's baseline scripts and the load generator's bench mode, on a tiny
// scale against the real Postgres (needs `npm run build`: they run from dist/).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runBaseline, startBaselineServer } from "../../src/bench/baseline-runner.js";
import { runUnaryLoad } from "../../src/bench/loadgen.js";
import { stopAll } from "../../src/bench/processes.js";
import { createBenchDatabase, type BenchDatabase } from "../../src/bench/services.js";
import { newDeploymentRows } from "../../src/bench/baselines/new-deployment.js";
import { insertNewDeployments } from "../../src/db/create-deployment.js";
import { DATABASE_URL } from "../helpers/services.js";

let database: BenchDatabase;
let name: string;

beforeAll(async () => {
  database = await createBenchDatabase(DATABASE_URL);
  const rows = newDeploymentRows({ workspace: "bench", modelName: "bench/get", replicas: 0 });
  await insertNewDeployments(database.db, [rows]);
  name = rows.deployment.name;
});

afterAll(async () => {
  await stopAll();
  await database?.drop();
});

describe("bench baselines", () => {
  it("the tight pg loops write creates and run tasks", async () => {
    let total = 0;
    for (const shape of ["statement", "transaction"]) {
      const creates = await runBaseline<{ rate: number; n: number }>("pg-create-loop", {
        url: database.url,
        poolMax: 2,
        concurrency: 4,
        durationMs: 200,
        warmupMs: 0,
        shape,
      });
      expect(creates.n).toBeGreaterThan(0);
      total += creates.n;
    }
    // Either shape writes a create's five rows.
    const count = async (table: "deployments" | "revisions" | "tasks" | "outbox" | "events") =>
      Number(
        (
          await database.db
            .selectFrom(table)
            .select((eb) => eb.fn.countAll().as("n"))
            .executeTakeFirstOrThrow()
        ).n,
      );
    expect(await count("deployments")).toBeGreaterThanOrEqual(total + 1);
    for (const table of ["revisions", "tasks", "outbox", "events"] as const) expect(await count(table)).toBe(await count("deployments"));
    const tasks = await runBaseline<{ rate: number }>("task-writes-loop", { url: database.url, tasks: 5, concurrency: 2 });
    expect(tasks.rate).toBeGreaterThan(0);
    const done = await database.db.selectFrom("tasks").select("status").where("deployment_name", "like", "rawdrain-%").execute();
    expect(done.map((t) => t.status)).toEqual(Array(5).fill("COMPLETED"));
  });

  it("the load generator reads from the bare gRPC and node:http servers", async () => {
    const grpc = await startBaselineServer("grpc-get-server", { url: database.url, poolMax: 2 });
    const http = await startBaselineServer("http-get-server", { url: database.url, poolMax: 2 });
    try {
      const job = { method: "get" as const, name, concurrency: 2, durationMs: 300, warmupMs: 0 };
      const viaGrpc = await runUnaryLoad({ ...job, protocol: "grpc", baseUrl: `http://127.0.0.1:${grpc.port}`, connections: 1 });
      const viaHttp = await runUnaryLoad({ ...job, protocol: "connect-json", baseUrl: `http://127.0.0.1:${http.port}`, connections: 2 });
      for (const r of [viaGrpc, viaHttp]) {
        expect(r.firstError).toBe("");
        expect(r.ok).toBeGreaterThan(0);
      }
    } finally {
      await grpc.proc.stop();
      await http.proc.stop();
    }
  });
});
