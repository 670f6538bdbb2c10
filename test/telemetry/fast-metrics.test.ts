// The allocation-free metrics render as prom-client's own would: cumulative
// buckets, +Inf, _sum and _count per label set; counters and gauges per label
// set. And the call context a queued task carries.
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { callContext, parseCallContext } from "../../src/telemetry/call-context.js";
import { FastCounter, FastGauge, FastHistogram } from "../../src/telemetry/fast-metrics.js";
import { createRegistry } from "../../src/telemetry/metrics.js";
import { tracingEnabled } from "../../src/telemetry/tracing.js";

const sortedLines = (text: string) => text.split("\n").filter(Boolean).sort();

describe("fast metrics", () => {
  it("render the same text as prom-client's metrics fed the same values", async () => {
    const fast = createRegistry();
    const reference = new Registry();
    const bounds = [0.01, 0.1, 1];
    const h = new FastHistogram("t_seconds", "test", ["method", "code"], bounds, fast);
    const r = new Histogram({ name: "t_seconds", help: "test", labelNames: ["method", "code"], buckets: bounds, registers: [reference] });
    const c = new FastCounter("c_total", "test", ["code"], fast);
    const rc = new Counter({ name: "c_total", help: "test", labelNames: ["code"], registers: [reference] });
    new FastGauge("g", "test", [], fast, (gauge) => gauge.child().set(42));
    new Gauge({ name: "g", help: "test", registers: [reference] }).set(42);
    const observations: Array<[string, string, number]> = [
      ["Get", "ok", 0.005],
      ["Get", "ok", 0.01],
      ["Get", "ok", 0.5],
      ["Get", "ok", 7],
      ["Get", "not_found", 0.02],
      ["Create", "ok", 0.1],
    ];
    for (const [method, code, v] of observations) {
      h.child(method, code).observe(v);
      r.labels(method, code).observe(v);
      c.child(code).inc();
      rc.labels(code).inc();
    }
    // The same child each time: bound once, kept by the caller.
    expect(h.child("Get", "ok")).toBe(h.child("Get", "ok"));
    const rendered = await fast.render();
    expect(rendered.contentType).toContain("text/plain");
    expect(sortedLines(rendered.text)).toEqual(sortedLines(await reference.metrics()));

    // A removed series is gone from the next scrape.
    h.remove((labels) => labels["code"] === "not_found");
    expect((await fast.render()).text).not.toContain('t_seconds_count{method="Get",code="not_found"}');
  });

  it("add the process's series only where asked", async () => {
    expect((await createRegistry({ processMetrics: true }).render()).text).toContain("process_cpu_seconds_total");
    expect((await createRegistry().render()).text).not.toContain("process_cpu_seconds_total");
  });
});

describe("call context", () => {
  it("is the request id alone while tracing is off", () => {
    expect(tracingEnabled()).toBe(false);
    expect(callContext("req-1")).toEqual({ "x-request-id": "req-1" });
  });

  it("keeps only the known headers, as strings, when read back", () => {
    expect(parseCallContext({ "x-request-id": "r", traceparent: "00-abc-def-01", other: "x", tracestate: 5 })).toEqual({
      "x-request-id": "r",
      traceparent: "00-abc-def-01",
    });
    expect(parseCallContext(null)).toBeNull();
    expect(parseCallContext({ other: "x" })).toBeNull();
    expect(parseCallContext({ "x-request-id": "y".repeat(600) })).toBeNull();
  });
});
