// Temp files of the weights cache, named for the process that writes them:
//   <host and pid namespace tag>.<pid>.<process start time>.<random>.part
// Several workers and the runtime share the cache folder, and a process killed
// mid-download leaves its file behind. The name lets a later process tell such
// a leftover (its writer is gone, or its pid now belongs to another process)
// from a live download, which is never touched.
import { createHash, randomUUID } from "node:crypto";
import { existsSync, readFileSync, readlinkSync } from "node:fs";
import { readdir, rm, stat } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import { isProcessAlive } from "../../child-process.js";

/** A temp file whose writer cannot be checked (another host, an older name) is removed once untouched this long. */
const UNATTRIBUTED_STALE_MS = 60 * 60 * 1000;

const NAME = /^([0-9a-f]{8})\.(\d+)\.(\d+)\.[0-9a-f-]{36}\.part$/;
const HAS_PROC = existsSync("/proc/self/stat");
/** Host and pid namespace: a pid means something only within the same ones (containers may share the cache). */
const HOST_TAG = createHash("sha256").update(`${hostname()} ${pidNamespace()}`).digest("hex").slice(0, 8);

function pidNamespace(): string {
  try {
    return readlinkSync("/proc/self/ns/pid");
  } catch {
    return "";
  }
}

/**
 * When the process started, in clock ticks since boot (/proc/<pid>/stat,
 * field 22): with the pid, it names one process, even after the pid is reused.
 * "0" where there is no /proc; undefined when the process is gone or a zombie.
 */
function processStart(pid: number | "self"): string | undefined {
  if (!HAS_PROC) return "0";
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // The command name (field 2) may hold spaces and parentheses: count from its end.
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  if (fields[0] === "Z") return undefined;
  return fields[19];
}

const OWN_START = processStart("self") ?? "0";

/** A new temp file name for this process. */
export function tempFileName(): string {
  return `${HOST_TAG}.${process.pid}.${OWN_START}.${randomUUID()}.part`;
}

/** Is the file named `name` a dead writer's leftover? */
async function isLeftover(dir: string, name: string): Promise<boolean> {
  const m = NAME.exec(name);
  if (m && m[1] === HOST_TAG) {
    const pid = Number(m[2]);
    if (!HAS_PROC || m[3] === "0") return !isProcessAlive(pid);
    return processStart(pid) !== m[3];
  }
  const info = await stat(join(dir, name)).catch(() => undefined);
  return info !== undefined && Date.now() - info.mtimeMs > UNATTRIBUTED_STALE_MS;
}

/** Removes the `.part` files in `dir` whose writer is gone; returns their names. */
export async function removeLeftoverTempFiles(dir: string): Promise<string[]> {
  const names = await readdir(dir).catch(() => [] as string[]);
  const removed: string[] = [];
  for (const name of names) {
    if (!name.endsWith(".part") || !(await isLeftover(dir, name))) continue;
    await rm(join(dir, name), { force: true });
    removed.push(name);
  }
  return removed;
}
