// Validation of an Open Inference Protocol infer request against the model's
// signature, producing onnxruntime feeds. Every rejection says why.
// onnxruntime itself is reached through the model (model.ts loads it).
import type * as ort from "onnxruntime-node";
import { codecFor } from "./datatypes.js";
import type { TensorFactory, TensorSignature } from "./model.js";

export class BadRequestError extends Error {
  override readonly name = "BadRequestError";
}

export interface ParsedInferRequest {
  id?: string;
  feeds: Record<string, ort.Tensor>;
  outputNames: string[];
}

export interface InferLimits {
  /** Largest first dimension accepted on inputs whose first dimension is dynamic; 0 = no limit. */
  maxBatchSize: number;
}

export function parseInferRequest(
  body: unknown,
  signature: { inputs: readonly TensorSignature[]; outputs: readonly TensorSignature[]; tensor: TensorFactory },
  limits: InferLimits,
): ParsedInferRequest {
  if (!isObject(body)) throw new BadRequestError("request body must be a JSON object");
  const { id, inputs, outputs } = body;
  if (id !== undefined && typeof id !== "string") throw new BadRequestError("'id' must be a string");
  if (!Array.isArray(inputs) || inputs.length === 0) {
    throw new BadRequestError(`'inputs' must be a non-empty array; the model's inputs are ${names(signature.inputs)}`);
  }

  const feeds: Record<string, ort.Tensor> = {};
  for (const [index, raw] of inputs.entries()) {
    if (!isObject(raw) || typeof raw["name"] !== "string") {
      throw new BadRequestError(`inputs[${index}] must be an object with a 'name'`);
    }
    const name = raw["name"];
    const expected = signature.inputs.find((s) => s.name === name);
    if (!expected) {
      throw new BadRequestError(`unknown input '${name}'; the model's inputs are ${names(signature.inputs)}`);
    }
    if (feeds[name]) throw new BadRequestError(`input '${name}' is given more than once`);
    feeds[name] = toTensor(raw, expected, limits, signature.tensor);
  }
  const missing = signature.inputs.filter((s) => !feeds[s.name]);
  if (missing.length > 0) throw new BadRequestError(`missing input ${names(missing)}`);

  return { ...(id !== undefined ? { id } : {}), feeds, outputNames: requestedOutputs(outputs, signature.outputs) };
}

function toTensor(raw: Record<string, unknown>, expected: TensorSignature, limits: InferLimits, tensor: TensorFactory): ort.Tensor {
  const where = `input '${expected.name}'`;
  const { datatype, shape, data } = raw;
  if (datatype !== expected.datatype) {
    throw new BadRequestError(`${where} has datatype ${JSON.stringify(datatype)}, the model expects ${expected.datatype}`);
  }
  const codec = codecFor(expected.datatype);
  if (!codec) throw new BadRequestError(`${where}: datatype ${expected.datatype} is not supported in JSON requests`);
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
    throw new BadRequestError(`${where}: 'shape' must be an array of non-negative integers`);
  }
  const dims = shape as number[];
  checkShape(where, dims, expected.shape);
  const dynamicBatch = expected.shape.length > 0 && expected.shape[0] === -1;
  const batch = dims[0];
  if (limits.maxBatchSize > 0 && dynamicBatch && batch !== undefined && batch > limits.maxBatchSize) {
    throw new BadRequestError(`${where}: batch size ${batch} exceeds the maximum batch size ${limits.maxBatchSize}`);
  }
  if (!Array.isArray(data)) throw new BadRequestError(`${where}: 'data' must be an array (row-major, flat or nested)`);
  const flat = data.flat(Infinity) as unknown[];
  const count = dims.reduce((a, b) => a * b, 1);
  if (flat.length !== count) {
    throw new BadRequestError(`${where}: shape [${dims.join(", ")}] needs ${count} elements, 'data' has ${flat.length}`);
  }
  const values = codec.fromJson(flat);
  if (typeof values === "string") throw new BadRequestError(`${where}: ${values}`);
  return tensor(codec.ortType, values, dims);
}

function checkShape(where: string, dims: number[], modelShape: readonly number[]): void {
  // An empty model shape means onnxruntime does not know the rank: accept any.
  if (modelShape.length === 0) return;
  const want = `[${modelShape.join(", ")}]`;
  if (dims.length !== modelShape.length) {
    throw new BadRequestError(`${where}: shape [${dims.join(", ")}] has rank ${dims.length}, the model expects ${want}`);
  }
  modelShape.forEach((m, i) => {
    if (m !== -1 && dims[i] !== m) {
      throw new BadRequestError(`${where}: dimension ${i} is ${dims[i]}, the model expects ${want} (-1 = any)`);
    }
  });
}

function requestedOutputs(outputs: unknown, all: readonly TensorSignature[]): string[] {
  if (outputs === undefined) return all.map((o) => o.name);
  if (!Array.isArray(outputs)) throw new BadRequestError("'outputs' must be an array of {\"name\": …}");
  const wanted: string[] = [];
  for (const o of outputs) {
    const name = isObject(o) ? o["name"] : undefined;
    if (typeof name !== "string" || !all.some((s) => s.name === name)) {
      throw new BadRequestError(`unknown output ${JSON.stringify(name)}; the model's outputs are ${names(all)}`);
    }
    if (!wanted.includes(name)) wanted.push(name);
  }
  return wanted.length > 0 ? wanted : all.map((o) => o.name);
}

function names(list: readonly { name: string }[]): string {
  return list.map((s) => `'${s.name}'`).join(", ");
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
