// The loaded ONNX model: an onnxruntime session plus its tensor signature in
// Open Inference Protocol terms. The one module that loads onnxruntime, so
// the server can listen (and answer liveness) before the native library loads.
import * as ort from "onnxruntime-node";
import { kserveDatatypeOf } from "./datatypes.js";

export interface TensorSignature {
  name: string;
  datatype: string;
  /** -1 for a dynamic (symbolic or unknown) dimension. */
  shape: number[];
}

export type TensorFactory = (type: ort.Tensor.Type, data: ort.Tensor.DataType, dims: readonly number[]) => ort.Tensor;

export interface LoadedModel {
  readonly inputs: readonly TensorSignature[];
  readonly outputs: readonly TensorSignature[];
  readonly tensor: TensorFactory;
  run(feeds: Record<string, ort.Tensor>, outputNames: readonly string[]): Promise<Record<string, ort.Tensor>>;
  release(): Promise<void>;
}

export class ModelLoadError extends Error {
  override readonly name = "ModelLoadError";
}

export async function loadModel(path: string, options: { threads: number }): Promise<LoadedModel> {
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(path, {
      ...(options.threads > 0 ? { intraOpNumThreads: options.threads } : {}),
      interOpNumThreads: 1,
      executionMode: "sequential",
      graphOptimizationLevel: "all",
      // Errors only: ORT's warnings would crowd out the log tail the supervisor keeps.
      logSeverityLevel: 3,
    });
  } catch (err) {
    throw new ModelLoadError(`onnxruntime could not load ${path}: ${(err as Error).message}`, { cause: err });
  }
  try {
    const inputs = session.inputMetadata.map((m) => signatureOf(m, "input"));
    const outputs = session.outputMetadata.map((m) => signatureOf(m, "output"));
    return {
      inputs,
      outputs,
      tensor: (type, data, dims) => new ort.Tensor(type, data, dims),
      run: (feeds, outputNames) => session.run(feeds, [...outputNames]) as Promise<Record<string, ort.Tensor>>,
      release: () => session.release(),
    };
  } catch (err) {
    await session.release();
    throw err;
  }
}

function signatureOf(meta: ort.InferenceSession.ValueMetadata, kind: "input" | "output"): TensorSignature {
  if (!meta.isTensor) {
    throw new ModelLoadError(`${kind} '${meta.name}' is not a tensor; this server serves tensor inputs and outputs only`);
  }
  return {
    name: meta.name,
    datatype: kserveDatatypeOf(meta.type),
    shape: meta.shape.map((d) => (typeof d === "number" && d >= 0 ? d : -1)),
  };
}
