// The embedded services a newcomer's first run starts: PGlite behind a
// socket in a child process, and a nats-server -js child process. Needs
// `npm run build` first (the Postgres child runs from dist/) and nats-server.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { startEmbeddedPostgres, type EmbeddedPostgres } from "../../src/db/embedded-postgres.js";
import { EMBEDDED_SHARED_BUFFERS } from "../../src/db/pglite-settings.js";
import { silentLogger } from "../../src/log.js";
import { waitFor } from "../helpers/services.js";
import { NatsServerNotFoundError, findNatsServer, startEmbeddedNats, type EmbeddedNats } from "../../src/queue/embedded-nats.js";

const tempDirs: string[] = [];
const running: Array<EmbeddedPostgres | EmbeddedNats> = [];

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "modeldeploy-embedded-"));
  tempDirs.push(dir);
  return dir;
}

function pool(url: string): pg.Pool {
  const p = new pg.Pool({ connectionString: url, max: 1, connectionTimeoutMillis: 20_000 });
  p.on("error", () => {});
  return p;
}

afterAll(async () => {
  await Promise.all(running.map((service) => service.stop()));
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
});

describe("embedded Postgres (PGlite child process)", () => {
  it("serves SQL and transactions, and keeps the data across a restart", async () => {
    const dataDir = path.join(tempDir(), "pg");

    const first = await startEmbeddedPostgres({ dataDir, logger: silentLogger });
    running.push(first);
    expect(first.url).toMatch(/^postgres:\/\/postgres@127\.0\.0\.1:\d+\/postgres$/);
    const db = pool(first.url);
    try {
      const who = await db.query<{ db: string; user: string }>("select current_database() as db, current_user as user");
      expect(who.rows).toEqual([{ db: "postgres", user: "postgres" }]);
      // PGlite's compiled-in 128MB, lowered (src/db/pglite-settings.ts).
      expect((await db.query<{ shared_buffers: string }>("show shared_buffers")).rows).toEqual([{ shared_buffers: EMBEDDED_SHARED_BUFFERS }]);

      await db.query("create table notes (id int primary key, body text not null)");
      await db.query("insert into notes (id, body) values ($1, $2)", [1, "plain insert"]);

      const client = await db.connect();
      try {
        await client.query("BEGIN");
        await client.query("insert into notes (id, body) values ($1, $2)", [2, "committed"]);
        await client.query("COMMIT");
        await client.query("BEGIN");
        await client.query("insert into notes (id, body) values ($1, $2)", [3, "rolled back"]);
        await client.query("ROLLBACK");
      } finally {
        client.release();
      }
    } finally {
      await db.end();
    }
    await first.stop();
    await first.stop(); // idempotent

    const second = await startEmbeddedPostgres({ dataDir, logger: silentLogger });
    running.push(second);
    const again = pool(second.url);
    try {
      const rows = await again.query<{ id: number; body: string }>("select id, body from notes order by id");
      expect(rows.rows).toEqual([
        { id: 1, body: "plain insert" },
        { id: 2, body: "committed" },
      ]);
    } finally {
      await again.end();
    }
    await second.stop();
  });

  it("queues a second connection until the first closes", async () => {
    const pgServer = await startEmbeddedPostgres({ dataDir: path.join(tempDir(), "pg"), logger: silentLogger });
    running.push(pgServer);

    const first = new pg.Client({ connectionString: pgServer.url });
    await first.connect();
    await first.query("BEGIN");
    await first.query("create table queued (n int)");
    await first.query("insert into queued values (1)");

    const second = new pg.Client({ connectionString: pgServer.url, connectionTimeoutMillis: 20_000 });
    let secondConnected = false;
    const connecting = second.connect().then(() => {
      secondConnected = true;
    });
    // Round trips on the first session while the second waits.
    await first.query("insert into queued values (2)");
    expect(secondConnected).toBe(false);
    await first.query("COMMIT");
    await first.end();

    await connecting;
    const rows = await second.query<{ n: number }>("select n from queued order by n");
    expect(rows.rows.map((r) => r.n)).toEqual([1, 2]);
    await second.end();
    await pgServer.stop();
  });

  it("refuses a second server on a data directory in use", async () => {
    const dataDir = path.join(tempDir(), "pg");
    const owner = await startEmbeddedPostgres({ dataDir, logger: silentLogger });
    running.push(owner);
    await expect(startEmbeddedPostgres({ dataDir, logger: silentLogger })).rejects.toThrow(/in use by process/);
    await owner.stop();
  });
});

describe("embedded NATS (nats-server -js child process)", () => {
  it("runs JetStream, and keeps streams across a restart", async () => {
    const dataDir = tempDir();
    const suffix = randomBytes(6).toString("hex");
    const stream = `EMBEDDED_${suffix}`;
    const subject = `embedded.${suffix}.work`;

    const first = await startEmbeddedNats({ dataDir, logger: silentLogger });
    running.push(first);
    expect(first.url).toMatch(/^nats:\/\/127\.0\.0\.1:\d+$/);
    const nc = await connect({ servers: first.url });
    try {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: stream, subjects: [subject] });
      const ack = await jetstream(nc).publish(subject, new TextEncoder().encode("hello"));
      expect(ack.stream).toBe(stream);
      expect(ack.seq).toBe(1);
      expect(ack.duplicate).toBe(false);
    } finally {
      await nc.close();
    }
    await first.stop();
    await first.stop(); // idempotent
    expect(fs.existsSync(path.join(dataDir, "nats", "jetstream"))).toBe(true);

    const second = await startEmbeddedNats({ dataDir, logger: silentLogger });
    running.push(second);
    const nc2 = await connect({ servers: second.url });
    try {
      const info = await (await jetstreamManager(nc2)).streams.info(stream);
      expect(info.state.messages).toBe(1);
    } finally {
      await nc2.close();
    }
    await second.stop();
  });

  it("stops a nats-server that a killed predecessor left running on the same data directory", async () => {
    const dataDir = tempDir();
    const storeDir = path.join(dataDir, "nats");
    fs.mkdirSync(storeDir, { recursive: true });
    // The state a SIGKILLed `modeldeploy start` leaves: its server still runs, its pid file stays.
    const orphan = spawn(findNatsServer(undefined, process.env), ["-a", "127.0.0.1", "-p", "-1", "-js", "-sd", storeDir], { stdio: "ignore" });
    const orphanExit = new Promise<void>((resolve) => orphan.once("exit", () => resolve()));
    try {
      await waitFor("the orphan to run", () => fs.existsSync(`/proc/${orphan.pid}/cmdline`));
      fs.writeFileSync(`${storeDir}.pid`, `${orphan.pid}\n`);
      const next = await startEmbeddedNats({ dataDir, logger: silentLogger });
      running.push(next);
      await orphanExit; // stopped before the new server started
      expect(orphan.exitCode !== null || orphan.signalCode !== null).toBe(true);
      expect(fs.readFileSync(`${storeDir}.pid`, "utf8").trim()).not.toBe(String(orphan.pid));
      await next.stop();
      expect(fs.existsSync(`${storeDir}.pid`)).toBe(false);
    } finally {
      orphan.kill("SIGKILL");
      await orphanExit;
    }
  });

  it("says how to install nats-server when the configured binary is missing", () => {
    const missing = path.join(os.tmpdir(), `no-such-nats-server-${randomBytes(4).toString("hex")}`);
    expect(() => findNatsServer(missing)).toThrow(NatsServerNotFoundError);
    expect(() => findNatsServer(missing, {})).toThrow(/apt-get install nats-server/);
    expect(() => findNatsServer(missing)).toThrow(/nats-io\/nats-server\/releases/);
    expect(() => findNatsServer(missing)).toThrow(/NATS_URL/);
  });
});
