// The bench's CPU accounting from /proc: a child that burned CPU and ended is
// still counted (its time moved to this process's cutime), and a figure's
// note gives milliseconds per operation by role.
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { cpuNow, cpuSince, perOperation } from "../../src/bench/cpu-use.js";

describe("bench CPU accounting", () => {
  it("counts a child process that used CPU and has ended", () => {
    const start = cpuNow();
    expect(start).toBeDefined();
    // Busy for ~300 ms of CPU, then exits (and is reaped by spawnSync).
    const r = spawnSync(process.execPath, ["-e", "const end = process.cpuUsage().user + 300000; while (process.cpuUsage().user < end);"]);
    expect(r.status).toBe(0);
    const used = cpuSince(start)!;
    expect(used.load).toBeGreaterThanOrEqual(0.2);
    for (const v of Object.values(used)) expect(v).toBeGreaterThanOrEqual(0);
  });

  it("gives milliseconds per operation by role, leaving out roles that used next to nothing", () => {
    const use = { api: 0.5, worker: 0, bare: 0, postgres: 0.25, nats: 0.000001, load: 0.25 };
    expect(perOperation(use, 1000, { load: "load generator" })).toBe("API 0.50 + Postgres 0.25 + load generator 0.25 = 1.00 ms");
    expect(perOperation(use, 0)).toBe("");
    expect(perOperation(undefined, 1000)).toBe("");
  });
});
