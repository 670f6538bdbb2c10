// One model-server child process (started like every child of this project,
// src/child-process.ts): a pipe on stdin (the child exits when that closes,
// so children never outlive a killed supervisor), its port read from the
// first {"event":"listening"} line on stdout, its {"event":"ready"} line
// reported (readiness is pushed, not only polled), its output kept in a LogTail.
import { portEvent, spawnChild, type ProcessExit } from "../../child-process.js";
import type { LogTail } from "../../log-tail.js";

export type { ProcessExit } from "../../child-process.js";

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
  let onListening: (port: number) => void = () => {};
  const listening = new Promise<number>((resolve) => (onListening = resolve));
  let onReady: () => void = () => {};
  const readySignal = new Promise<void>((resolve) => (onReady = resolve));
  let sawListening = false;
  let sawReady = false;
  const child = spawnChild({
    name: "model server",
    file,
    args: [...fixedArgs, ...args],
    stdin: "pipe",
    tail,
    onStdoutLine(line) {
      const event = sawReady ? undefined : portEvent(line);
      if (event?.event === "listening" && !sawListening) {
        sawListening = true;
        onListening(event.port);
        return true;
      }
      if (event?.event === "ready" && sawListening) {
        sawReady = true;
        onReady();
        return true;
      }
      return false;
    },
  });
  return {
    pid: child.pid,
    listening,
    readySignal,
    exit: child.exit,
    get exited() {
      return child.exited;
    },
    terminate: (graceMs) => child.stop(graceMs),
  };
}
