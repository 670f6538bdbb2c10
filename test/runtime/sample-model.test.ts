import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { buildSampleModel, SAMPLE_MODEL_B, SAMPLE_MODEL_W, sampleModelReference } from "../../src/onnx/sample-model.js";

describe("sample ONNX model", () => {
  it("loads in onnxruntime and computes x·W + b and ids + 1", async () => {
    const session = await ort.InferenceSession.create(buildSampleModel());
    try {
      expect(session.inputNames).toEqual(["x", "ids"]);
      expect(session.outputNames).toEqual(["y", "ids_out"]);
      const x = [
        [1, 2, 3, 4],
        [0.5, -1, 0.25, 2],
        [0, 0, 0, 0],
      ];
      const out = await session.run({
        x: new ort.Tensor("float32", Float32Array.from(x.flat()), [3, 4]),
        ids: new ort.Tensor("int64", BigInt64Array.from([0n, 41n, -7n, 2n ** 40n]), [4]),
      });
      expect(out["y"]?.dims).toEqual([3, 2]);
      const y = Array.from(out["y"]?.data as Float32Array);
      sampleModelReference(x)
        .flat()
        .forEach((v, i) => expect(y[i]).toBeCloseTo(v, 5));
      // A zero row yields the bias alone.
      expect(y.slice(4)).toEqual([...SAMPLE_MODEL_B]);
      expect(Array.from(out["ids_out"]?.data as BigInt64Array)).toEqual([1n, 42n, -6n, 2n ** 40n + 1n]);
    } finally {
      await session.release();
    }
  });

  it("exports the constants the reference uses", () => {
    expect(SAMPLE_MODEL_W).toHaveLength(4);
    expect(sampleModelReference([[1, 0, 0, 0]])).toEqual([[SAMPLE_MODEL_W[0]![0] + SAMPLE_MODEL_B[0], SAMPLE_MODEL_W[0]![1] + SAMPLE_MODEL_B[1]]]);
  });
});
