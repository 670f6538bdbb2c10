// Every process the bench starts goes through here, so that all of them are
// stopped at the end, on failure, on Ctrl-C and even when the bench itself
// exits abruptly (a synchronous SIGKILL from the exit handler).
import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { createInterface } from "node:readline";

export interface Proc {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  /** stdout and stderr so far (the last 200 kB). */
  output(): string;
  /** Resolves with the first stdout JSON line that pred accepts; rejects if the process exits first. */
  json<T>(pred: (o: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<T>;
  /** Resolves once stdout or stderr has matched re; rejects if the process exits first. */
  waitFor(re: RegExp, timeoutMs?: number): Promise<void>;
  send(line: string): void;
  /** Resident set size now, MB. */
  rssMB(): number;
  readonly exited: Promise<number | null>;
  /** SIGTERM (then SIGKILL after graceMs); resolves once it is gone. */
  stop(graceMs?: number): Promise<void>;
}

const live = new Set<ChildProcess>();
let exitHandler = false;

function killOnExit(): void {
  if (exitHandler) return;
  exitHandler = true;
  process.on("exit", () => {
    for (const c of live) c.kill("SIGKILL");
  });
}

/**
 * For the bench's own process: a signal runs cleanup (stop the children,
 * drop what was created; at most 15 s) and exits; a second signal exits at
 * once. The exit handler kills any child still there.
 */
export function exitOnSignals(cleanup: () => Promise<void>): void {
  let stopping = false;
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(signal, () => {
      if (stopping) process.exit(130);
      stopping = true;
      process.stderr.write(`bench: ${signal}, stopping every process it started and dropping its databases\n`);
      const timer = setTimeout(() => process.exit(130), 15_000);
      void cleanup().finally(() => {
        clearTimeout(timer);
        process.exit(130);
      });
    });
  }
}

export function rssOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN) / 1024;
}

export function startProcess(name: string, file: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env): Proc {
  killOnExit();
  const child = spawn(file, [...args], { env, stdio: ["pipe", "pipe", "pipe"] });
  if (child.pid === undefined) throw new Error(`could not start ${name}`);
  live.add(child);
  let out = "";
  const keep = (d: Buffer) => {
    out += d.toString();
    if (out.length > 400_000) out = out.slice(-200_000);
  };
  child.stdout!.on("data", keep);
  child.stderr!.on("data", keep);
  child.stdin!.on("error", () => {});
  const exited = new Promise<number | null>((resolve) =>
    child.on("exit", (code) => {
      live.delete(child);
      resolve(code);
    }),
  );
  const jsonLines: Record<string, unknown>[] = [];
  const waiters = new Set<() => void>();
  createInterface({ input: child.stdout! }).on("line", (line) => {
    if (line.startsWith("{")) {
      try {
        jsonLines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        /* not ours */
      }
    }
    for (const w of waiters) w();
  });
  child.stderr!.on("data", () => {
    for (const w of waiters) w();
  });
  const until = <T>(check: () => T | undefined, what: string, timeoutMs: number) =>
    new Promise<T>((resolve, reject) => {
      const done = (f: () => void) => {
        waiters.delete(poll);
        clearTimeout(timer);
        f();
      };
      const poll = () => {
        const v = check();
        if (v !== undefined) done(() => resolve(v));
      };
      const timer = setTimeout(() => done(() => reject(new Error(`${name}: no ${what} within ${timeoutMs} ms:\n${out.slice(-3000)}`))), timeoutMs);
      waiters.add(poll);
      void exited.then((code) => {
        poll();
        done(() => reject(new Error(`${name} exited (${code}) before ${what}:\n${out.slice(-3000)}`)));
      });
      poll();
    });
  const proc: Proc = {
    name,
    child,
    pid: child.pid,
    output: () => out,
    json: <T>(pred: (o: Record<string, unknown>) => boolean, timeoutMs = 600_000) =>
      until(() => jsonLines.find(pred) as T | undefined, "expected JSON line", timeoutMs),
    waitFor: (re, timeoutMs = 60_000) => until(() => (re.test(out) ? true : undefined), String(re), timeoutMs).then(() => {}),
    send: (line) => {
      child.stdin!.write(line + "\n");
    },
    rssMB: () => rssOf(child.pid!),
    exited,
    async stop(graceMs = 10_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
  return proc;
}

/** Stops every process still running (the bench's finally). */
export async function stopAll(): Promise<void> {
  await Promise.all(
    [...live].map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null || c.signalCode !== null) return resolve();
          c.once("exit", () => resolve());
          c.kill("SIGTERM");
          setTimeout(() => c.kill("SIGKILL"), 5000).unref();
        }),
    ),
  );
}

export interface TreeMemory {
  /** Sum of VmRSS over the process and all its descendants, MB (a page two processes share is counted twice). */
  rssMB: number;
  /** Sum of Pss (smaps_rollup): each shared page divided among the processes that map it, MB. */
  pssMB: number;
  processes: { pid: number; command: string; rssMB: number }[];
}

/** The process `root` and its descendants (by parent pid, from /proc/<pid>/stat), and their memory. */
export function treeMemory(root: number): TreeMemory {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      // After the command in parentheses (which may hold spaces): state, ppid.
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // gone meanwhile
    }
  }
  const pids: number[] = [];
  const visit = (pid: number) => {
    pids.push(pid);
    for (const child of children.get(pid) ?? []) visit(child);
  };
  visit(root);
  const processes: TreeMemory["processes"] = [];
  let pssKB = 0;
  for (const pid of pids) {
    try {
      const rssMB = rssOf(pid);
      pssKB += Number(/^Pss:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"))?.[1] ?? NaN);
      const command = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
      processes.push({ pid, command: command.join(" "), rssMB });
    } catch {
      // exited meanwhile
    }
  }
  return { rssMB: processes.reduce((sum, p) => sum + p.rssMB, 0), pssMB: pssKB / 1024, processes };
}
