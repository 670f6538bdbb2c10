// The agent's desired state on disk: written atomically (temp file, fsync,
// rename) on every change, read back when the agent starts.
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import type { RevisionDesired } from "./revision.js";
import type { Route } from "./routes.js";

export interface PersistedState {
  version: 1;
  revisions: RevisionDesired[];
  routes: Route[];
  /** Released deployment uids: never started again. */
  tombstones: string[];
}

export const emptyState = (): PersistedState => ({ version: 1, revisions: [], routes: [], tombstones: [] });

export function loadState(path: string): PersistedState {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return emptyState();
    throw err;
  }
  let state: Partial<PersistedState>;
  try {
    state = JSON.parse(text) as Partial<PersistedState>;
  } catch (err) {
    throw new Error(`${path} is not valid JSON (${(err as Error).message}); fix or remove it to start over`);
  }
  if (state.version !== 1) throw new Error(`${path} has unsupported version ${String(state.version)}`);
  return { version: 1, revisions: state.revisions ?? [], routes: state.routes ?? [], tombstones: state.tombstones ?? [] };
}

// Synchronous on purpose: the file is small, and writes can then never interleave.
export function saveState(path: string, state: PersistedState): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp`;
  const fd = openSync(tmp, "w");
  try {
    writeSync(fd, JSON.stringify(state, null, 2) + "\n");
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}
