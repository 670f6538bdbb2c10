// Every process the fault suite starts leads a process group of its own
// (spawned detached), so that it and whatever it started (model servers) can
// be killed together. Groups still alive when the test process exits — a
// case that failed half-way, a hook that never ran — are killed then.
import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";

const groups = new Set<number>();
const cleanups = new Set<() => void>();
let hooked = false;

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // the group is gone
  }
}

export function spawnGroup(command: string, args: readonly string[], options: SpawnOptions): ChildProcess {
  const child = spawn(command, args, { ...options, detached: true });
  const pid = child.pid;
  if (pid === undefined) return child;
  groups.add(pid);
  hookExit();
  return child;
}

/** Runs at exit (synchronously) unless removed first: the last resort for what a case leaves. */
export function atExit(cleanup: () => void): () => void {
  hookExit();
  cleanups.add(cleanup);
  return () => cleanups.delete(cleanup);
}

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.on("exit", () => {
    for (const g of groups) {
      killGroup(g, "SIGCONT");
      killGroup(g, "SIGKILL");
    }
    for (const c of cleanups) {
      try {
        c();
      } catch {
        // best effort
      }
    }
  });
  // A signal (vitest stops its workers with SIGTERM; Ctrl-C) ends the process
  // without its exit hooks — this file's and the private servers'. Run them,
  // then die as the signal would have it. (Not process.exit: vitest replaces
  // it in its workers.)
  for (const [signal, code] of [
    ["SIGINT", 130],
    ["SIGTERM", 143],
    ["SIGHUP", 129],
  ] as const) {
    process.once(signal, () => {
      process.emit("exit", code);
      process.kill(process.pid, "SIGKILL");
    });
  }
}

/** SIGKILL a group (thawed first), and forget it. */
export function killProcessGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  killGroup(pid, "SIGCONT");
  killGroup(pid, "SIGKILL");
  groups.delete(pid);
}
