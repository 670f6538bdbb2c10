// A tiny but real ONNX model, built in code so tests, demos and benchmarks
// need no downloaded weights:
//   y       = x · W + b   (x: FP32 [batch, 4], y: FP32 [batch, 2])
//   ids_out = ids + 1     (ids: INT64 [n])
import { create, toBinary } from "@bufbuild/protobuf";
import {
  GraphProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  TensorProtoSchema,
  TensorProto_DataType,
  TensorShapeProtoSchema,
  TensorShapeProto_DimensionSchema,
  TypeProtoSchema,
  TypeProto_TensorSchema,
  ValueInfoProtoSchema,
  type GraphProto,
  type TensorProto,
  type ValueInfoProto,
} from "../gen/onnx/onnx_pb.js";

/** W, 4 rows × 2 columns. */
export const SAMPLE_MODEL_W: readonly (readonly [number, number])[] = [
  [0.5, -1],
  [1, 0.25],
  [-0.5, 2],
  [2, 1],
];
export const SAMPLE_MODEL_B: readonly [number, number] = [0.125, -0.25];

/** The sample model's `y` computed in plain JavaScript. */
export function sampleModelReference(x: number[][]): number[][] {
  return x.map((row) => {
    if (row.length !== SAMPLE_MODEL_W.length) throw new Error(`expected rows of 4 values, got ${row.length}`);
    return [0, 1].map((j) => row.reduce((sum, v, i) => sum + v * (SAMPLE_MODEL_W[i]?.[j] ?? 0), SAMPLE_MODEL_B[j] ?? 0));
  });
}

/** Serialized ONNX ModelProto (IR version 8, default opset 13). */
export function buildSampleModel(): Uint8Array {
  return serializeModel(sampleGraph());
}

/** The sample model's graph, for models built on it (src/onnx/flaky-model.ts). */
export function sampleGraph(): GraphProto {
  const weight = create(TensorProtoSchema, {
    name: "W",
    dataType: TensorProto_DataType.FLOAT,
    dims: [4n, 2n],
    floatData: SAMPLE_MODEL_W.flat(),
  });
  const bias = create(TensorProtoSchema, {
    name: "b",
    dataType: TensorProto_DataType.FLOAT,
    dims: [2n],
    floatData: [...SAMPLE_MODEL_B],
  });
  const one: TensorProto = create(TensorProtoSchema, {
    name: "one",
    dataType: TensorProto_DataType.INT64,
    dims: [],
    int64Data: [1n],
  });
  return create(GraphProtoSchema, {
    name: "modeldeploy-sample",
    node: [
      create(NodeProtoSchema, { name: "matmul", opType: "MatMul", input: ["x", "W"], output: ["xw"] }),
      create(NodeProtoSchema, { name: "bias", opType: "Add", input: ["xw", "b"], output: ["y"] }),
      create(NodeProtoSchema, { name: "increment", opType: "Add", input: ["ids", "one"], output: ["ids_out"] }),
    ],
    initializer: [weight, bias, one],
    input: [tensorValue("x", TensorProto_DataType.FLOAT, ["batch", 4]), tensorValue("ids", TensorProto_DataType.INT64, ["n"])],
    output: [tensorValue("y", TensorProto_DataType.FLOAT, ["batch", 2]), tensorValue("ids_out", TensorProto_DataType.INT64, ["n"])],
  });
}

/** A graph as a serialized ONNX ModelProto (IR version 8, default opset 13). */
export function serializeModel(graph: GraphProto): Uint8Array {
  const model = create(ModelProtoSchema, {
    irVersion: 8n,
    producerName: "modeldeploy",
    producerVersion: "1",
    modelVersion: 1n,
    graph,
    opsetImport: [create(OperatorSetIdProtoSchema, { domain: "", version: 13n })],
  });
  return toBinary(ModelProtoSchema, model);
}

/** A tensor-typed graph input/output; a string dimension is symbolic (dynamic). */
export function tensorValue(name: string, elemType: TensorProto_DataType, dims: (string | number)[]): ValueInfoProto {
  const dim = dims.map((d) =>
    create(TensorShapeProto_DimensionSchema, {
      value: typeof d === "string" ? { case: "dimParam", value: d } : { case: "dimValue", value: BigInt(d) },
    }),
  );
  return create(ValueInfoProtoSchema, {
    name,
    type: create(TypeProtoSchema, {
      value: {
        case: "tensorType",
        value: create(TypeProto_TensorSchema, { elemType, shape: create(TensorShapeProtoSchema, { dim }) }),
      },
    }),
  });
}
