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

/**
 * What a pid is, cached: a command line changes only at exec, which follows a
 * fork within milliseconds, so one read a second after a pid first showed up
 * holds (pids do not come back within a case).
 */
type Known = { name: string; revision: string } | { other: true; firstSeen: number };
const SETTLED_MS = 1000;

function scan(dataDir: string, known: Map<string, Known>): ModelServerProcess[] {
  const found: ModelServerProcess[] = [];
  for (const pid of readdirSync("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    let k = known.get(pid);
    if (k === undefined || ("other" in k && Date.now() - k.firstSeen < SETTLED_MS)) {
      const firstSeen = k && "other" in k ? k.firstSeen : Date.now();
      let argv: string[];
      try {
        argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
      } catch {
        continue;
      }
      const arg = (flag: string) => argv[argv.indexOf(flag) + 1] ?? "";
      const ours = argv.some((a) => a.endsWith("model-server/main.js")) && arg("--model").startsWith(dataDir + "/");
      k = ours ? { name: arg("--name"), revision: arg("--model-version") } : { other: true, firstSeen };
      known.set(pid, k);
    }
    if ("other" in k) continue;
    const s = stat(pid);
    if (!s || s.state === "Z") continue;
    found.push({ pid: Number(pid), ppid: s.ppid, ...k });
  }
  return found;
}

export function modelServers(dataDir: string): ModelServerProcess[] {
  return scan(dataDir, new Map());
}

/**
 * Samples the system's model servers while a case runs and keeps, per
 * deployment revision, the most processes seen at once: more than the
 * revision's replicas is an effect applied twice.
 */
export function watchModelServers(dataDir: string, everyMs = 200): { stop(): Map<string, number> } {
  const most = new Map<string, number>();
  const known = new Map<string, Known>();
  const sample = () => {
    const now = new Map<string, number>();
    for (const p of scan(dataDir, known)) {
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
