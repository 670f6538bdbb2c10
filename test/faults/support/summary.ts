// What a case saw, for its report: calls by outcome, failed tasks, and what
// the processes logged (what broke, in their own words).
import type { Load } from "./load.js";
import type { FaultSystem } from "./system.js";

/** The distinct errors (or warnings) the processes logged, most frequent first. */
function logged(sys: FaultSystem, level: "error" | "warn"): string {
  const counts = new Map<string, number>();
  for (const role of sys.roles()) {
    for (const line of role.lines) {
      if (line["level"] !== level) continue;
      const err = line["err"];
      const why = typeof err === "string" ? err : (err as { message?: string } | undefined)?.message;
      const key = `${role.name}: ${String(line["msg"])}${why ? ` (${why.slice(0, 120)})` : ""}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
  }
  return [...counts]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 6)
    .map(([k, n]) => `${k} ×${n}`)
    .join("; ");
}

export async function summarize(sys: FaultSystem, load: Load): Promise<string[]> {
  const codes = new Map<string, number>();
  for (const c of load.calls()) codes.set(`${c.op} ${c.code}`, (codes.get(`${c.op} ${c.code}`) ?? 0) + 1);
  const failed = (
    await sys.db.query<{ kind: string; reason: string; n: number }>(
      "select kind, failure->>'reason' as reason, count(*)::int as n from tasks where status = 'FAILED' group by 1, 2",
    )
  ).rows;
  return [
    `calls: ${[...codes].map(([k, n]) => `${k} ${n}`).join(", ")}; watch events: ${load.events().length}`,
    `tasks failed: ${failed.map((f) => `${f.kind} ${f.reason} ×${f.n}`).join(", ") || "none"}`,
    `errors logged: ${logged(sys, "error") || "none"}`,
    `warnings logged: ${logged(sys, "warn") || "none"}`,
  ];
}
