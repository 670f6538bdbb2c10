// Writes the sample ONNX model (src/onnx/sample-model.ts) to disk for tests.
import { createHash } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
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
