// One model-server child process: spawned with a pipe on stdin (the child
// exits when that closes, so children never outlive a killed supervisor), and
// stopped like every child of this project (src/child-process.ts), its
// port read from the first {"event":"listening"} line on stdout, its
// {"event":"ready"} line reported (readiness is pushed, not only polled), its
// output kept in a LogTail.
import { spawn } from "node:child_process";
import { killOnExit, terminateChild } from "../../child-process.js";
import type { LogTail } from "./log-tail.js";

export interface ProcessExit {
  exitCode: number | null;
  signal: string | null;
}

export interface ReplicaProcess {
  readonly pid: number | undefined;
  /** Resolves once the child is listening; never rejects (watch `exit` instead). */
  readonly listening: Promise<number>;
  /**
   * Resolves (after `listening`) when the child says its model is loaded; never
   * rejects. A model server that never says so is found ready by probes alone.
   */
  readonly readySignal: Promise<void>;
  readonly exit: Promise<ProcessExit>;
  readonly exited: boolean;
  /** SIGTERM, then SIGKILL after graceMs; resolves once the child is gone. */
  terminate(graceMs: number): Promise<ProcessExit>;
}

export function spawnReplicaProcess(command: readonly string[], args: readonly string[], tail: LogTail): ReplicaProcess {
  const [file, ...fixedArgs] = command;
  if (!file) throw new Error("model-server command is empty");
  const child = spawn(file, [...fixedArgs, ...args], { stdio: ["pipe", "pipe", "pipe"] });
  // Like every child this project starts: TERM when this process exits.
  killOnExit(child);
  let exited = false;

  let onListening: (port: number) => void = () => {};
  const listening = new Promise<number>((resolve) => (onListening = resolve));
  let onReady: () => void = () => {};
  const readySignal = new Promise<void>((resolve) => (onReady = resolve));
  let sawListening = false;
  let sawReady = false;
  tail.follow(child.stdout, (line) => {
    const event = !sawReady ? stdoutEvent(line) : undefined;
    if (event?.event === "listening" && !sawListening) {
      sawListening = true;
      onListening(event.port);
      return;
    }
    if (event?.event === "ready" && sawListening) {
      sawReady = true;
      onReady();
      return;
    }
    tail.push(line);
  });
  tail.follow(child.stderr);
  // An EPIPE on stdin just means the child is gone; exit handling covers it.
  child.stdin.on("error", () => {});

  const exit = new Promise<ProcessExit>((resolve) => {
    const done = (result: ProcessExit) => {
      if (exited) return;
      exited = true;
      resolve(result);
    };
    // "close" rather than "exit": it fires after stdout/stderr are drained, so the tail is complete.
    child.once("close", (exitCode, signal) => done({ exitCode, signal }));
    // "on", not "once": a later failure (a kill that fails) must not become an unhandled error event.
    child.on("error", (err) => {
      tail.push(`cannot start ${file}: ${err.message}`);
      if (child.pid === undefined) done({ exitCode: null, signal: null });
    });
  });

  return {
    pid: child.pid,
    listening,
    readySignal,
    exit,
    get exited() {
      return exited;
    },
    async terminate(graceMs) {
      if (exited) return exit;
      await terminateChild(child, exit, graceMs, () => tail.push(`did not stop within ${graceMs} ms of SIGTERM: killed`));
      return exit;
    },
  };
}

/** A {"event":"listening"|"ready","port":n} line of the model server's stdout. */
function stdoutEvent(line: string): { event: "listening" | "ready"; port: number } | undefined {
  if (!line.startsWith("{")) return undefined;
  try {
    const msg = JSON.parse(line) as { event?: unknown; port?: unknown };
    if ((msg.event === "listening" || msg.event === "ready") && typeof msg.port === "number") {
      return { event: msg.event, port: msg.port };
    }
  } catch {
    // Not one of ours: an ordinary log line.
  }
  return undefined;
}
