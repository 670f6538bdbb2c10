import { describe, expect, it } from "vitest";
import { decideReplicas, UP_AFTER_MS, type LoadMemory, type LoadReading } from "../../src/domain/autoscaling.js";
import { withScalingDefaults } from "../../src/domain/types.js";

const scaling = withScalingDefaults({ minReplicas: 0, maxReplicas: 4, targetInFlight: 2, scaleDownDelaySeconds: 10 });

/** Feeds readings one second apart with `inFlight` held constant; returns every change. */
function run(current: number, seconds: number, inFlight: number, arrivalsPerSecond: number, start?: { memory: LoadMemory; at: number }) {
  let memory = start?.memory;
  let at = start?.at ?? 1_000_000;
  let reading: LoadReading = memory?.last ?? { at, epoch: "e", inFlight, inFlightSeconds: 0, arrivals: 0 };
  if (!memory) memory = decideReplicas(scaling, current, undefined, reading).memory;
  const changes: { t: number; replicas: number; reason: string }[] = [];
  for (let i = 1; i <= seconds; i++) {
    at += 1000;
    reading = { at, epoch: "e", inFlight, inFlightSeconds: reading.inFlightSeconds + inFlight, arrivals: reading.arrivals + arrivalsPerSecond };
    const d = decideReplicas(scaling, current, memory, reading);
    memory = d.memory;
    if (d.change) {
      changes.push({ t: i, ...d.change });
      current = d.change.replicas;
    }
  }
  return { changes, memory: memory, at, current };
}

describe("decideReplicas", () => {
  it("adds replicas once in-flight stays above the target for UP_AFTER_MS, up to maxReplicas", () => {
    const { changes } = run(1, 10, 7, 50);
    expect(changes[0]).toMatchObject({ t: UP_AFTER_MS / 1000, replicas: 4 });
    expect(changes[0]!.reason).toMatch(/^in-flight 7\.0 per replica > 2 for 2 s$/);
    expect(changes).toHaveLength(1);
  });

  it("removes replicas only after scaleDownDelaySeconds of low load, and never below one while requests arrive", () => {
    const { changes } = run(4, 30, 1, 5);
    expect(changes).toEqual([{ t: 10, replicas: 1, reason: "in-flight 0.3 per replica < 2 for 10 s" }]);
  });

  it("goes to zero after scaleDownDelaySeconds without a request (minReplicas 0), and not with minReplicas 1", () => {
    expect(run(1, 30, 0, 0).changes).toEqual([{ t: 10, replicas: 0, reason: "no requests for 10 s" }]);
    const one = withScalingDefaults({ ...scaling, minReplicas: 1 });
    let memory = decideReplicas(one, 1, undefined, { at: 0, epoch: "e", inFlight: 0, inFlightSeconds: 0, arrivals: 0 }).memory;
    for (let i = 1; i <= 30; i++) {
      const d = decideReplicas(one, 1, memory, { at: i * 1000, epoch: "e", inFlight: 0, inFlightSeconds: 0, arrivals: 0 });
      expect(d.change).toBeUndefined();
      memory = d.memory;
    }
  });

  it("starts counting afresh when the runtime's counters restart (a new epoch)", () => {
    const first = run(1, 1, 7, 50);
    const restarted: LoadReading = { at: first.at + 1000, epoch: "other", inFlight: 7, inFlightSeconds: 0, arrivals: 0 };
    const d = decideReplicas(scaling, 1, first.memory, restarted);
    expect(d.change).toBeUndefined();
    expect(d.memory.highSince).toBeUndefined();
  });
});
