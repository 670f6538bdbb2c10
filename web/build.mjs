// `npm run build`'s dashboard step: vite build, only when something it reads
// changed since dist/web was written (so `npm start` does not rebuild it).
import { readdirSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const web = path.dirname(fileURLToPath(import.meta.url));
const root = path.dirname(web);
const output = path.join(root, "dist/web/index.html");
const inputs = [web, path.join(root, "src/gen"), path.join(root, "package-lock.json")];

function newest(file) {
  const stat = statSync(file, { throwIfNoEntry: false });
  if (stat === undefined) return 0;
  if (!stat.isDirectory()) return stat.mtimeMs;
  return Math.max(stat.mtimeMs, ...readdirSync(file).map((name) => newest(path.join(file, name))));
}

const built = statSync(output, { throwIfNoEntry: false })?.mtimeMs ?? 0;
if (built === 0 || Math.max(...inputs.map(newest)) > built) {
  const { build } = await import("vite");
  await build({ configFile: path.join(web, "vite.config.ts"), logLevel: "warn" });
}
