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
  const listeners = new Set<(line: LogLine) => void>();
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
      // Keep what matters without growing for ever under load: every
      // warning and error, the last 2,000 of the rest.
      lines.push(line);
      if (lines.length > 4000) {
        const keep = lines.filter((l, i) => l["level"] === "warn" || l["level"] === "error" || i >= lines.length - 2000);
        lines.splice(0, lines.length, ...keep);
      }
      for (const listener of listeners) listener(line);
    }
  });
  const waitForLog = (match: (line: LogLine) => boolean, boundMs: number) =>
    new Promise<LogLine | undefined>((resolve) => {
      const seen = lines.find(match);
      if (seen) return resolve(seen);
      const done = (line: LogLine | undefined) => {
        listeners.delete(listener);
        clearTimeout(timer);
        resolve(line);
      };
      const listener = (line: LogLine) => {
        if (match(line)) done(line);
      };
      const timer = setTimeout(() => done(undefined), boundMs);
      listeners.add(listener);
      void exited.then(() => done(undefined));
    });
  const ready = await Promise.race([
    waitForLog((line) => line["msg"] === readyMsg, 120_000),
    exited.then(() => undefined),
  ]);
  if (!ready) {
    killProcessGroup(pid);
    await exited;
    throw new Error(`${name} did not say "${readyMsg}" (${JSON.stringify(ended)}):\n${raw.slice(-4000)}`);
  }
  const role: Role = {
    name,
    pid,
    ready,
    lines,
    alive: () => ended === undefined,
    exit: () => ended,
    tail: (chars = 3000) => raw.slice(-chars),
    waitForLog,
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
