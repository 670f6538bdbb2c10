import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parseOptions, wants } from "../../src/bench/options.js";

describe("bench options", () => {
  it("quick mode is smaller, JSON goes under the temp dir by default", () => {
    const quick = parseOptions(["--quick"], {});
    const full = parseOptions([], {});
    expect(quick.quick).toBe(true);
    expect(quick.pairs).toBeLessThanOrEqual(full.pairs);
    expect(quick.drainTasks).toBeLessThan(full.drainTasks);
    expect(full.drainTasks).toBe(5000);
    expect(full.fanoutStreams).toBe(10_000);
    expect(quick.jsonPath.startsWith(tmpdir() + path.sep)).toBe(true);
    expect(quick.strict).toBe(false);
  });

  it("takes --json, --strict, --only and the servers from the environment", () => {
    const o = parseOptions(["--json", "out/b.json", "--strict", "--only", "1,4"], { DATABASE_URL: "postgres://x/y", NATS_URL: "nats://z:1" });
    expect(o.jsonPath).toBe(path.resolve("out/b.json"));
    expect(o.strict).toBe(true);
    expect(o.databaseUrl).toBe("postgres://x/y");
    expect(o.natsUrl).toBe("nats://z:1");
    expect(wants(o, "4")).toBe(true);
    expect(wants(o, "2")).toBe(false);
    expect(() => parseOptions(["--only", "14"], {})).toThrow(/figure ids/);
    expect(wants(parseOptions(["--only", "10"], {}), "10")).toBe(true);
    expect(wants(parseOptions(["--only", "12"], {}), "12")).toBe(true);
  });
});
