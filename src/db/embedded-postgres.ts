// The embedded Postgres for a newcomer's first run (no DATABASE_URL): PGlite
// in a child process (src/db/embedded-postgres-main.ts) serving the Postgres
// wire protocol on 127.0.0.1. A child keeps PGlite's 400-700 MB RSS out of
// the main process.
import { killOnExit, tailLines, terminateChild } from "../child-process.js";
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Logger } from "../log.js";

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

const STDERR_TAIL_BYTES = 4096;

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

  const child = spawn(process.execPath, [script, "--data", dataDir, "--host", "127.0.0.1", "--port", "0"], {
    // stdin unused; stdout: the listening line; stderr: JSON logs; IPC: closes when we die.
    stdio: ["ignore", "pipe", "pipe", "ipc"],
    // Own process group: a terminal's Ctrl-C goes to us, not to the database
    // we still need while draining; we stop it last.
    detached: true,
    env: process.env,
  });
  killOnExit(child);
  const exited = new Promise<void>((resolve) => {
    child.once("exit", () => resolve());
    // A spawn failure emits 'error' and never 'exit'.
    child.once("error", () => {
      if (child.pid === undefined) resolve();
    });
  });
  child.on("error", (err) => logger.warn("embedded Postgres child process error", { err }));

  let stderrTail = "";
  let stderrLine = "";
  child.stderr!.setEncoding("utf8");
  child.stderr!.on("data", (chunk: string) => {
    stderrTail = (stderrTail + chunk).slice(-STDERR_TAIL_BYTES);
    stderrLine += chunk;
    let nl: number;
    while ((nl = stderrLine.indexOf("\n")) >= 0) {
      relay(logger, stderrLine.slice(0, nl));
      stderrLine = stderrLine.slice(nl + 1);
    }
  });

  let port: number;
  try {
    port = await waitForListening(child, startTimeoutMs, () => stderrTail);
  } catch (err) {
    await terminateChild(child, exited, 2_000, () => logger.warn("embedded Postgres did not exit after SIGTERM; sending SIGKILL", { pid: child.pid }));
    throw err;
  }

  let stopping: Promise<void> | undefined;
  child.once("exit", (code, signal) => {
    if (stopping === undefined) {
      logger.error("embedded Postgres exited unexpectedly", { code, signal, stderrTail: tailLines(stderrTail) });
    }
  });
  // Running: the child must not keep this process alive by itself.
  child.unref();
  child.channel?.unref();
  (child.stdout as unknown as { unref?: () => void } | null)?.unref?.();
  (child.stderr as unknown as { unref?: () => void } | null)?.unref?.();

  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  logger.info("embedded Postgres started", { dataDir, port, pid: child.pid });
  return {
    url,
    stop() {
      stopping ??= terminateChild(child, exited, stopGraceMs, () =>
        logger.warn("embedded Postgres did not exit after SIGTERM; sending SIGKILL", { pid: child.pid }),
      ).then(() => {
        logger.info("embedded Postgres stopped", { code: child.exitCode, signal: child.signalCode });
      });
      return stopping;
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

function waitForListening(child: ChildProcess, timeoutMs: number, stderrTail: () => string): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    let buffered = "";
    const cleanup = () => {
      clearTimeout(timer);
      child.stdout!.off("data", onData);
      child.off("exit", onExit);
      child.off("error", onError);
    };
    const fail = (message: string) => {
      cleanup();
      const t = tailLines(stderrTail());
      reject(new Error(t === "" ? message : `${message}; child stderr:\n${t}`));
    };
    const onData = (chunk: string) => {
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, nl).trim();
        buffered = buffered.slice(nl + 1);
        const port = listeningPort(line);
        if (port !== undefined) {
          cleanup();
          resolve(port);
          return;
        }
      }
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null) => fail(`embedded Postgres exited before listening (code ${code}, signal ${signal})`);
    const onError = (err: Error) => fail(`embedded Postgres could not be started: ${err.message}`);
    const timer = setTimeout(() => fail(`embedded Postgres did not report listening within ${timeoutMs} ms`), timeoutMs);
    child.stdout!.setEncoding("utf8");
    child.stdout!.on("data", onData);
    child.once("exit", onExit);
    child.once("error", onError);
  });
}

function listeningPort(line: string): number | undefined {
  if (!line.startsWith("{")) return undefined;
  try {
    const msg = JSON.parse(line) as { event?: unknown; port?: unknown };
    if (msg.event === "listening" && typeof msg.port === "number" && Number.isInteger(msg.port) && msg.port > 0) {
      return msg.port;
    }
  } catch {
    // not ours
  }
  return undefined;
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
