// One part of the system (`modeldeploy api|worker|runtime`) in a process of
// its own, with its JSON log lines kept, and a record of how it ended.
import type { ChildProcess } from "node:child_process";
import { CLI } from "../../helpers/system.js";
import { readLogLines, type LogLine } from "./log-lines.js";
import { killProcessGroup, spawnGroup } from "./process-groups.js";

export interface Role {
  readonly name: string;
  readonly pid: number;
  /** The log line that said it was ready (has ports, URLs). */
  readonly ready: LogLine;
  /** Warnings and errors it logged, and the last lines of anything else. */
  readonly lines: LogLine[];
  alive(): boolean;
  /** How it ended, once it has. */
  exit(): { code: number | null; signal: NodeJS.Signals | null } | undefined;
  /** The last of its stderr, raw (crash traces are not JSON). */
  tail(chars?: number): string;
  /** Resolves with the first log line (already seen or to come) that matches, or undefined after boundMs. */
  waitForLog(match: (line: LogLine) => boolean, boundMs: number): Promise<LogLine | undefined>;
  /** The test killed it on purpose: its death is no finding. */
  killedOnPurpose: boolean;
  signal(signal: NodeJS.Signals): void;
  /** kill -9, on purpose; resolves once it has exited. */
  kill9(): Promise<void>;
  /** SIGTERM, then SIGKILL for the whole group after graceMs (at once with 0). */
  stop(graceMs?: number): Promise<void>;
}

export async function startRole(name: string, args: string[], env: Record<string, string>, readyMsg: string): Promise<Role> {
  const child: ChildProcess = spawnGroup(process.execPath, [CLI, ...args], { env, stdio: ["ignore", "ignore", "pipe"] });
  const pid = child.pid!;
  let ended: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exited = new Promise<void>((resolve) =>
    child.once("exit", (code, signal) => {
      ended = { code, signal };
      resolve();
    }),
  );
  const log = readLogLines(child.stderr!, exited);
  const ready = await Promise.race([log.waitFor((line) => line["msg"] === readyMsg, 120_000), exited.then(() => undefined)]);
  if (!ready) {
    killProcessGroup(pid);
    await exited;
    throw new Error(`${name} did not say "${readyMsg}" (${JSON.stringify(ended)}):\n${log.tail(4000)}`);
  }
  const role: Role = {
    name,
    pid,
    ready,
    lines: log.lines,
    alive: () => ended === undefined,
    exit: () => ended,
    tail: log.tail,
    waitForLog: log.waitFor,
    killedOnPurpose: false,
    signal(sig) {
      if (ended === undefined) process.kill(pid, sig);
    },
    async kill9() {
      role.killedOnPurpose = true;
      if (ended === undefined) process.kill(pid, "SIGKILL");
      await exited;
    },
    async stop(graceMs = 5000) {
      if (ended === undefined && graceMs > 0) {
        try {
          process.kill(pid, "SIGCONT");
          process.kill(pid, "SIGTERM");
        } catch {
          // it has just exited
        }
        const timer = setTimeout(() => killProcessGroup(pid), graceMs);
        await exited;
        clearTimeout(timer);
      }
      // It, and whatever it started and left behind, go with its group.
      killProcessGroup(pid);
      await exited;
    },
  };
  return role;
}
