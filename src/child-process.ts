// Helpers for the child processes this project starts (embedded Postgres,
// nats-server, model-server replicas): stop them politely, and never leave
// them behind.
import type { ChildProcess } from "node:child_process";
import fs from "node:fs";

/** The last `lines` lines of a process's output, for error messages. */
export function tailLines(text: string, lines = 20): string {
  return text.trim().split("\n").slice(-lines).join("\n");
}

/** SIGTERM, then SIGKILL after graceMs; resolves once the child has exited. */
export async function terminateChild(child: ChildProcess, exited: Promise<unknown>, graceMs: number, onKill: () => void): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGTERM");
  let timer: NodeJS.Timeout | undefined;
  const graceOver = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), graceMs);
  });
  const outcome = await Promise.race([exited.then(() => "exited" as const), graceOver]);
  clearTimeout(timer);
  if (outcome === "timeout") {
    onKill();
    child.kill("SIGKILL");
    await exited;
  }
}

// Children still running when this process exits get SIGTERM.
const live = new Set<ChildProcess>();
let exitHookInstalled = false;

export function killOnExit(child: ChildProcess): void {
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
