// Writes the sample ONNX model (src/onnx/sample-model.ts) to disk for tests.
import { createHash } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { buildSampleModel } from "../../src/onnx/sample-model.js";

export interface WrittenModel {
  path: string;
  sha256: string;
  bytes: number;
}

export async function writeSampleModel(dir: string, fileName = "model.onnx"): Promise<WrittenModel> {
  const bytes = buildSampleModel();
  const path = join(dir, fileName);
  await writeFile(path, bytes);
  return { path, sha256: createHash("sha256").update(bytes).digest("hex"), bytes: bytes.length };
}

/** A CreateDeployment request for a written sample model: one replica of 1 CPU, 256 MiB. */
export function sampleCreateRequest(model: WrittenModel) {
  return {
    model: { name: "acme/tiny-linear", revision: "1", uri: pathToFileURL(model.path).href, sha256: model.sha256, task: "regression" },
    resources: { cpu: 1, memory: "256MiB", threadCount: 1 },
    scaling: { minReplicas: 1, maxReplicas: 1 },
  };
}
