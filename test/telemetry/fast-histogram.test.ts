// The allocation-free histogram renders as prom-client's own would: cumulative
// buckets, +Inf, _sum and _count per label set.
import { Histogram, Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { callContext, parseCallContext } from "../../src/telemetry/call-context.js";
import { FastHistogram } from "../../src/telemetry/fast-histogram.js";
import { tracingEnabled } from "../../src/telemetry/tracing.js";

describe("FastHistogram", () => {
  it("renders the same text as a prom-client Histogram fed the same values", async () => {
    const fast = new Registry();
    const reference = new Registry();
    const bounds = [0.01, 0.1, 1];
    const h = new FastHistogram("t_seconds", "test", ["method", "code"], bounds, fast);
    const r = new Histogram({ name: "t_seconds", help: "test", labelNames: ["method", "code"], buckets: bounds, registers: [reference] });
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
    }
    // The same child each time: bound once, kept by the caller.
    expect(h.child("Get", "ok")).toBe(h.child("Get", "ok"));
    const lines = async (reg: Registry) => (await reg.metrics()).split("\n").sort();
    expect(await lines(fast)).toEqual(await lines(reference));
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
