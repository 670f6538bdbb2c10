// The bench's result rows: each figure beside the limit beneath it, the goal
// and whether it was met; printed as a table and written as JSON.
export interface Measure {
  /** What the number is, e.g. "calls/s", "p99 ms". */
  label: string;
  value: number;
  unit: string;
  /** The raw samples the value summarizes (one per alternated pair). */
  samples?: number[];
}

export interface Goal {
  /** e.g. "≥ 0.8× baseline". */
  text: string;
  /** The number compared with the limit (a ratio or a figure), NaN when unknown. */
  actual: number;
  /** Human form of actual, e.g. "0.93×". */
  shown: string;
  ok: boolean;
}

export interface ResultRow {
  id: string;
  figure: string;
  measures: Measure[];
  baseline: string;
  baselineMeasures: Measure[];
  /** No goal: reported only. */
  goal?: Goal;
  notes?: string;
}

export function goalAtLeast(actual: number, limit: number, text: string, shown = `${fmt(actual, 2)}×`): Goal {
  return { text, actual, shown, ok: Number.isFinite(actual) && actual >= limit };
}

export function goalAtMost(actual: number, limit: number, text: string, shown: string): Goal {
  return { text, actual, shown, ok: Number.isFinite(actual) && actual <= limit };
}

export function goalBelow(actual: number, limit: number, text: string, shown: string): Goal {
  return { text, actual, shown, ok: Number.isFinite(actual) && actual < limit };
}

/** Both must hold. */
export function goalBoth(a: Goal, b: Goal): Goal {
  return { text: `${a.text}; ${b.text}`, actual: a.ok ? b.actual : a.actual, shown: `${a.shown}; ${b.shown}`, ok: a.ok && b.ok };
}

export function fmt(n: number, digits = 0): string {
  if (n === Infinity) return "∞";
  if (!Number.isFinite(n)) return "n/a";
  return n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function measures(ms: readonly Measure[]): string {
  return ms.map((m) => `${m.label ? `${m.label} ` : ""}${fmt(m.value, Math.abs(m.value) < 10 ? 1 : 0)}${m.unit ? ` ${m.unit}` : ""}`).join(", ");
}

export function verdict(row: ResultRow): "ok" | "MISSED" | "-" {
  if (!row.goal) return "-";
  return row.goal.ok ? "ok" : "MISSED";
}

/** A plain-text table, one block per figure: the figure, the baseline beneath it, the goal. */
export function formatTable(rows: readonly ResultRow[]): string {
  const cols = rows.map((r) => [
    r.figure,
    measures(r.measures),
    r.baseline ? `${r.baseline}: ${measures(r.baselineMeasures)}` : "",
    r.goal ? `${r.goal.text} → ${r.goal.shown}` : "report only",
    verdict(r),
  ]);
  const head = ["figure", "measured", "baseline, same run", "goal → actual", ""];
  const width = head.map((h, i) => Math.max(h.length, ...cols.map((c) => c[i]!.length)));
  const line = (c: string[]) =>
    c
      .map((v, i) => v.padEnd(width[i]!))
      .join(" | ")
      .trimEnd();
  const out = [line(head), width.map((w) => "-".repeat(w)).join("-|-")];
  for (const [i, c] of cols.entries()) {
    out.push(line(c));
    const notes = rows[i]!.notes;
    if (notes) out.push(`    ${notes}`);
  }
  return out.join("\n");
}

export function allGoalsMet(rows: readonly ResultRow[]): boolean {
  return rows.every((r) => !r.goal || r.goal.ok);
}
