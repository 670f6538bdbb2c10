import { describe, expect, it } from "vitest";
import { allGoalsMet, formatTable, goalAtLeast, goalAtMost, goalBelow, goalBoth, verdict, type ResultRow } from "../../src/bench/table.js";

const row = (id: string, goal?: ResultRow["goal"]): ResultRow => ({
  id,
  figure: `figure ${id}`,
  measures: [
    { label: "", value: 1234.5, unit: "calls/s" },
    { label: "p99", value: 3.25, unit: "ms" },
  ],
  baseline: "bare server",
  baselineMeasures: [{ label: "", value: 1500, unit: "calls/s" }],
  ...(goal ? { goal } : {}),
});

describe("bench table", () => {
  it("judges goals as ratios and bounds", () => {
    expect(goalAtLeast(0.85, 0.8, "≥ 0.8×").ok).toBe(true);
    expect(goalAtLeast(0.79, 0.8, "≥ 0.8×").ok).toBe(false);
    expect(goalAtLeast(NaN, 0.8, "≥ 0.8×").ok).toBe(false);
    expect(goalAtMost(1.2, 1.2, "≤ 1.2×", "1.2×").ok).toBe(true);
    expect(goalBelow(50, 50, "< 50 ms", "50 ms").ok).toBe(false);
    expect(goalBelow(Infinity, 50, "< 50 ms", "∞").ok).toBe(false);
    const both = goalBoth(goalAtMost(1, 1.2, "a", "1×"), goalBelow(30, 25, "b", "30 KB"));
    expect(both.ok).toBe(false);
    expect(both.text).toBe("a; b");
  });

  it("prints each figure beside its baseline, goal and verdict", () => {
    const rows = [row("1", goalAtLeast(0.82, 0.8, "≥ 0.8× baseline")), row("2", goalAtLeast(0.5, 0.9, "≥ 0.9× baseline")), { ...row("8"), notes: "a note" }];
    const text = formatTable(rows);
    const lines = text.split("\n");
    expect(lines[0]).toMatch(/^figure\s+\| measured\s+\| baseline, same run\s+\| goal → actual/);
    expect(text).toContain("1,235 calls/s, p99 3.3 ms");
    expect(text).toContain("bare server: 1,500 calls/s");
    expect(lines.find((l) => l.startsWith("figure 1"))).toMatch(/≥ 0\.8× baseline → 0\.82×\s+\| ok$/);
    expect(lines.find((l) => l.startsWith("figure 2"))).toMatch(/MISSED$/);
    expect(lines.find((l) => l.startsWith("figure 8"))).toMatch(/report only\s+\| -$/);
    expect(text).toContain("    a note");
    expect(rows.map(verdict)).toEqual(["ok", "MISSED", "-"]);
    expect(allGoalsMet(rows)).toBe(false);
    expect(allGoalsMet([rows[0]!, rows[2]!])).toBe(true);
    // The rows are what the JSON file holds.
    expect(JSON.parse(JSON.stringify(rows))).toEqual(rows);
  });
});
