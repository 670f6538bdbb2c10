// Model-server processes of one system, found in /proc by their command line
// (their --model lies in the system's own data directory), so that one left
// behind is found even after its runtime is gone.
import { readdirSync, readFileSync } from "node:fs";

export interface ModelServerProcess {
  pid: number;
  ppid: number;
  /** --name: the deployment's name. */
  name: string;
  /** --model-version: the revision. */
  revision: string;
}

function stat(pid: string): { state: string; ppid: number } | undefined {
  try {
    // pid (comm) state ppid …; comm may hold spaces and parentheses.
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
    return { state: fields[0] ?? "", ppid: Number(fields[1]) };
  } catch {
    return undefined;
  }
}

export function modelServers(dataDir: string): ModelServerProcess[] {
  const found: ModelServerProcess[] = [];
  for (const pid of readdirSync("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    } catch {
      continue;
    }
    if (!argv.some((a) => a.endsWith("model-server/main.js"))) continue;
    const arg = (flag: string) => argv[argv.indexOf(flag) + 1] ?? "";
    if (!arg("--model").startsWith(dataDir + "/")) continue;
    const s = stat(pid);
    if (!s || s.state === "Z") continue;
    found.push({ pid: Number(pid), ppid: s.ppid, name: arg("--name"), revision: arg("--model-version") });
  }
  return found;
}

/**
 * Samples the system's model servers while a case runs and keeps, per
 * deployment revision, the most processes seen at once: more than the
 * revision's replicas is an effect applied twice.
 */
export function watchModelServers(dataDir: string, everyMs = 100): { stop(): Map<string, number> } {
  const most = new Map<string, number>();
  const sample = () => {
    const now = new Map<string, number>();
    for (const p of modelServers(dataDir)) {
      const key = `${p.name}#${p.revision}`;
      now.set(key, (now.get(key) ?? 0) + 1);
    }
    for (const [key, n] of now) most.set(key, Math.max(most.get(key) ?? 0, n));
  };
  const timer = setInterval(sample, everyMs);
  return {
    stop() {
      clearInterval(timer);
      sample();
      return most;
    },
  };
}
