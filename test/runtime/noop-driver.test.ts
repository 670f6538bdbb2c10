import { describe, expect, it } from "vitest";
import { RuntimeError } from "../../src/runtime/driver.js";
import { createNoopDriver } from "../../src/runtime/noop-driver.js";
import { revisionSpec } from "./support.js";

describe("noop driver", () => {
  it("completes every phase at once and observes what it started", async () => {
    const driver = createNoopDriver();
    const spec = revisionSpec({ uri: "file:///nowhere/model.onnx", replicas: 3 });
    const progress: unknown[] = [];
    const weights = await driver.prepareWeights(spec, (p) => progress.push(p));
    expect(progress).toHaveLength(1);
    await driver.startRevision(spec, weights);
    expect(await driver.revisionStatus(spec.deploymentUid, 1)).toEqual({ desired: 3, ready: 3, pending: 0, restarts: 0 });
    const url = await driver.switchTraffic(spec);
    expect(url).toBe("http://noop.invalid/ws/v2/models/sample-abc");
    expect(await driver.observe()).toEqual([
      { deploymentUid: spec.deploymentUid, servingRevision: 1, endpointUrl: url, instances: { desired: 3, ready: 3, pending: 0, restarts: 0 } },
    ]);

    await driver.stopRevision(spec.deploymentUid, 1);
    expect((await driver.observe())[0]?.endpointUrl).toBe("");
    await driver.release(spec.deploymentUid);
    expect(await driver.observe()).toEqual([]);
    await expect(driver.startRevision(spec, weights)).rejects.toBeInstanceOf(RuntimeError);
    await driver.close();
  });
});
