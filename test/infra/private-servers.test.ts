// The private servers that fault tests kill, freeze and restart.
import { afterAll, describe, expect, it } from "vitest";
import pg from "pg";
import { connectNats } from "../../src/queue/nats.js";
import { startPrivateNats, type PrivateNats } from "../helpers/private-nats.js";
import { startPrivatePostgres, type PrivatePostgres } from "../helpers/private-postgres.js";
import { waitFor } from "../helpers/services.js";

const cleanups: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function query(url: string, timeoutMs = 2000): Promise<number> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: timeoutMs, query_timeout: timeoutMs });
  c.on("error", () => {});
  try {
    await c.connect();
    const r = await c.query<{ n: number }>("select 1 as n");
    return r.rows[0]!.n;
  } finally {
    await c.end().catch(() => {});
  }
}

describe("private Postgres", () => {
  let server: PrivatePostgres;
  it("starts, stops, restarts with its data, freezes and thaws", async () => {
    server = await startPrivatePostgres();
    cleanups.push(() => server.destroy());
    const c = new pg.Client({ connectionString: server.url });
    await c.connect();
    await c.query("create table kept (n int); insert into kept values (7)");
    await c.end();
    await server.stop("fast");
    await expect(query(server.url, 500)).rejects.toThrow();
    await server.start();
    const again = new pg.Client({ connectionString: server.url });
    await again.connect();
    expect((await again.query("select n from kept")).rows).toEqual([{ n: 7 }]);
    await again.end();
    server.freeze();
    await expect(query(server.url, 500)).rejects.toThrow();
    server.thaw();
    expect(await waitFor("thawed server answers", () => query(server.url))).toBe(1);
    await server.kill();
    await server.start();
    expect(await query(server.url)).toBe(1);
  });
});

describe("private nats-server", () => {
  let server: PrivateNats;
  it("restarts on the same port, and loses its store when told", async () => {
    server = await startPrivateNats();
    cleanups.push(() => server.destroy());
    const nc = await connectNats(server.url, "private-nats-test");
    cleanups.push(() => nc.close());
    const { jetstreamManager } = await import("@nats-io/jetstream");
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "KEPT", subjects: ["kept.>"] });
    await server.stop("SIGKILL");
    await server.start();
    await waitFor("stream survives a restart", async () => (await jsm.streams.info("KEPT")).config.name === "KEPT");
    await server.stop("SIGKILL");
    server.loseStore();
    await server.start();
    await waitFor("stream is gone with the store", async () => {
      try {
        await jsm.streams.info("KEPT");
        return false;
      } catch (err) {
        return /not found/i.test(String(err));
      }
    });
  });
});
