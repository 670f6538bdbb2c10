// The README's "## Configuration" table, read from the README itself
// (config-env and deploy tests compare it with src/config.ts).
import { readFileSync } from "node:fs";
import path from "node:path";

const root = path.resolve(import.meta.dirname, "../..");

/**
 * The table's default column by variable, backticks removed. A row
 * "`A_HOST` / `_PORT` | `x` / y" documents A_HOST (default x) and A_PORT
 * (default y): a suffix replaces as many of the first name's last words.
 */
export function documentedDefaults(): Map<string, string> {
  const readme = readFileSync(path.join(root, "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("## Configuration"));
  const table = section.slice(0, section.indexOf("\n## ", 1));
  const out = new Map<string, string>();
  for (const line of table.split("\n")) {
    const cells = /^\|([^|]+)\|([^|]*)\|/.exec(line);
    if (!cells) continue;
    const names = [...cells[1]!.matchAll(/`([A-Z0-9_]+)`/g)].map((m) => m[1]!);
    const defaults = names.length > 1 ? cells[2]!.split(" / ") : [cells[2]!];
    const base = names[0] ?? "";
    names.forEach((name, i) => {
      const suffix = name.startsWith("_") ? name.slice(1).split("_") : undefined;
      const full = suffix ? [...base.split("_").slice(0, -suffix.length), ...suffix].join("_") : name;
      out.set(full, (defaults[i] ?? "").replaceAll("`", "").trim());
    });
  }
  return out;
}

/** Every variable named in the table's first column. */
export function documentedVariables(): Set<string> {
  return new Set(documentedDefaults().keys());
}
