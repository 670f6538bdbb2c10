// Flag parsing of the traffic and autoscaler flags: --canary steps, the
// canary's judgement, and scaling flags that keep what they do not name.
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { canarySteps, givesScaling, rolloutFrom, scalingFrom, UsageError } from "../../src/cli/args.js";
import { RolloutStrategy, ScalingSchema } from "../../src/gen/modeldeploy/v1/resources_pb.js";

describe("--canary", () => {
  it("reads PERCENT:PAUSE_SECONDS steps, separated by commas", () => {
    expect(canarySteps("10:30,50:30")).toEqual([
      { percent: 10, pauseSeconds: 30 },
      { percent: 50, pauseSeconds: 30 },
    ]);
    // Spaces, a % sign and an s suffix read the same.
    expect(canarySteps(" 5%:0, 25:60s ")).toEqual([
      { percent: 5, pauseSeconds: 0 },
      { percent: 25, pauseSeconds: 60 },
    ]);
  });

  it.each(["", "10", "10:", ":30", "10:30,", "10:30;50:30", "ten:30", "10.5:30", "-10:30", "10:30:5", "10:-1"])("refuses %j as a usage error", (raw) => {
    expect(() => canarySteps(raw)).toThrow(UsageError);
    expect(() => canarySteps(raw)).toThrow(/--canary takes steps PERCENT:PAUSE_SECONDS separated by commas, e.g. 10:30,50:30/);
  });

  it("builds a CANARY rollout with the error rate and request count given", () => {
    expect(rolloutFrom({ canary: "10:30,50:30", "max-error-rate": "0.05", "min-requests": "50" })).toEqual({
      strategy: RolloutStrategy.CANARY,
      steps: [
        { percent: 10, pauseSeconds: 30 },
        { percent: 50, pauseSeconds: 30 },
      ],
      maxErrorRate: 0.05,
      minRequests: 50,
    });
    // Unset: the API's defaults.
    const plain = rolloutFrom({ canary: "20:10" });
    expect(plain).toEqual({ strategy: RolloutStrategy.CANARY, steps: [{ percent: 20, pauseSeconds: 10 }] });
    expect(plain && "maxErrorRate" in plain).toBe(false);
  });

  it("is all at once (no rollout sent) without --canary", () => {
    expect(rolloutFrom({})).toBeUndefined();
  });

  it("refuses a canary's judgement without a canary, and bad numbers", () => {
    expect(() => rolloutFrom({ "max-error-rate": "0.1" })).toThrow(new UsageError("--max-error-rate and --min-requests judge canary steps: give --canary too"));
    expect(() => rolloutFrom({ "min-requests": "5" })).toThrow(UsageError);
    expect(() => rolloutFrom({ canary: "10:30", "max-error-rate": "five percent" })).toThrow(
      new UsageError('--max-error-rate takes a fraction of requests, e.g. 0.05, got "five percent"'),
    );
    expect(() => rolloutFrom({ canary: "10:30", "min-requests": "1.5" })).toThrow(new UsageError('--min-requests takes a whole number, got "1.5"'));
    // Given twice, the last one counts.
    expect(rolloutFrom({ canary: ["bad", "10:5"] })?.steps).toEqual([{ percent: 10, pauseSeconds: 5 }]);
  });
});

describe("scaling flags", () => {
  const current = create(ScalingSchema, { minReplicas: 1, maxReplicas: 4, targetInFlight: 8, scaleDownDelaySeconds: 120, wakeTimeoutSeconds: 30 });

  it("set the autoscaler's fields and keep the rest", () => {
    expect(givesScaling({ "target-in-flight": "2" })).toBe(true);
    expect(scalingFrom({ "target-in-flight": "2", "scale-down-delay": "15", "wake-timeout": "90" }, current)).toMatchObject({
      minReplicas: 1,
      maxReplicas: 4,
      targetInFlight: 2,
      scaleDownDelaySeconds: 15,
      wakeTimeoutSeconds: 90,
    });
  });

  it("keep the autoscaler's fields when only the replicas change", () => {
    expect(scalingFrom({ replicas: "3" }, current)).toMatchObject({
      minReplicas: 3,
      maxReplicas: 3,
      targetInFlight: 8,
      scaleDownDelaySeconds: 120,
      wakeTimeoutSeconds: 30,
    });
    expect(scalingFrom({ min: "0" }, current)).toMatchObject({ minReplicas: 0, maxReplicas: 4, targetInFlight: 8, wakeTimeoutSeconds: 30 });
  });

  it("refuse a number that is not whole as a usage error", () => {
    expect(() => scalingFrom({ "scale-down-delay": "1m" }, current)).toThrow(new UsageError('--scale-down-delay takes a whole number, got "1m"'));
    expect(() => scalingFrom({ "target-in-flight": "" }, current)).toThrow(UsageError);
  });
});
