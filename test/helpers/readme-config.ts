// The variables the README's "## Configuration" table documents, read from the
// README itself (config-env and deploy tests compare them with src/config.ts).
import { readFileSync } from "node:fs";
import path from "node:path";

const root = path.resolve(import.meta.dirname, "../..");

/** Every variable named in the table's first column (`A_HOST` / `_PORT` is A_HOST and A_PORT). */
export function documentedVariables(): Set<string> {
  const readme = readFileSync(path.join(root, "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("## Configuration"));
  const table = section.slice(0, section.indexOf("\n## ", 1));
  const out = new Set<string>();
  for (const line of table.split("\n")) {
    const first = /^\|\s*([^|]+?)\s*\|/.exec(line)?.[1] ?? "";
    const names = [...first.matchAll(/`([A-Z0-9_]+)`/g)].map((m) => m[1]!);
    const base = names[0];
    for (const name of names) {
      // "`X_CERT_FILE` / `_KEY_FILE`": the suffix replaces the base's last words.
      if (name.startsWith("_") && base !== undefined) {
        const words = name.slice(1).split("_").length;
        out.add([...base.split("_").slice(0, -words), ...name.slice(1).split("_")].join("_"));
      } else out.add(name);
    }
  }
  return out;
}
