// A Postgres server of a test's own (initdb + postgres on a free port, data in
// a temporary folder), so that a test may stop, kill, freeze and restart it
// without touching the machine's shared server. As root, it runs as the
// `postgres` user (initdb refuses root).
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";

export interface PrivatePostgres {
  /** postgres://postgres@127.0.0.1:<port>/postgres */
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  /** The postmaster's pid while it runs. */
  pid(): number | undefined;
  /** `pg_ctl stop -m fast` (SIGINT) or `-m immediate` (SIGQUIT); resolves once it has exited. */
  stop(mode?: "fast" | "immediate"): Promise<void>;
  /** SIGKILL the postmaster (its backends exit when they notice). */
  kill(): Promise<void>;
  /** Start again on the same data and port; resolves once it accepts queries. */
  start(): Promise<void>;
  /** SIGSTOP the postmaster and every backend (its children): a hung server. */
  freeze(): void;
  /** SIGCONT what freeze() stopped. */
  thaw(): void;
  /** Stop it and remove its data. Idempotent. */
  destroy(): Promise<void>;
  /** The server's log (stderr) so far. */
  log(): string;
}

function pgBinDir(): string {
  try {
    return execFileSync("pg_config", ["--bindir"], { encoding: "utf8" }).trim();
  } catch {
    const base = "/usr/lib/postgresql";
    const versions = fs.existsSync(base) ? fs.readdirSync(base).sort((a, b) => Number(b) - Number(a)) : [];
    if (versions[0] === undefined) throw new Error("no Postgres binaries found (pg_config, /usr/lib/postgresql/*/bin)");
    return path.join(base, versions[0], "bin");
  }
}

/** As root, the uid/gid of the `postgres` user (initdb and postgres refuse root). */
function runAs(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
  const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim());
  return { uid, gid };
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      probe.close(() => (typeof address === "object" && address !== null ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

/**
 * The postmaster's child processes. Every backend calls setsid() when it
 * starts (InitPostmasterChild), so they are not in the postmaster's process
 * group: a signal to the group reaches the postmaster alone.
 */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, "utf8");
      // pid (comm) state ppid …; comm may hold spaces and parentheses.
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid) out.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

function signalAll(pids: number[], sig: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, sig);
    } catch {
      // gone
    }
  }
}

const live = new Set<ChildProcess>();
let hooked = false;
function reapOnExit(child: ChildProcess): void {
  live.add(child);
  child.once("exit", () => live.delete(child));
  if (hooked) return;
  hooked = true;
  process.on("exit", () => {
    for (const c of live) {
      signalAll([c.pid!, ...childrenOf(c.pid!)], "SIGCONT");
      signalAll([c.pid!], "SIGQUIT");
    }
  });
}

async function acceptsQueries(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1000 });
  client.on("error", () => {});
  try {
    await client.connect();
    await client.query("select 1");
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

export async function startPrivatePostgres(o: { settings?: Record<string, string> } = {}): Promise<PrivatePostgres> {
  const bin = pgBinDir();
  const user = runAs();
  const root = fs.mkdtempSync(path.join(tmpdir(), "md-pg-"));
  const dataDir = path.join(root, "data");
  fs.mkdirSync(dataDir, { mode: 0o700 });
  if (user) {
    fs.chownSync(root, user.uid, user.gid);
    fs.chownSync(dataDir, user.uid, user.gid);
  }
  execFileSync(path.join(bin, "initdb"), ["-D", dataDir, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"], {
    stdio: "ignore",
    ...(user ?? {}),
  });
  const port = await freePort();
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const settings: Record<string, string> = {
    listen_addresses: "127.0.0.1",
    unix_socket_directories: root,
    // A killed server keeps what it wrote to the OS (a process crash, not a
    // power loss), so fsync may go; but commits must reach the WAL before
    // they return, or a kill loses commits that clients saw succeed.
    fsync: "off",
    full_page_writes: "off",
    max_connections: "200",
    ...o.settings,
  };
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let output = "";
  let frozen = false;

  const start = async () => {
    if (child !== undefined) throw new Error("private Postgres is already running");
    const args = ["-D", dataDir, "-p", String(port), ...Object.entries(settings).flatMap(([k, v]) => ["-c", `${k}=${v}`])];
    // Its own process group: freeze() stops the postmaster and every backend at once.
    const c = spawn(path.join(bin, "postgres"), args, { stdio: ["ignore", "ignore", "pipe"], detached: true, ...(user ?? {}) });
    child = c;
    reapOnExit(c);
    c.stderr!.on("data", (d: Buffer) => {
      output = (output + d.toString()).slice(-200_000);
    });
    exited = new Promise<void>((resolve) =>
      c.once("exit", () => {
        if (child === c) child = undefined;
        resolve();
      }),
    );
    for (;;) {
      if (child !== c) throw new Error(`private Postgres exited while starting:\n${output.slice(-4000)}`);
      if (await acceptsQueries(url)) return;
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  const signal = (sig: NodeJS.Signals) => {
    const pid = child?.pid;
    if (pid === undefined) return false;
    try {
      process.kill(pid, sig);
      return true;
    } catch {
      return false;
    }
  };
  // The postmaster first (it forks no new backend once stopped), then every
  // backend; SIGCONT in the same order.
  const freezeAll = (sig: "SIGSTOP" | "SIGCONT") => {
    const pid = child?.pid;
    if (pid === undefined) return false;
    signalAll([pid], sig);
    signalAll(childrenOf(pid), sig);
    return true;
  };

  const pgServer: PrivatePostgres = {
    url,
    port,
    dataDir,
    pid: () => child?.pid,
    async stop(mode = "fast") {
      if (frozen) pgServer.thaw();
      if (signal(mode === "fast" ? "SIGINT" : "SIGQUIT")) await exited;
    },
    async kill() {
      if (frozen) pgServer.thaw();
      const backends = child?.pid === undefined ? [] : childrenOf(child.pid);
      if (signal("SIGKILL")) await exited;
      // Orphaned backends of a killed postmaster go when they notice; until
      // then they hold its shared memory and a new postmaster refuses to start.
      await waitGone(backends);
    },
    start,
    freeze() {
      if (freezeAll("SIGSTOP")) frozen = true;
    },
    thaw() {
      freezeAll("SIGCONT");
      frozen = false;
    },
    async destroy() {
      if (child?.pid !== undefined) {
        freezeAll("SIGCONT");
        signal("SIGQUIT");
        await exited;
      }
      fs.rmSync(root, { recursive: true, force: true });
    },
    log: () => output,
  };
  try {
    await start();
  } catch (err) {
    await pgServer.destroy();
    throw err;
  }
  return pgServer;
}

async function waitGone(pids: number[]): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const alive = pids.filter((pid) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    });
    if (alive.length === 0) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A new database on `server` (by URL), returned as its URL. */
export async function createDatabaseOn(serverUrl: string, name: string): Promise<string> {
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  try {
    await admin.query(`create database ${name}`);
  } finally {
    await admin.end();
  }
  const u = new URL(serverUrl);
  u.pathname = `/${name}`;
  return u.toString();
}
