// The sample model with a fault built in, for canary tests: the same inputs
// and outputs and the same answers, except that onnxruntime fails the run when
// any row's x[…, 0] is above a threshold. So a caller controls which requests
// fail (and what share of random inputs does):
//   x0  = x[:, 0:1]                                 [batch, 1]
//   idx = Cast<int64>(x0 > failAbove)               0 or 1
//   g   = Gather(zero, idx)    zero: FP32 [1]       index 1 is out of range: a run error
//   y   = x · W + b + g                             (g is 0 wherever it runs)
import { create } from "@bufbuild/protobuf";
import { AttributeProtoSchema, AttributeProto_AttributeType, NodeProtoSchema, TensorProtoSchema, TensorProto_DataType } from "../gen/onnx/onnx_pb.js";
import { sampleGraph, serializeModel } from "./sample-model.js";

export interface FlakyModelOptions {
  /** A request fails when any row's first value is above this; default 0.5. */
  failAbove?: number;
}

/** Serialized ONNX model: the sample model's signature, failing at run time for x[…, 0] > failAbove. */
export function buildFlakyModel(options: FlakyModelOptions = {}): Uint8Array {
  const failAbove = options.failAbove ?? 0.5;
  if (!Number.isFinite(failAbove)) throw new Error(`failAbove must be a finite number, got ${failAbove}`);
  const graph = sampleGraph();
  graph.name = "modeldeploy-flaky";
  // The sample's bias node now writes y_clean; y adds the Gather's zero to it,
  // so the check sits on y's path and no optimizer can drop it.
  const bias = graph.node.find((n) => n.output[0] === "y");
  if (!bias) throw new Error("the sample graph has no node writing y");
  bias.output = ["y_clean"];
  const i64 = (name: string, values: bigint[]) =>
    create(TensorProtoSchema, { name, dataType: TensorProto_DataType.INT64, dims: [BigInt(values.length)], int64Data: values });
  graph.initializer.push(
    i64("slice_start", [0n]),
    i64("slice_end", [1n]),
    i64("slice_axis", [1n]),
    create(TensorProtoSchema, { name: "fail_above", dataType: TensorProto_DataType.FLOAT, dims: [], floatData: [failAbove] }),
    create(TensorProtoSchema, { name: "zero", dataType: TensorProto_DataType.FLOAT, dims: [1n], floatData: [0] }),
  );
  const toInt64 = create(AttributeProtoSchema, { name: "to", type: AttributeProto_AttributeType.INT, i: BigInt(TensorProto_DataType.INT64) });
  graph.node.push(
    create(NodeProtoSchema, { name: "first_column", opType: "Slice", input: ["x", "slice_start", "slice_end", "slice_axis"], output: ["x0"] }),
    create(NodeProtoSchema, { name: "above", opType: "Greater", input: ["x0", "fail_above"], output: ["is_above"] }),
    create(NodeProtoSchema, { name: "index", opType: "Cast", input: ["is_above"], output: ["idx"], attribute: [toInt64] }),
    create(NodeProtoSchema, { name: "check", opType: "Gather", input: ["zero", "idx"], output: ["g"] }),
    create(NodeProtoSchema, { name: "with_check", opType: "Add", input: ["y_clean", "g"], output: ["y"] }),
  );
  return serializeModel(graph);
}
