// Child-process entry for the embedded Postgres (PGlite) used when no
// DATABASE_URL is set. Run by src/db/embedded-postgres.ts as
//
//   node dist/db/embedded-postgres-main.js --data <dir> [--host 127.0.0.1] [--port 0]
//
// It opens PGlite on <dir> (created on first run, reused afterwards), serves
// it over the Postgres wire protocol on a TCP socket, and prints exactly one
// line on stdout: {"event":"listening","port":N}. Everything else (logs)
// goes to stderr as JSON lines.
//
// It shuts down cleanly (socket closed, PGlite closed so the data directory
// is left consistent) on SIGTERM, SIGINT or SIGHUP, and when the parent goes
// away: if started with an IPC channel, on its 'disconnect'.
//
// A lock file `<dir>.lock` holding this process's pid keeps a second process
// from opening the same directory: PGlite itself does not notice (its
// postmaster.pid always says -42), and two writers would corrupt the data.
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { parseArgs } from "node:util";
import { PGlite } from "@electric-sql/pglite";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";
import { isProcessAlive } from "../child-process.js";
import { createLogger } from "../log.js";
import { compileLeanPGlite } from "./pglite-settings.js";

const log = createLogger({ base: { component: "embedded-postgres" } });

// stdout carries the one "listening" line and nothing else: route any
// console output from libraries to stderr.
console.log = console.error;
console.info = console.error;
console.debug = console.error;
// Once the parent is gone its pipes are too: a log write must not crash the
// shutdown that closes PGlite.
process.stdout.on("error", () => {});
process.stderr.on("error", () => {});

/** Exit codes, so the parent can tell a usage error from a failed start. */
const EXIT_USAGE = 2;
const EXIT_START_FAILED = 3;
const EXIT_LOCKED = 4;
const CLOSE_TIMEOUT_MS = 15_000;

class LockedError extends Error {}

function parseOptions(): { dataDir: string; host: string; port: number } {
  const { values } = parseArgs({
    options: {
      data: { type: "string" },
      host: { type: "string", default: "127.0.0.1" },
      port: { type: "string", default: "0" },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.data === undefined || values.data === "") throw new Error("--data <dir> is required");
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port ${values.port}: expected 0-65535`);
  return { dataDir: path.resolve(values.data), host: values.host, port };
}

/** Take `<dataDir>.lock`; a lock left by a dead process is taken over. */
function acquireLock(lockFile: string): () => void {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(lockFile, `${process.pid}\n`, { flag: "wx" });
      return () => {
        try {
          if (fs.readFileSync(lockFile, "utf8").trim() === String(process.pid)) fs.unlinkSync(lockFile);
        } catch {
          // already gone
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      let owner = NaN;
      try {
        owner = Number.parseInt(fs.readFileSync(lockFile, "utf8").trim(), 10);
      } catch {
        // vanished between open and read: retry
      }
      if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && isProcessAlive(owner)) {
        throw new LockedError(
          `data directory is in use by process ${owner} (lock file ${lockFile}); ` + `stop that process, or delete the lock file if no such process uses it`,
        );
      }
      log.warn("removing stale lock file", { lockFile, owner: Number.isNaN(owner) ? null : owner });
      fs.rmSync(lockFile, { force: true });
    }
  }
  throw new LockedError(`could not take the lock file ${lockFile}`);
}

/**
 * The front door. pglite-socket 0.0.22 runs one session at a time (and should:
 * PGlite is a single backend, and messages of two clients interleaved would
 * mix up their unnamed statements and transactions), but at its limit it
 * resets a new connection instead of queueing it, which also hits a pool
 * reconnecting right after closing an idle client. This server accepts every
 * connection and hands them to the PGlite socket server one at a time, in
 * arrival order, each once the previous session has been fully released.
 */
class SessionQueue {
  private readonly server: net.Server;
  private readonly waiting: net.Socket[] = [];
  private active: { client: net.Socket; upstream: net.Socket | undefined } | undefined;
  private closed = false;

  constructor(
    private readonly backend: PGLiteSocketServer,
    private readonly backendPort: number,
  ) {
    this.server = net.createServer({ pauseOnConnect: true }, (socket) => this.accept(socket));
  }

  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(port, host, () => {
        this.server.off("error", reject);
        this.server.on("error", (err) => log.warn("front server error", { err }));
        const address = this.server.address();
        if (address === null || typeof address === "string") reject(new Error("front server has no TCP address"));
        else resolve(address.port);
      });
    });
  }

  close(): Promise<void> {
    this.closed = true;
    for (const socket of this.waiting.splice(0)) socket.destroy();
    this.active?.client.destroy();
    this.active?.upstream?.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private accept(socket: net.Socket): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    socket.on("error", () => {}); // a client going away is not our error
    socket.once("close", () => {
      const i = this.waiting.indexOf(socket);
      if (i >= 0) this.waiting.splice(i, 1);
    });
    this.waiting.push(socket);
    if (this.waiting.length > 1 || this.active !== undefined) {
      log.debug("connection queued", { waiting: this.waiting.length });
    }
    this.pump();
  }

  private pump(): void {
    if (this.closed || this.active !== undefined) return;
    const client = this.waiting.shift();
    if (client === undefined) return;
    if (client.destroyed) return this.pump();
    const session: { client: net.Socket; upstream: net.Socket | undefined } = { client, upstream: undefined };
    this.active = session;
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      client.destroy();
      session.upstream?.destroy();
      void this.backendIdle().then(() => {
        this.active = undefined;
        this.pump();
      });
    };
    client.once("close", end);
    void this.backendIdle().then(() => {
      if (ended || this.closed) return end();
      const upstream = net.connect({ host: "127.0.0.1", port: this.backendPort });
      session.upstream = upstream;
      upstream.setNoDelay(true);
      upstream.on("error", (err) => {
        log.warn("connection to the PGlite socket server failed", { err });
        end();
      });
      upstream.once("close", end);
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
  }

  /** Resolves once the PGlite socket server has released its last session (rolled back, detached). */
  private async backendIdle(): Promise<void> {
    const deadline = Date.now() + 5_000;
    while (this.backend.getStats().activeConnections > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  }
}

/**
 * Open PGlite on `dataDir`, connected to the database "postgres". PGlite
 * opens its sessions on `template1` unless told otherwise, and on the run
 * that initialises a new directory it ignores `database` (measured with
 * 0.3.16): so a new directory is initialised first, then reopened.
 */
async function openPGlite(dataDir: string): Promise<PGlite> {
  const lean = await compileLeanPGlite();
  if (lean === undefined) log.warn("this PGlite build has no shared_buffers=128MB to lower; running it as it is");
  const wasm = lean ? { wasmModule: lean.module } : {};
  if (!fs.existsSync(path.join(dataDir, "PG_VERSION"))) {
    const started = Date.now();
    const init = await PGlite.create(dataDir, wasm);
    await init.close();
    log.info("initialised a new PGlite data directory", { dataDir, ms: Date.now() - started });
  }
  const db = await PGlite.create(dataDir, { database: "postgres", username: "postgres", ...wasm });
  const current = (await db.query<{ db: string }>("select current_database() as db")).rows[0]?.db;
  if (current !== "postgres") {
    await db.close();
    throw new Error(`PGlite opened database ${String(current)}, expected postgres`);
  }
  return db;
}

async function main(): Promise<void> {
  let options: ReturnType<typeof parseOptions>;
  try {
    options = parseOptions();
  } catch (err) {
    process.stderr.write(`embedded-postgres-main: ${(err as Error).message}\n` + `usage: embedded-postgres-main --data <dir> [--host 127.0.0.1] [--port 0]\n`);
    process.exit(EXIT_USAGE);
  }

  let opening: Promise<PGlite> | undefined;
  let db: PGlite | undefined;
  let backend: PGLiteSocketServer | undefined;
  let front: SessionQueue | undefined;
  let releaseLock: (() => void) | undefined;
  let stopping: Promise<never> | undefined;

  const shutdown = (reason: string, code: number): Promise<never> => {
    stopping ??= (async () => {
      log.info("shutting down", { reason });
      const forced = setTimeout(() => {
        log.error("clean shutdown took too long; exiting without closing PGlite", { timeoutMs: CLOSE_TIMEOUT_MS });
        releaseLock?.();
        process.exit(1);
      }, CLOSE_TIMEOUT_MS);
      try {
        await front?.close();
        await backend?.stop();
        // Interrupting PGlite's first-run initdb would leave a broken data
        // directory: let an open in progress finish, then close it.
        db ??= await opening?.catch(() => undefined);
        if (db !== undefined && !db.closed) {
          // Let a query or rollback still running on PGlite finish first.
          await db.runExclusive(async () => {});
          await db.close();
        }
        log.info("stopped", { reason });
      } catch (err) {
        log.error("error while shutting down", { err });
        code = code === 0 ? 1 : code;
      } finally {
        clearTimeout(forced);
        releaseLock?.();
      }
      process.exit(code);
    })();
    return stopping;
  };

  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) {
    process.on(signal, () => void shutdown(signal, 0));
  }
  if (process.connected) {
    // Spawned with an IPC channel: it closes when the parent exits, however it exits.
    process.on("disconnect", () => void shutdown("parent disconnected", 0));
  }

  try {
    fs.mkdirSync(options.dataDir, { recursive: true });
    releaseLock = acquireLock(`${options.dataDir}.lock`);
    const started = Date.now();
    opening = openPGlite(options.dataDir);
    db = await opening;
    if (stopping !== undefined) return; // asked to stop while opening; shutdown() closes db
    log.info("PGlite open", { dataDir: options.dataDir, ms: Date.now() - started });

    // The PGlite socket server, on a loopback port nobody else is told about.
    const server = new PGLiteSocketServer({ db, host: "127.0.0.1", port: 0, maxConnections: 1 });
    backend = server;
    let backendPort: number | undefined;
    server.addEventListener("listening", (event) => {
      const detail = (event as CustomEvent<{ port?: unknown }>).detail;
      if (typeof detail.port === "number") backendPort = detail.port;
    });
    // start() resolves on listening but never rejects when listen() fails
    // (it marks itself active first), so listen for the error event too.
    const failed = new Promise<never>((_, reject) => {
      server.addEventListener("error", (event) => {
        const err = (event as CustomEvent<unknown>).detail;
        if (backendPort === undefined) reject(err instanceof Error ? err : new Error(String(err)));
        else log.debug("PGlite socket server error", { err });
      });
    });
    await Promise.race([server.start(), failed]);
    if (backendPort === undefined) throw new Error(`PGlite socket server did not report its port`);
    if (stopping !== undefined) return;

    front = new SessionQueue(server, backendPort);
    const port = await front.listen(options.host, options.port);
    if (stopping !== undefined) return;
    process.stdout.write(JSON.stringify({ event: "listening", port }) + "\n");
    // The first run's initdb instance is closed and unreferenced, but its
    // WASM memory stays resident until a full collection, which an idle
    // process may never run (started with --expose-gc: embedded-postgres.ts).
    setTimeout(() => (globalThis as { gc?: () => void }).gc?.(), 100).unref();
    log.info("listening", { host: options.host, port });
  } catch (err) {
    if (stopping !== undefined) return;
    log.error("failed to start", { err, dataDir: options.dataDir });
    process.stderr.write(`embedded-postgres-main: ${err instanceof Error ? err.message : String(err)}\n`);
    await shutdown("start failed", err instanceof LockedError ? EXIT_LOCKED : EXIT_START_FAILED);
  }
}

void main();
