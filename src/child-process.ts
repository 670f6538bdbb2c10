// The one way this project starts a child process (embedded Postgres,
// nats-server, model-server replicas): spawned, its output split into lines
// and the last ones kept for error messages, its end reported once, stopped
// politely (TERM, then KILL after a grace), and never left behind when this
// process exits.
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import { createInterface } from "node:readline";
import type { Readable } from "node:stream";
import { LogTail } from "./log-tail.js";

export interface ProcessExit {
  exitCode: number | null;
  signal: string | null;
}

export interface ChildSpec {
  /** What messages call it: "nats-server", "embedded Postgres". */
  name: string;
  file: string;
  args: readonly string[];
  env?: NodeJS.ProcessEnv;
  /** "pipe" for a child that exits when its stdin closes (so it never outlives a killed parent). */
  stdin?: "pipe" | "ignore";
  /** An IPC channel, for a child that watches it to notice this process going away. */
  ipc?: boolean;
  /** Its own process group: a terminal's Ctrl-C reaches only this process, which stops the child in its turn. */
  detached?: boolean;
  /** Where its output lines are kept; a new tail by default. */
  tail?: LogTail;
  /** Each stdout line; return true to keep it out of the tail (a protocol line, not a log line). */
  onStdoutLine?: (line: string) => boolean | void;
  /** Each stderr line (kept in the tail too). */
  onStderrLine?: (line: string) => void;
  /** It ended without stop() being called. */
  onUnexpectedExit?: (exit: ProcessExit, tail: string) => void;
}

export interface Child {
  readonly name: string;
  readonly pid: number | undefined;
  /** Resolves once it has ended and its output is read (or could not be started); never rejects. */
  readonly exit: Promise<ProcessExit>;
  readonly exited: boolean;
  readonly tail: LogTail;
  /** Its stdin when spec.stdin is "pipe". */
  readonly stdin: NodeJS.WritableStream | null;
  /** SIGTERM, then SIGKILL after graceMs; idempotent; resolves once it is gone. */
  stop(graceMs: number, onKill?: () => void): Promise<ProcessExit>;
  /** Running in the background from now on: it does not keep this process alive. */
  unref(): void;
}

export function spawnChild(spec: ChildSpec): Child {
  const tail = spec.tail ?? new LogTail();
  const child = spawn(spec.file, [...spec.args], {
    stdio: [spec.stdin ?? "ignore", "pipe", "pipe", ...(spec.ipc ? (["ipc"] as const) : [])],
    detached: spec.detached ?? false,
    env: spec.env ?? process.env,
  });
  killOnExit(child);
  let exited = false;
  let stopping: Promise<ProcessExit> | undefined;

  eachLine(child.stdout!, (line) => {
    if (spec.onStdoutLine?.(line) !== true) tail.push(line);
  });
  eachLine(child.stderr!, (line) => {
    tail.push(line);
    spec.onStderrLine?.(line);
  });
  // An EPIPE on stdin just means the child is gone; its exit covers it.
  child.stdin?.on("error", () => {});

  const exit = new Promise<ProcessExit>((resolve) => {
    const done = (result: ProcessExit) => {
      if (exited) return;
      exited = true;
      resolve(result);
      if (stopping === undefined) spec.onUnexpectedExit?.(result, tail.text(20));
    };
    // "close" rather than "exit": it comes after stdout/stderr are drained, so the tail is complete.
    child.once("close", (exitCode, signal) => done({ exitCode, signal }));
    // "on", not "once": a later failure (a kill that fails) must not become an unhandled error event.
    child.on("error", (err) => {
      tail.push(`cannot start ${spec.file}: ${err.message}`);
      // A spawn failure emits 'error' and never 'close'.
      if (child.pid === undefined) done({ exitCode: null, signal: null });
    });
  });

  return {
    name: spec.name,
    pid: child.pid,
    exit,
    get exited() {
      return exited;
    },
    tail,
    stdin: child.stdin,
    stop(graceMs, onKill) {
      stopping ??= terminate(child, exit, graceMs, () => {
        tail.push(`did not stop within ${graceMs} ms of SIGTERM: killed`);
        onKill?.();
      });
      return stopping;
    },
    unref() {
      child.unref();
      child.channel?.unref();
      for (const stream of [child.stdin, child.stdout, child.stderr]) (stream as unknown as { unref?: () => void } | null)?.unref?.();
    },
  };
}

/**
 * Waits for `ready` (a line it printed, a port that answers), and rejects
 * with its last output if it exits first or `timeoutMs` passes; then stops it.
 */
export async function startedOrStopped<T>(child: Child, ready: Promise<T>, what: string, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const failure = (message: string) => {
    const lines = child.tail.text(20).trim();
    return new Error(lines === "" ? message : `${message}; its output:\n${lines}`);
  };
  try {
    return await Promise.race([
      ready,
      child.exit.then((e) => {
        throw failure(`${child.name} exited before ${what} (code ${e.exitCode}, signal ${e.signal})`);
      }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(failure(`${child.name} did not report ${what} within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } catch (err) {
    await child.stop(2_000);
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/** A `{"event":"…","port":n}` line, which our children print to say where they listen and when they are ready. */
export function portEvent(line: string): { event: string; port: number } | undefined {
  if (!line.startsWith("{")) return undefined;
  try {
    const msg = JSON.parse(line) as { event?: unknown; port?: unknown };
    if (typeof msg.event === "string" && typeof msg.port === "number" && Number.isInteger(msg.port) && msg.port > 0) {
      return { event: msg.event, port: msg.port };
    }
  } catch {
    // Not one of ours: an ordinary log line.
  }
  return undefined;
}

function eachLine(stream: Readable, onLine: (line: string) => void): void {
  createInterface({ input: stream, crlfDelay: Infinity }).on("line", onLine);
}

async function terminate(child: ChildProcess, exit: Promise<ProcessExit>, graceMs: number, onKill: () => void): Promise<ProcessExit> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return exit;
  child.kill("SIGTERM");
  let timer: NodeJS.Timeout | undefined;
  const graceOver = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), graceMs);
  });
  const outcome = await Promise.race([exit.then(() => "exited" as const), graceOver]);
  clearTimeout(timer);
  if (outcome === "timeout") {
    onKill();
    child.kill("SIGKILL");
  }
  return exit;
}

// Children still running when this process exits get SIGTERM.
const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function killOnExit(child: ChildProcess): void {
  live.add(child);
  child.once("exit", () => live.delete(child));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on("exit", () => {
      for (const c of live) c.kill("SIGTERM");
    });
  }
}

/**
 * Is `pid` a live process? Signal 0 answers for a zombie too (dead, not yet
 * reaped by a slow init), so /proc, where there is one, has the last word.
 */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
  try {
    return !/\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return true; // no /proc: trust the signal
  }
}
