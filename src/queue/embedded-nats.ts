// The embedded NATS for a newcomer's first run (no NATS_URL): a
// `nats-server -js` child process on 127.0.0.1 with its JetStream store under
// <dataDir>/nats, so streams and unacknowledged work survive a restart.
import { isProcessAlive, spawnChild, startedOrStopped, type Child } from "../child-process.js";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import type { Logger } from "../log.js";

export interface EmbeddedNatsOptions {
  /** The application's data directory; the JetStream store goes to `<dataDir>/nats`. */
  dataDir: string;
  logger: Logger;
  /** Path of the nats-server binary (config: NATS_SERVER_BIN); default: PATH, then /usr/sbin, /usr/local/bin. */
  binary?: string;
  /** How long to wait for the server to accept connections. Default 15 s. */
  startTimeoutMs?: number;
  /** How long stop() waits after SIGTERM before SIGKILL. Default 10 s. */
  stopGraceMs?: number;
}

export interface EmbeddedNats {
  /** `nats://127.0.0.1:<port>` */
  url: string;
  /** SIGTERM, wait for exit (SIGKILL after the grace period). Idempotent. */
  stop(): Promise<void>;
}

/** Thrown when no nats-server binary is found; the message says how to get one. */
export class NatsServerNotFoundError extends Error {
  override readonly name = "NatsServerNotFoundError";
}

const WELL_KNOWN = ["/usr/sbin/nats-server", "/usr/local/bin/nats-server"];

/**
 * Where nats-server is: `binary` (from the configuration), else PATH (from
 * `env`), then /usr/sbin/nats-server, /usr/local/bin/nats-server. A `binary`
 * that is not an executable file is an error, not skipped.
 */
export function findNatsServer(binary?: string, env: NodeJS.ProcessEnv = process.env): string {
  if (binary !== undefined && binary.trim() !== "") {
    const file = path.resolve(binary.trim());
    if (!isExecutable(file)) {
      throw new NatsServerNotFoundError(`NATS_SERVER_BIN points to ${file}, which is not an executable file.\n${HOW_TO_INSTALL}`);
    }
    return file;
  }
  const onPath = (env["PATH"] ?? "")
    .split(path.delimiter)
    .filter((dir) => dir !== "")
    .map((dir) => path.join(dir, "nats-server"));
  const found = [...onPath, ...WELL_KNOWN].find(isExecutable);
  if (found === undefined) {
    throw new NatsServerNotFoundError(`nats-server was not found (looked in PATH, ${WELL_KNOWN.join(", ")}).\n${HOW_TO_INSTALL}`);
  }
  return found;
}

const HOW_TO_INSTALL = [
  "NATS_URL is not set, so modeldeploy starts its own nats-server with JetStream. To get one:",
  "  - Debian/Ubuntu: sudo apt-get install nats-server",
  "  - elsewhere: download a release binary from https://github.com/nats-io/nats-server/releases",
  "    and put it on PATH (or set NATS_SERVER_BIN=/path/to/nats-server)",
  "  - or set NATS_URL to an existing NATS server started with JetStream (nats-server -js)",
].join("\n");

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/**
 * Start `nats-server -a 127.0.0.1 -p <free port> -js -sd <dataDir>/nats` and
 * wait until it answers with a NATS INFO that has JetStream enabled.
 *
 * The server is killed (SIGTERM) from this process's 'exit' handler. That
 * handler does not run when this process dies by a signal it does not handle
 * (SIGTERM/SIGINT without a handler, SIGKILL): the application's signal
 * handlers should call stop(). A Ctrl-C in a terminal reaches the server too
 * (same process group).
 */
export async function startEmbeddedNats(options: EmbeddedNatsOptions): Promise<EmbeddedNats> {
  const logger = options.logger.child({ component: "embedded-nats" });
  const binary = findNatsServer(options.binary);
  const storeDir = path.join(path.resolve(options.dataDir), "nats");
  fs.mkdirSync(storeDir, { recursive: true });
  const startTimeoutMs = options.startTimeoutMs ?? 15_000;
  const stopGraceMs = options.stopGraceMs ?? 10_000;
  // A predecessor killed outright (SIGKILL, OOM) left its server running on
  // this store: two servers on one JetStream store must never run.
  const pidFile = `${storeDir}.pid`;
  await stopOrphanedServer(pidFile, storeDir, logger);

  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const server = spawnChild({
      name: "nats-server",
      file: binary,
      args: ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", storeDir],
      onStderrLine: (line) => relay(logger, line),
      onUnexpectedExit: (exit, tail) => logger.error("embedded nats-server exited unexpectedly", { ...exit, tail }),
    });
    try {
      await startedOrStopped(server, untilReady(server, port), "ready", startTimeoutMs);
    } catch (err) {
      // The free port was taken between our probe and the server's bind: once more.
      if (attempt === 1 && /address already in use/i.test(server.tail.text())) {
        logger.warn("port taken before nats-server could bind it; retrying on another port", { port });
        continue;
      }
      throw err;
    }
    // Running: the server must not keep this process alive by itself.
    server.unref();

    const url = `nats://127.0.0.1:${port}`;
    fs.writeFileSync(pidFile, `${server.pid}\n`);
    logger.info("embedded nats-server started", { url, storeDir, binary, pid: server.pid });
    let stopped: Promise<void> | undefined;
    return {
      url,
      stop() {
        stopped ??= server
          .stop(stopGraceMs, () => logger.warn("nats-server did not exit after SIGTERM; sending SIGKILL", { pid: server.pid }))
          .then((exit) => {
            fs.rmSync(pidFile, { force: true });
            logger.info("embedded nats-server stopped", { ...exit });
          });
        return stopped;
      },
    };
  }
}

/** The command line of a live (not zombie) process, or undefined. */
function liveCommandLine(pid: number): string | undefined {
  if (!isProcessAlive(pid)) return undefined;
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ");
  } catch {
    return undefined;
  }
}

async function stopOrphanedServer(pidFile: string, storeDir: string, logger: Logger): Promise<void> {
  let pid: number;
  try {
    pid = Number.parseInt(fs.readFileSync(pidFile, "utf8"), 10);
  } catch {
    return;
  }
  // Only a nats-server on this very store: a reused pid is someone else's.
  const isOrphan = () => {
    const cmd = liveCommandLine(pid);
    return cmd !== undefined && cmd.includes("nats-server") && cmd.includes(storeDir);
  };
  if (Number.isInteger(pid) && pid > 0 && isOrphan()) {
    logger.warn("stopping the nats-server a killed predecessor left running on this data directory", { pid, storeDir });
    process.kill(pid, "SIGTERM");
    for (let waited = 0; isOrphan(); waited += 100) {
      if (waited === 10_000) process.kill(pid, "SIGKILL");
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  fs.rmSync(pidFile, { force: true });
}

/** nats-server log lines: `[pid] date time [INF] text`. Errors and warnings keep their level; the rest is debug. */
function relay(logger: Logger, line: string): void {
  const m = /^\[\d+\]\s+\S+\s+\S+\s+\[(\w+)\]\s?(.*)$/.exec(line);
  if (m === null) {
    if (line.trim() !== "") logger.debug("nats-server output", { line });
    return;
  }
  const [, level, text] = m;
  if (level === "FTL" || level === "ERR") logger.error("nats-server: " + text, {});
  else if (level === "WRN") logger.warn("nats-server: " + text, {});
  else logger.debug("nats-server: " + text, {});
}

/** A port that was free a moment ago: bind 127.0.0.1:0, read it, close. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.unref();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      probe.close(() => {
        if (address === null || typeof address === "string") reject(new Error("no TCP address for a free port"));
        else resolve(address.port);
      });
    });
  });
}

/**
 * Polls 127.0.0.1:port until it sends a NATS INFO line with JetStream on.
 * Checking INFO (not only that the port accepts) also rules out another
 * program having taken the port. Stops polling once the server has exited.
 */
async function untilReady(server: Child, port: number): Promise<void> {
  while (!server.exited) {
    const info = await readInfo(port, 2_000);
    if (info.ok) {
      if (info.jetstream) return;
      throw new Error(`the server on 127.0.0.1:${port} does not have JetStream enabled`);
    }
    // Not listening yet: wait a little, or less if the server exits meanwhile.
    await Promise.race([server.exit, new Promise((resolve) => setTimeout(resolve, 25))]);
  }
  return new Promise<never>(() => {}); // startedOrStopped reports the exit
}

type InfoResult = { ok: true; jetstream: boolean } | { ok: false; problem: string };

function readInfo(port: number, timeoutMs: number): Promise<InfoResult> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    let buffered = "";
    let settled = false;
    const settle = (result: InfoResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => settle({ ok: false, problem: "no INFO within the probe timeout" }), timeoutMs);
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      buffered += chunk;
      const nl = buffered.indexOf("\r\n");
      if (nl < 0) {
        if (buffered.length > 64 * 1024) settle({ ok: false, problem: "not a NATS server (no INFO line)" });
        return;
      }
      const line = buffered.slice(0, nl);
      if (!line.startsWith("INFO ")) {
        settle({ ok: false, problem: "not a NATS server (first line is not INFO)" });
        return;
      }
      try {
        const info = JSON.parse(line.slice(5)) as { jetstream?: unknown };
        settle({ ok: true, jetstream: info.jetstream === true });
      } catch {
        settle({ ok: false, problem: "unreadable INFO" });
      }
    });
    socket.on("error", (err) => settle({ ok: false, problem: err.message }));
    socket.on("close", () => settle({ ok: false, problem: "connection closed before INFO" }));
  });
}
