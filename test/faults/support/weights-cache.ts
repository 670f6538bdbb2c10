// The partial downloads in a system's weights cache (the local runtime's
// <dataDir>/runtime/weights/tmp/*.part).
import { existsSync, readdirSync, statSync } from "node:fs";
import path from "node:path";

export function partialDownloads(dataDir: string): Array<{ file: string; bytes: number }> {
  const tmp = path.join(dataDir, "runtime", "weights", "tmp");
  if (!existsSync(tmp)) return [];
  return readdirSync(tmp).map((file) => ({ file, bytes: statSync(path.join(tmp, file), { throwIfNoEntry: false })?.size ?? 0 }));
}
