// One part of the system (`modeldeploy api|worker|runtime`) in a process of
// its own, with its JSON log lines kept, and a record of how it ended.
import type { ChildProcess } from "node:child_process";
import path from "node:path";
import { ROOT } from "../../helpers/system.js";
import { killProcessGroup, spawnGroup } from "./process-groups.js";

export const CLI = path.join(ROOT, "bin/modeldeploy.js");

export type LogLine = Record<string, unknown>;

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
  /** The test killed it on purpose: its death is no finding. */
  killedOnPurpose: boolean;
  signal(signal: NodeJS.Signals): void;
  /** kill -9, on purpose; resolves once it has exited. */
  kill9(): Promise<void>;
  /** SIGTERM, then SIGKILL for the whole group after graceMs. */
  stop(graceMs?: number): Promise<void>;
}

export async function startRole(name: string, args: string[], env: Record<string, string>, readyMsg: string): Promise<Role> {
  const child: ChildProcess = spawnGroup(process.execPath, [CLI, ...args], { env, stdio: ["ignore", "ignore", "pipe"] });
  const pid = child.pid!;
  const lines: LogLine[] = [];
  let raw = "";
  let ended: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exited = new Promise<void>((resolve) =>
    child.once("exit", (code, signal) => {
      ended = { code, signal };
      resolve();
    }),
  );
  let buf = "";
  let onLine: ((line: LogLine) => void) | undefined;
  child.stderr!.on("data", (d: Buffer) => {
    const s = d.toString();
    raw = (raw + s).slice(-100_000);
    buf += s;
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const text = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      let line: LogLine;
      try {
        line = JSON.parse(text) as LogLine;
      } catch {
        continue;
      }
      // Keep what matters without growing for ever under load.
      if (line["level"] === "warn" || line["level"] === "error" || lines.length < 2000) lines.push(line);
      onLine?.(line);
    }
  });
  const ready = await new Promise<LogLine>((resolve, reject) => {
    onLine = (line) => {
      if (line["msg"] === readyMsg) resolve(line);
    };
    void exited.then(() => reject(new Error(`${name} exited (${JSON.stringify(ended)}) before "${readyMsg}":\n${raw.slice(-4000)}`)));
  }).catch(async (err: unknown) => {
    killProcessGroup(pid);
    await exited;
    throw err;
  });
  onLine = undefined;
  const role: Role = {
    name,
    pid,
    ready,
    lines,
    alive: () => ended === undefined,
    exit: () => ended,
    tail: (chars = 3000) => raw.slice(-chars),
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
      if (ended === undefined) {
        process.kill(pid, "SIGCONT");
        process.kill(pid, "SIGTERM");
        const timer = setTimeout(() => killProcessGroup(pid), graceMs);
        await exited;
        clearTimeout(timer);
      }
      // Whatever it started and left behind goes with its group.
      killProcessGroup(pid);
    },
  };
  return role;
}
