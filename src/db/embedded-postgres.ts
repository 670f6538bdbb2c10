// The embedded Postgres for a newcomer's first run (no DATABASE_URL): PGlite
// in a child process (src/db/embedded-postgres-main.ts) serving the Postgres
// wire protocol on 127.0.0.1. A child keeps PGlite's memory (~115 MB idle,
// with the settings below) and its single-threaded WASM out of the main
// process.
import { portEvent, spawnChild, startedOrStopped } from "../child-process.js";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Logger } from "../log.js";

/**
 * Node flags of the PGlite child. V8 compiles PGlite's 9 MB of WASM with its
 * baseline compiler (Liftoff) and then, for hot functions, with TurboFan on
 * background threads, whose freed compile memory stays in their malloc
 * arenas: with --liftoff-only the child's idle RSS is ~60 MB lower and a
 * control plane's queries (short, rare) run as fast (measured: 1,000 lookups
 * 0.3-0.6 s vs 0.8-2.3 s while TurboFan compiles; steady state within noise).
 * --expose-gc lets it drop the first run's initdb instance (~45 MB of WASM
 * memory) at once instead of at some later collection. Its JavaScript is a
 * socket relay: a 1 MB young generation and one V8 worker thread are enough
 * (−15 and −5 MB; the same query times).
 */
const CHILD_NODE_FLAGS = ["--liftoff-only", "--expose-gc", "--max-semi-space-size=1", "--v8-pool-size=1"];

/**
 * glibc raises its mmap threshold to the largest block freed so far: after
 * PGlite's 9 MB WASM file is read and dropped, every later buffer up to 9 MB
 * comes from the main heap, whose holes it never returns. A fixed 128 kB
 * threshold keeps large buffers in mappings of their own, given back when
 * freed: -8 MB idle, the same query times.
 */
const CHILD_ENV = { MALLOC_MMAP_THRESHOLD_: String(128 * 1024) };

export interface EmbeddedPostgresOptions {
  /** PGlite data directory; created on first run and reused afterwards. */
  dataDir: string;
  logger: Logger;
  /** How long to wait for the child to listen (first run runs initdb). Default 60 s. */
  startTimeoutMs?: number;
  /** How long stop() waits after SIGTERM before SIGKILL. Default 20 s. */
  stopGraceMs?: number;
}

export interface EmbeddedPostgres {
  /** `postgres://postgres@127.0.0.1:<port>/postgres` */
  url: string;
  /** SIGTERM, wait for the child to close PGlite and exit (SIGKILL after the grace period). Idempotent. */
  stop(): Promise<void>;
}

/**
 * Start PGlite in a child process and return a connection URL for it.
 *
 * The server runs ONE client session at a time: PGlite is a single backend.
 * Further connections are accepted and queued until the session before them
 * closes. So callers must use a pg pool with `max: 1` against this URL (a
 * second pooled connection would wait for the first to close) and set
 * `connectionTimeoutMillis` (PITFALLS: pg waits forever by default), must not
 * hold a second connection open beside the pool (no dedicated LISTEN/NOTIFY
 * client), and must not rely on session state (SET, temporary tables, named
 * prepared statements) across pool checkouts.
 *
 * The child exits on its own when this process goes away (it watches its
 * IPC channel), and is signalled on this process's 'exit'.
 */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const logger = options.logger.child({ component: "embedded-postgres" });
  const dataDir = path.resolve(options.dataDir);
  const startTimeoutMs = options.startTimeoutMs ?? 60_000;
  const stopGraceMs = options.stopGraceMs ?? 20_000;
  const script = childScript();

  let onListening: (port: number) => void = () => {};
  const listening = new Promise<number>((resolve) => (onListening = resolve));
  const child = spawnChild({
    name: "embedded Postgres",
    file: process.execPath,
    args: [...CHILD_NODE_FLAGS, script, "--data", dataDir, "--host", "127.0.0.1", "--port", "0"],
    env: { ...process.env, ...CHILD_ENV },
    // IPC: it closes when we die, and the child exits then.
    ipc: true,
    // Own process group: a terminal's Ctrl-C goes to us, not to the database
    // we still need while draining; we stop it last.
    detached: true,
    onStdoutLine(line) {
      const event = portEvent(line);
      if (event?.event !== "listening") return false;
      onListening(event.port);
      return true;
    },
    onStderrLine: (line) => relay(logger, line),
    onUnexpectedExit: (exit, tail) => logger.error("embedded Postgres exited unexpectedly", { ...exit, tail }),
  });
  const port = await startedOrStopped(child, listening, "listening", startTimeoutMs);
  // Running: the child must not keep this process alive by itself.
  child.unref();

  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  logger.info("embedded Postgres started", { dataDir, port, pid: child.pid });
  let stopped: Promise<void> | undefined;
  return {
    url,
    stop() {
      stopped ??= child
        .stop(stopGraceMs, () => logger.warn("embedded Postgres did not exit after SIGTERM; sending SIGKILL", { pid: child.pid }))
        .then((exit) => logger.info("embedded Postgres stopped", { ...exit }));
      return stopped;
    },
  };
}

/**
 * The compiled child entry beside this module. Under vitest this module runs
 * from src/ as TypeScript; Node 20 cannot run the .ts child, so fall back to
 * the build output in dist/.
 */
function childScript(): string {
  const candidates = [
    fileURLToPath(new URL("./embedded-postgres-main.js", import.meta.url)),
    fileURLToPath(new URL("../../dist/db/embedded-postgres-main.js", import.meta.url)),
  ];
  const found = candidates.find((file) => fs.existsSync(file));
  if (found === undefined) {
    throw new Error(`embedded Postgres: child script not found (looked for ${candidates.join(", ")}); run \`npm run build\` first`);
  }
  return found;
}

/** Re-emit the child's JSON log lines through our logger; anything else at debug. */
function relay(logger: Logger, line: string): void {
  if (line.trim() === "") return;
  try {
    const entry = JSON.parse(line) as Record<string, unknown>;
    const { level, msg, time: _time, component: _component, ...fields } = entry;
    const text = typeof msg === "string" ? msg : line;
    if (level === "error" || level === "warn" || level === "info" || level === "debug") {
      logger[level](text, fields);
      return;
    }
  } catch {
    // plain text
  }
  logger.debug("embedded Postgres output", { line });
}
