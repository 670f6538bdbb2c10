// Every process the fault suite starts leads a process group of its own
// (spawned detached), so that it and whatever it started (model servers) can
// be killed together. Groups still alive when the test process exits — a
// case that failed half-way, a hook that never ran — are killed then.
import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";

const groups = new Set<number>();
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
  if (!hooked) {
    hooked = true;
    process.on("exit", () => {
      for (const g of groups) {
        killGroup(g, "SIGCONT");
        killGroup(g, "SIGKILL");
      }
    });
  }
  return child;
}

/** SIGKILL a group (thawed first), and forget it. */
export function killProcessGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  killGroup(pid, "SIGCONT");
  killGroup(pid, "SIGKILL");
  groups.delete(pid);
}
